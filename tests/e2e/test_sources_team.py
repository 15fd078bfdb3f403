"""PostgreSQL and S3 sources on real servers (the team stack): the same data and model as the CSV,
caching, watermark increments, quarantine, hostile names, and no connection string anywhere.

Each test uses its own PostgreSQL schema and S3 key prefix, so two xdist workers do not meet.
"""

from __future__ import annotations

import csv
import io
import os
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from conveyor import Project
from tests.conftest import BIKE_CSV, BIKE_DIR, bike_rows, conveyor, make_bike_project, stage_artifact, stage_result

pytestmark = pytest.mark.slow

_FLOATS = {"temp", "atemp", "hum", "windspeed"}


def _sql_type(name: str) -> str:
    return "date" if name == "dteday" else "double precision" if name in _FLOATS else "integer"


def _pg_table(dsn: str, schema: str, table: str, rows: list[dict[str, str]], types: dict[str, str] | None = None) -> None:
    """A fresh schema holding one table of `rows` (text loaded by COPY, typed by the server)."""
    import psycopg
    from psycopg import sql

    names = list(rows[0])
    kinds = {name: (types or {}).get(name) or _sql_type(name) for name in names}
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        columns = sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(kinds[n])) for n in names)  # type: ignore[arg-type]
        conn.execute(sql.SQL("CREATE TABLE {}.{} ({})").format(sql.Identifier(schema), sql.Identifier(table), columns))
        _pg_append(conn, schema, table, rows)


def _pg_append(conn: Any, schema: str, table: str, rows: list[dict[str, str]]) -> None:
    from psycopg import sql

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    statement = sql.SQL("COPY {}.{} FROM STDIN WITH (FORMAT csv, HEADER)").format(sql.Identifier(schema), sql.Identifier(table))
    with conn.cursor().copy(statement) as copy:
        copy.write(buffer.getvalue().encode())


