"""`source.kind: s3` with `engine: spark`: CSV and Parquet parts under a prefix of a real S3-API server
(moto's, on 127.0.0.1) give the Polars engine's snapshot, clean rows and quarantine, frame by frame.

The driver lists the parts and reads them one by one (boto3, the Polars engine's readers) into one
snapshot, as on `engine: polars`; prepare runs on Spark (the test worker's one session).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT, conveyor
from tests.e2e.test_spark_engine import SPARK, _assert_same, _run, spark  # noqa: F401

TAXI_DIR = ROOT / "examples" / "nyc-taxi"
BUCKET = "lake"
PARTS = 3
ROWS = 400
"""Rows per part: the first 1,200 of the taxi example."""


@pytest.fixture(scope="module")
def s3() -> Iterator[Any]:
    """moto's S3 API on a free port of 127.0.0.1, the AWS variables pointing at it, and a bucket."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    with pytest.MonkeyPatch.context() as env:
        for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN"):
            env.delenv(name, raising=False)
        env.setenv("AWS_ENDPOINT_URL", f"http://{host}:{port}")
        env.setenv("AWS_ACCESS_KEY_ID", "conveyor-test")
        env.setenv("AWS_SECRET_ACCESS_KEY", "conveyor-test")
        env.setenv("AWS_DEFAULT_REGION", "us-east-1")
        client = boto3.client("s3")
        client.create_bucket(Bucket=BUCKET)
        yield client
    server.stop()


def _taxi() -> tuple[dict[str, Any], str, list[str]]:
    config = yaml.safe_load((TAXI_DIR / "conveyor.yaml").read_text(encoding="utf-8"))
    header, *body = (TAXI_DIR / config["source"]["path"]).read_text(encoding="utf-8").splitlines()
    return config, header, body[: PARTS * ROWS]


def _bad(line: str, column: int, value: str) -> str:
    fields = line.split(",")  # the example's rows hold no quoted field
    fields[column] = value
    return ",".join(fields)


def _project(folder: Path, config: dict[str, Any], uri: str, engine: str) -> Path:
    folder.mkdir(parents=True)
    data = {**config, "engine": engine, "source": {"kind": "s3", "uri": uri, "on_bad_lines": "quarantine"}}
    if engine == "spark":
        data["spark"] = SPARK
    (folder / "conveyor.yaml").write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return folder


def _both(tmp_path: Path, config: dict[str, Any], uri: str, reader: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Ingest and prepare on each engine; the driver reads the parts on both (`reader`: the Polars engine's)."""
    polars = _run(_project(tmp_path / "polars", config, uri, "polars"))
    on_spark = _run(_project(tmp_path / "spark", config, uri, "spark"))
    _assert_same(polars, on_spark, reader=reader)
    return polars, on_spark


@pytest.mark.usefixtures("spark")  # the test worker's one Spark session
def test_csv_parts_in_s3_on_spark_are_the_polars_engines(s3: Any, tmp_path: Path) -> None:
    import polars as pl

    config, header, body = _taxi()
    distance = header.split(",").index("trip_distance")
    for index in range(PARTS):
        chunk = body[index * ROWS : (index + 1) * ROWS]
        if index == 1:
            chunk[4] += ",1"  # line 6 of part-1.csv: one field too many (ingest)
            chunk[7] = _bad(chunk[7], distance, "abc")  # line 9: not a number (prepare)
        s3.put_object(Bucket=BUCKET, Key=f"csv/part-{index}.csv", Body="\n".join([header, *chunk, ""]).encode())
    s3.put_object(Bucket=BUCKET, Key="csv/_SUCCESS", Body=b"")  # not a part

    polars, on_spark = _both(tmp_path, config, f"s3://{BUCKET}/csv/", "polars")
    assert on_spark["clean"].height == PARTS * ROWS - 2
    assert (tmp_path / "spark" / "data" / "clean").is_dir()
    assert [p.is_dir() for p in (tmp_path / "spark" / "data" / "clean").glob("*.parquet")] == [True]  # Spark's parts
    raw = on_spark["raw"]
    assert raw["_object"].unique().sort().to_list() == [f"s3://{BUCKET}/csv/part-{i}.csv" for i in range(PARTS)]
    assert raw["_line"].is_unique().all()
    bad = on_spark["ingest_quarantine"]
    assert bad is not None
    assert bad.select("_object", "_line", "_reason").rows() == [
        (f"s3://{BUCKET}/csv/part-1.csv", "6", "22 fields, the header has 21")]
    rejected = on_spark["prepare_quarantine"]
    assert rejected is not None and rejected.height == 1
    assert rejected.select("_object", "_object_line").rows() == [(f"s3://{BUCKET}/csv/part-1.csv", "9")]
    assert rejected["_reason"][0].startswith("trip_distance: 'abc'")
    assert on_spark["clean_result"].ingest_quarantined == 1 and on_spark["clean_result"].quarantined == 1
    assert polars["clean"].filter(pl.col("_line") == int(rejected["_line"][0])).height == 0


@pytest.mark.usefixtures("spark")  # the test worker's one Spark session
def test_parquet_parts_in_s3_on_spark_are_the_polars_engines(s3: Any, tmp_path: Path) -> None:
    """Typed parts as a writer leaves them, and one part of text holding a value that is not a number."""
    import polars as pl

    config, header, body = _taxi()
    for index in range(PARTS):
        text = "\n".join([header, *body[index * ROWS : (index + 1) * ROWS], ""])
        frame = pl.read_csv(io.StringIO(text), infer_schema=index != 1)  # part-1: every column as text
        if index == 1:
            frame = frame.with_columns(pl.when(pl.int_range(pl.len()) == 10).then(pl.lit("abc"))
                                       .otherwise(pl.col("fare_amount")).alias("fare_amount"))
        buffer = io.BytesIO()
        frame.write_parquet(buffer)
        s3.put_object(Bucket=BUCKET, Key=f"parquet/part-{index}.parquet", Body=buffer.getvalue())

    polars, on_spark = _both(tmp_path, config, f"s3://{BUCKET}/parquet/", "parquet")
    assert on_spark["raw"].height == PARTS * ROWS and on_spark["ingest_quarantine"] is None
    assert on_spark["clean"].height == PARTS * ROWS - 1
    rejected = on_spark["prepare_quarantine"]
    assert rejected is not None
    assert rejected.select("_object", "_object_line").rows() == [(f"s3://{BUCKET}/parquet/part-1.parquet", "11")]
    assert rejected["_reason"][0].startswith("fare_amount: 'abc'")
    assert polars["clean_result"].quarantine_reasons == on_spark["clean_result"].quarantine_reasons == {"fare_amount": 1}


def test_an_s3a_path_on_spark_is_one_line_pointing_to_kind_s3(tmp_path: Path) -> None:
    """`source.path: s3a://...` is refused when the project file is read (no JVM), not "source not found"."""
    config, _, _ = _taxi()
    config = {**config, "engine": "spark", "spark": SPARK, "source": {**config["source"], "path": "s3a://lake/trips/"}}
    tmp_path.joinpath("conveyor.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    result = conveyor("run", "-C", str(tmp_path), "--to", "ingest", check=False, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "source.kind: s3, source.uri: s3://lake/trips/, source.format: csv" in result.stderr
    assert "hadoop-aws connector on Spark's classpath" in result.stderr and "not found" not in result.stderr
