"""Ingest of 1M rows from a PostgreSQL table and from Parquet parts in S3, next to the readers a
user would otherwise call on the same data: `pandas.read_sql`, `polars.read_database`,
`pyarrow` and `polars.read_parquet` on the same objects. Same run, same machine, ratios.

    examples/team-stack/up   (or any PostgreSQL + S3-API server), export the lines it prints, then
    python benchmarks/sources.py                  # 1M rows, 3 rounds
    python benchmarks/sources.py --rows 200000 --repeat 5

Needs CONVEYOR_PG_DSN, CONVEYOR_S3_BUCKET and the AWS_* variables (AWS_ENDPOINT_URL for an
S3-API server such as moto). The data is the bike-sharing example repeated to `--rows` rows
(`instant` kept unique), loaded once into the table `conveyor_bench.bikes` (typed columns:
date, integers, doubles) and written as 10 Parquet parts under `s3://$CONVEYOR_S3_BUCKET/
conveyor-bench/bikes/`; both are reused by later runs with the same row count.

What each line measures (wall seconds, median of the rounds, tools taking turns):
- conveyor: the cache key (`source_digest`: postgres reads and hashes the rows; s3 lists the
  parts) plus `ingest` (an all-text, content-addressed Parquet snapshot written to data/raw/,
  row numbers, quarantine), in a fresh workspace each round: what `conveyor ingest` costs.
- pandas.read_sql (SQLAlchemy + psycopg), polars.read_database (the same engine),
  pyarrow.parquet.read_table (pyarrow's S3 filesystem) and polars.read_parquet (its object
  store): a typed frame in memory, nothing written.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BIKE = ROOT / "examples" / "bike-sharing"
SCHEMA, TABLE, PREFIX, PARTS = "conveyor_bench", "bikes", "conveyor-bench/bikes/", 10
FLOATS = {"temp", "atemp", "hum", "windspeed"}


def _env() -> dict[str, str]:
    names = ("CONVEYOR_PG_DSN", "CONVEYOR_S3_BUCKET", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
    missing = [name for name in names if not os.environ.get(name)]
    if missing:
        sys.exit(f"unset: {', '.join(missing)}; start PostgreSQL and an S3-API server (examples/team-stack/up) "
                 "and export the lines it prints")
    return {name: os.environ[name] for name in names}


def _frame(rows: int) -> Any:
    import polars as pl

    base = pl.read_csv(BIKE / "bike_sharing_hourly.csv", try_parse_dates=True)
    copies = -(-rows // base.height)
    frame = pl.concat([base] * copies).head(rows)
    return frame.with_columns(pl.int_range(1, rows + 1).alias("instant"))


def _load_postgres(dsn: str, frame: Any) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(dsn, autocommit=True) as conn:
        found = conn.execute("SELECT to_regclass(%s)", (f"{SCHEMA}.{TABLE}",)).fetchone()
        if found and found[0]:
            count = conn.execute(sql.SQL("SELECT count(*) FROM {}.{}").format(sql.Identifier(SCHEMA), sql.Identifier(TABLE))).fetchone()
            if count and count[0] == frame.height:
                return
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(SCHEMA)))
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(SCHEMA)))
        kinds = [sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL("date" if c == "dteday" else "double precision" if c in FLOATS
                                                                     else "integer")) for c in frame.columns]
        conn.execute(sql.SQL("CREATE TABLE {}.{} ({})").format(sql.Identifier(SCHEMA), sql.Identifier(TABLE), sql.SQL(", ").join(kinds)))
        buffer = io.BytesIO()
        frame.write_csv(buffer)
        with conn.cursor().copy(sql.SQL("COPY {}.{} FROM STDIN WITH (FORMAT csv, HEADER)").format(
                sql.Identifier(SCHEMA), sql.Identifier(TABLE))) as copy:
            copy.write(buffer.getvalue())
        conn.execute(sql.SQL("VACUUM ANALYZE {}.{}").format(sql.Identifier(SCHEMA), sql.Identifier(TABLE)))


def _load_s3(bucket: str, frame: Any) -> None:
    import boto3

    client = boto3.client("s3")
    listed = client.list_objects_v2(Bucket=bucket, Prefix=PREFIX).get("Contents", [])
    marker = f"{PREFIX}_rows-{frame.height}"
    if any(item["Key"] == marker for item in listed):
        return
    for item in listed:
        client.delete_object(Bucket=bucket, Key=item["Key"])
    size = -(-frame.height // PARTS)
    for index in range(PARTS):
        buffer = io.BytesIO()
        frame.slice(index * size, size).write_parquet(buffer)
        client.put_object(Bucket=bucket, Key=f"{PREFIX}part-{index:05d}.parquet", Body=buffer.getvalue())
    client.put_object(Bucket=bucket, Key=marker, Body=b"")  # `_` names are not parts


def _project(folder: Path, source: dict[str, Any]) -> Path:
    import yaml

    folder.mkdir(parents=True, exist_ok=True)
    config = yaml.safe_load((BIKE / "conveyor.yaml").read_text())
    config["source"] = source
    (folder / "conveyor.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return folder


def _conveyor(folder: Path) -> Callable[[], int]:
    from conveyor.core import Workspace, load_config
    from conveyor.stages.sources import ingest, source_digest

    def run() -> int:
        shutil.rmtree(folder / "data", ignore_errors=True)  # no snapshot from an earlier round
        workspace = Workspace.at(folder)
        config = load_config(workspace.config_file)
        source_digest(config, workspace)  # the cache key, as the runner computes it first
        return int(ingest(config, workspace).result.rows)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    env = _env()
    import pandas as pd
    import polars as pl
    import pyarrow.fs
    import pyarrow.parquet as pq
    import sqlalchemy

    frame = _frame(args.rows)
    started = time.perf_counter()
    _load_postgres(env["CONVEYOR_PG_DSN"], frame)
    _load_s3(env["CONVEYOR_S3_BUCKET"], frame)
    print(f"data ready: {args.rows} rows x {frame.width} columns ({time.perf_counter() - started:.1f}s)")
    del frame

    url = sqlalchemy.engine.make_url(env["CONVEYOR_PG_DSN"]).set(drivername="postgresql+psycopg")
    engine = sqlalchemy.create_engine(url)
    query = f"SELECT * FROM {SCHEMA}.{TABLE}"
    bucket = env["CONVEYOR_S3_BUCKET"]
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    region = os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION") or "us-east-1"
    s3fs = pyarrow.fs.S3FileSystem(endpoint_override=endpoint, region=region,
                                   scheme="http" if endpoint and endpoint.startswith("http:") else "https")
    keys = [f"{bucket}/{PREFIX}part-{i:05d}.parquet" for i in range(PARTS)]
    options = {"aws_region": region, "aws_access_key_id": env["AWS_ACCESS_KEY_ID"],
               "aws_secret_access_key": env["AWS_SECRET_ACCESS_KEY"]}
    if endpoint:
        options |= {"aws_endpoint_url": endpoint, "aws_allow_http": "true"}

    with tempfile.TemporaryDirectory(prefix="bench-sources-") as work:
        pg_project = _project(Path(work) / "pg", {"kind": "postgres", "dsn_env": "CONVEYOR_PG_DSN", "table": f"{SCHEMA}.{TABLE}"})
        s3_project = _project(Path(work) / "s3", {"kind": "s3", "uri": f"s3://{bucket}/{PREFIX}"})
        cases: list[tuple[str, str, Callable[[], int]]] = [
            ("postgres", "conveyor ingest", _conveyor(pg_project)),
            ("postgres", "pandas.read_sql", lambda: len(pd.read_sql(query, engine))),
            ("postgres", "polars.read_database", lambda: pl.read_database(query, engine).height),
            ("s3 parquet", "conveyor ingest", _conveyor(s3_project)),
            ("s3 parquet", "pyarrow.parquet.read_table", lambda: pq.read_table(keys, filesystem=s3fs).num_rows),
            ("s3 parquet", "polars.read_parquet", lambda: pl.read_parquet(
                [f"s3://{k}" for k in keys], storage_options=options).height),
        ]
        times: dict[tuple[str, str], list[float]] = {(s, t): [] for s, t, _ in cases}
        for _ in range(args.repeat):
            for source, tool, run in cases:
                start = time.perf_counter()
                rows = run()
                times[(source, tool)].append(time.perf_counter() - start)
                if rows != args.rows:
                    sys.exit(f"{tool} on {source} read {rows} rows, expected {args.rows}")
    print(f"\n{args.rows:,} rows, median of {args.repeat} rounds (wall seconds); ratio = tool / conveyor on the same source\n")
    print("| source | reader | seconds | rows/s | ratio |\n|---|---|---|---|---|")
    for source, tool, _ in cases:
        median = statistics.median(times[(source, tool)])
        ours = statistics.median(times[(source, "conveyor ingest")])
        print(f"| {source} | {tool} | {median:.2f} | {args.rows / median:,.0f} | {median / ours:.2f}x |")


if __name__ == "__main__":
    main()