def _drop_schema(dsn: str, schema: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def _put(bucket: str, key: str, body: bytes) -> None:
    import boto3

    boto3.client("s3").put_object(Bucket=bucket, Key=key, Body=body)


def _project(folder: Path, source: dict[str, Any], rows: list[dict[str, str]] | None = None) -> Path:
    """The bike demo's project file reading `source` (no local data file)."""
    folder.mkdir(parents=True)
    config = yaml.safe_load((BIKE_DIR / "conveyor.yaml").read_text())
    config["source"] = source
    config["training"]["search"] = {"trials": 4, "timeout_s": 30.0, "folds": 3}
    (folder / "conveyor.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return folder


def _clean(project: Path) -> Any:
    import polars as pl

    return pl.read_parquet(stage_artifact(project, "prepare").path).drop("_line")


@pytest.fixture
def uid(team_stack: dict[str, str]) -> str:
    return f"t{uuid.uuid4().hex[:10]}"


def test_postgres_table_and_s3_parquet_prefix_give_the_csv_data_and_model(
    team_stack: dict[str, str], uid: str, tmp_path: Path
) -> None:
    import polars as pl

    dsn, bucket = team_stack["CONVEYOR_PG_DSN"], team_stack["CONVEYOR_S3_BUCKET"]
    rows = bike_rows()
    _pg_table(dsn, uid, "bikes", rows)
    frame = pl.read_csv(BIKE_CSV, infer_schema_length=0).with_columns(
        pl.col(c).cast(pl.Float64) for c in _FLOATS).with_columns(
        pl.col(c).cast(pl.Int64) for c in rows[0] if c not in _FLOATS and c != "dteday")
    for index, start in enumerate(range(0, frame.height, 5000)):  # 4 parts, read in key order
        buffer = io.BytesIO()
        frame.slice(start, 5000).write_parquet(buffer)
        _put(bucket, f"{uid}/bikes/part-{index:05d}.parquet", buffer.getvalue())
    _put(bucket, f"{uid}/bikes/_SUCCESS", b"")  # a writer's marker: not a part
    try:
        # init reads them the way ingest does and infers the CSV's schema
        conveyor("init", "--csv", str(BIKE_CSV), "--target", "cnt", "-o", str(tmp_path / "i-csv" / "conveyor.yaml"))
        conveyor("init", "--postgres", f"{uid}.bikes", "--dsn-env", "CONVEYOR_PG_DSN", "--target", "cnt",
                 "-o", str(tmp_path / "i-pg" / "conveyor.yaml"))
        conveyor("init", "--s3", f"s3://{bucket}/{uid}/bikes/", "--target", "cnt", "-o", str(tmp_path / "i-s3" / "conveyor.yaml"))
        inferred = {name: yaml.safe_load((tmp_path / f"i-{name}" / "conveyor.yaml").read_text()) for name in ("csv", "pg", "s3")}
        assert inferred["pg"]["schema"] == inferred["csv"]["schema"] == inferred["s3"]["schema"]
        assert inferred["pg"]["source"] == {"kind": "postgres", "dsn_env": "CONVEYOR_PG_DSN", "table": f"{uid}.bikes",
                                            "on_bad_lines": "error", "max_field_bytes": 1048576}
        assert inferred["s3"]["source"]["uri"] == f"s3://{bucket}/{uid}/bikes/"

        local = make_bike_project(tmp_path / "csv")
        pg = _project(tmp_path / "pg", {"kind": "postgres", "dsn_env": "CONVEYOR_PG_DSN", "table": f"{uid}.bikes"})
        s3 = _project(tmp_path / "s3", {"kind": "s3", "uri": f"s3://{bucket}/{uid}/bikes/"})
        for project in (local, pg, s3):
            conveyor("run", "-C", str(project), "--no-search")
        expected = _clean(local)
        for project in (pg, s3):
            assert _clean(project).equals(expected), project.name
            assert stage_result(project, "ingest").rows == len(rows)
        metrics = {p.name: stage_result(p, "train").candidates["lightgbm"].metrics for p in (local, pg, s3)}
        assert metrics["pg"] == metrics["csv"] == metrics["s3"], metrics

        # unchanged table and prefix: nothing re-runs
        for project in (pg, s3):
            again = Project(project).run(search=False)
            assert again.ran == [] and len(again) == 7, again
        # a changed part re-runs ingest (the listing's size/ETag changed)
        buffer = io.BytesIO()
        frame.slice(0, 4000).write_parquet(buffer)
        _put(bucket, f"{uid}/bikes/part-00000.parquet", buffer.getvalue())
        conveyor("ingest", "-C", str(s3))
        assert stage_result(s3, "ingest").rows == len(rows) - 1000

        # the connection string is in no file of the project and in no MLflow param
        secret = dsn.encode()
        for path in pg.rglob("*"):
            if path.is_file():
                assert secret not in path.read_bytes(), path
        with sqlite3.connect(pg / "mlflow.db") as db:
            params = db.execute("SELECT key, value FROM params").fetchall()
        assert params and not [p for p in params if dsn in str(p[1]) or "postgresql://" in str(p[1])]
    finally:
        _drop_schema(dsn, uid)


def test_incremental_reads_only_rows_above_the_watermark(team_stack: dict[str, str], uid: str, tmp_path: Path) -> None:
    import psycopg
    from psycopg import sql

    dsn = team_stack["CONVEYOR_PG_DSN"]
    rows = [r | {"updated_at": f"2024-01-01 00:{i // 60:02d}:{i % 60:02d}"} for i, r in enumerate(bike_rows()[:1200])]
    _pg_table(dsn, uid, "bikes", rows[:1000], {"updated_at": "timestamp"})
    try:
        project = _project(tmp_path / "p", {"kind": "postgres", "dsn_env": "CONVEYOR_PG_DSN", "table": f"{uid}.bikes",
                                            "incremental": {"column": "updated_at"}})
        conveyor("ingest", "-C", str(project))
        first = stage_artifact(project, "ingest")
        assert first.result.rows == 1000 and first.result.watermark == "2024-01-01 00:16:39"
        with psycopg.connect(dsn, autocommit=True) as conn:
            # an old row changed without moving its watermark: an incremental read does not see it
            conn.execute(sql.SQL("UPDATE {}.bikes SET cnt = 999999 WHERE instant = 1").format(sql.Identifier(uid)))
            _pg_append(conn, uid, "bikes", rows[1000:])
        conveyor("ingest", "-C", str(project))
        second = stage_artifact(project, "ingest")
        assert second.digest != first.digest
        assert (second.result.rows, second.result.appended, second.result.previous) == (1200, 200, first.digest)
        assert second.result.watermark == "2024-01-01 00:19:59"
        assert second.inputs["previous_snapshot"] == first.digest
        import polars as pl

        snapshot = pl.read_parquet(second.path)
        assert snapshot["_line"].to_list() == list(range(1, 1201))
        assert snapshot["instant"].to_list() == [r["instant"] for r in rows]
        assert snapshot.filter(pl.col("instant") == "1")["cnt"].item() == rows[0]["cnt"]  # not re-read

        # nothing new: the same snapshot, downstream cached
        conveyor("prepare", "-C", str(project))
        again = Project(project).run(to="prepare")
        assert [(s.name, s.status) for s in again] == [("ingest", "cached"), ("prepare", "cached")], again
        assert stage_artifact(project, "ingest").digest == second.digest
        assert stage_result(project, "prepare").rows == 1200
    finally:
        _drop_schema(dsn, uid)


def test_bad_rows_from_postgres_and_s3_are_quarantined_with_row_object_and_reason(
    team_stack: dict[str, str], uid: str, tmp_path: Path
) -> None:
    import polars as pl

    dsn, bucket = team_stack["CONVEYOR_PG_DSN"], team_stack["CONVEYOR_S3_BUCKET"]
    rows = bike_rows()[:600]
    bad = [dict(r) for r in rows]
    bad[4]["temp"] = "warm"  # the 5th row: a value that is not a float, in a text column
    _pg_table(dsn, uid, "bikes", bad, {"temp": "text"})
    try:
        pg = _project(tmp_path / "pg", {"kind": "postgres", "dsn_env": "CONVEYOR_PG_DSN", "table": f"{uid}.bikes"})
        conveyor("run", "-C", str(pg), "--to", "prepare")
        result = stage_result(pg, "prepare")
        assert (result.rows, result.quarantined) == (599, 1)
        quarantined = pl.read_csv(pg / result.quarantine_file, infer_schema_length=0)
        assert quarantined["_line"].to_list() == ["5"]
        assert quarantined["_reason"].to_list() == ["temp: 'warm' is not a valid float"]
    finally:
        _drop_schema(dsn, uid)

    # two CSV parts; the second has a ragged row on its line 4
    header = ",".join(rows[0])
    lines = [",".join(r.values()) for r in rows]
    second = lines[300:]
    second[2] += ",7"
    _put(bucket, f"{uid}/csv/part-0.csv", ("\n".join([header, *lines[:300]]) + "\n").encode())
    _put(bucket, f"{uid}/csv/part-1.csv", ("\n".join([header, *second]) + "\n").encode())
    source = {"kind": "s3", "uri": f"s3://{bucket}/{uid}/csv/", "format": "csv"}
    strict = _project(tmp_path / "strict", source)
    failed = conveyor("ingest", "-C", str(strict), check=False)
    assert failed.returncode != 0
    assert f"s3://{bucket}/{uid}/csv/part-1.csv line 4 has 18 fields, the header has 17" in failed.stderr + failed.stdout
    assert "Traceback" not in failed.stderr
    s3 = _project(tmp_path / "s3", source | {"on_bad_lines": "quarantine"})
    conveyor("run", "-C", str(s3), "--to", "prepare")
    raw = stage_result(s3, "ingest")
    assert (raw.rows, raw.quarantined) == (599, 1)
    with (s3 / raw.quarantine_file).open(newline="") as handle:
        listed = list(csv.DictReader(handle))
    assert [(r["_object"], r["_line"], r["_reason"]) for r in listed] == [
        (f"s3://{bucket}/{uid}/csv/part-1.csv", "4", "18 fields, the header has 17")]
    snapshot = pl.read_parquet(stage_artifact(s3, "ingest").path)
    assert snapshot["_line"].n_unique() == 599  # unique across parts: prepare keys rows by it
    later = snapshot.filter(pl.col("_object").str.ends_with("part-1.csv")).head(3)
    assert later["_object_line"].to_list() == [2, 3, 5]
    assert stage_result(s3, "prepare").rows == 599


def test_hostile_names_stay_data_and_a_query_only_reads(team_stack: dict[str, str], uid: str, tmp_path: Path) -> None:
    import psycopg
    from psycopg import sql

    dsn = team_stack["CONVEYOR_PG_DSN"]
    schema = f'{uid}"; DROP TABLE {uid}_keep; --'
    table = 'bikes"; DELETE FROM x; --'
    mark = 'up"dated; --'
    rows = [r | {'odd"col;': "x'); --", mark: str(i)} for i, r in enumerate(bike_rows()[:300])]
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE TABLE {} (x int)").format(sql.Identifier(f"{uid}_keep")))
    _pg_table(dsn, schema, table, rows, {'odd"col;': "text", mark: "integer"})
    try:
        quoted = '"' + schema.replace('"', '""') + '"."' + table.replace('"', '""') + '"'
        project = _project(tmp_path / "p", {"kind": "postgres", "dsn_env": "CONVEYOR_PG_DSN", "table": quoted,
                                            "incremental": {"column": mark}})
        conveyor("ingest", "-C", str(project))
        import polars as pl

        snapshot = pl.read_parquet(stage_artifact(project, "ingest").path)
        assert snapshot.height == 300 and snapshot['odd"col;'][0] == "x'); --"
        with psycopg.connect(dsn, autocommit=True) as conn:
            _pg_append(conn, schema, table, [rows[0] | {mark: "1000"}])
            assert conn.execute("SELECT to_regclass(%s)", (f"{uid}_keep",)).fetchone() == (f"{uid}_keep",)
        conveyor("ingest", "-C", str(project))
        assert stage_result(project, "ingest").appended == 1

        # a query runs read-only: one that writes (a sequence) fails in one line, and writes nothing
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE SEQUENCE {}").format(sql.Identifier(f"{uid}_keep_seq")))
        writer = _project(tmp_path / "w", {"kind": "postgres", "dsn_env": "CONVEYOR_PG_DSN",
                                           "query": f"SELECT *, nextval('{uid}_keep_seq') AS n FROM {quoted}"})
        failed = conveyor("ingest", "-C", str(writer), check=False)
        assert failed.returncode != 0 and "READ ONLY" in failed.stderr, failed.stderr
        assert len(failed.stderr.strip().splitlines()) == 1
        with psycopg.connect(dsn, autocommit=True) as conn:
            assert conn.execute(sql.SQL("SELECT last_value, is_called FROM {}").format(
                sql.Identifier(f"{uid}_keep_seq"))).fetchone() == (1, False)
        # a query with a `%` and a parameter-like text is just SQL
        query = _project(tmp_path / "q", {"kind": "postgres", "dsn_env": "CONVEYOR_PG_DSN",
                                          "query": f"SELECT * FROM {quoted} WHERE '%s' LIKE '%%' AND {sql.Identifier(mark).as_string(None)} < 10"})
        conveyor("ingest", "-C", str(query))
        assert stage_result(query, "ingest").rows == 10
    finally:
        _drop_schema(dsn, schema)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(f"{uid}_keep")))
            conn.execute(sql.SQL("DROP SEQUENCE IF EXISTS {}").format(sql.Identifier(f"{uid}_keep_seq")))


def test_an_unset_dsn_variable_is_one_line_naming_it(team_stack: dict[str, str], tmp_path: Path) -> None:
    del team_stack
    project = _project(tmp_path / "p", {"kind": "postgres", "dsn_env": "CONVEYOR_NO_SUCH_DSN", "table": "bikes"})
    assert "CONVEYOR_NO_SUCH_DSN" not in os.environ
    failed = conveyor("ingest", "-C", str(project), check=False)
    lines = [line for line in failed.stderr.splitlines() if line.strip()]
    assert failed.returncode != 0 and len(lines) == 1, failed.stderr
    assert "CONVEYOR_NO_SUCH_DSN is not set" in lines[0]
