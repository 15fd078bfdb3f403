"""Load the bike data into the team stack (run by `up`; safe to run again).

- PostgreSQL (`CONVEYOR_PG_DSN`): table `bike`, the CSV's columns with SQL types, loaded by COPY
  when the table is new or empty.
- S3 (`AWS_ENDPOINT_URL` and the standard AWS variables): every `--bucket` is created, and the
  first one gets a Parquet copy at `bike/bike_sharing_hourly.parquet`.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from pathlib import Path

TABLE = "bike"
KEY = "bike/bike_sharing_hourly.parquet"


def load_postgres(dsn: str, csv: Path) -> int:
    import polars as pl
    import psycopg
    from psycopg import sql

    frame = pl.read_csv(csv, try_parse_dates=True)
    sql_type = {pl.Int64: "bigint", pl.Float64: "double precision", pl.Date: "date", pl.String: "text"}
    columns = sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(sql_type[dtype]))  # type: ignore[index]
        for name, dtype in frame.schema.items()
    )
    with psycopg.connect(dsn) as conn:
        conn.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} ({})").format(sql.Identifier(TABLE), columns))
        rows = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(TABLE))).fetchone()
        if rows and rows[0]:
            return int(rows[0])
        with conn.cursor().copy(
            sql.SQL("COPY {} FROM STDIN WITH (FORMAT csv, HEADER true)").format(sql.Identifier(TABLE))
        ) as copy:
            copy.write(csv.read_bytes())
        return frame.height


def load_s3(buckets: list[str], csv: Path) -> str:
    import boto3
    import polars as pl

    client = boto3.client("s3")
    existing = {bucket["Name"] for bucket in client.list_buckets().get("Buckets", [])}
    for bucket in buckets:
        if bucket not in existing:
            client.create_bucket(Bucket=bucket)
    buffer = io.BytesIO()
    pl.read_csv(csv, try_parse_dates=True).write_parquet(buffer)
    client.put_object(Bucket=buckets[0], Key=KEY, Body=buffer.getvalue())
    return f"s3://{buckets[0]}/{KEY}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--csv", type=Path, required=True)
    parser.add_argument("--bucket", action="append", required=True, help="created; the first gets the Parquet copy")
    args = parser.parse_args()
    rows = load_postgres(os.environ["CONVEYOR_PG_DSN"], args.csv)
    print(f"up: PostgreSQL table {TABLE}: {rows} rows (database conveyor)")
    uri = load_s3(args.bucket, args.csv)
    print(f"up: buckets {', '.join(args.bucket)}; the Parquet copy is {uri}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
