"""`engine:` and `spark:` in conveyor.yaml: defaults, validation, and what `dump_config` writes."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from conveyor.core import ConfigError, load_config
from conveyor.core.config import dump_config

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "bike-sharing" / "conveyor.yaml"


def _load(tmp_path: Path, **extra: object) -> object:
    data = {**yaml.safe_load(EXAMPLE.read_text()), **extra}
    path = tmp_path / "conveyor.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_config(path)


def test_polars_is_the_default_and_is_not_written(tmp_path: Path) -> None:
    config = load_config(EXAMPLE)
    assert config.engine == "polars" and config.spark.master == "local[*]" and config.spark.conf == {}
    dump_config(config, tmp_path / "out.yaml")
    written = yaml.safe_load((tmp_path / "out.yaml").read_text())
    assert "engine" not in written and "spark" not in written  # the default needs no section


def test_a_spark_section_round_trips(tmp_path: Path) -> None:
    spark = {"master": "spark://10.0.0.5:7077", "conf": {"spark.driver.memory": "4g", "spark.ui.enabled": False,
                                                         "spark.executor.instances": 4}, "app_name": "fares"}
    config = _load(tmp_path, engine="spark", spark=spark)
    assert config.engine == "spark" and config.spark.conf["spark.executor.instances"] == 4  # type: ignore[attr-defined]
    dump_config(config, tmp_path / "out.yaml")  # type: ignore[arg-type]
    written = yaml.safe_load((tmp_path / "out.yaml").read_text())
    assert written["engine"] == "spark" and written["spark"] == spark
    assert load_config(tmp_path / "out.yaml") == config


@pytest.mark.parametrize("master", ["local[*]", "local", "local[4]", "local[2,3]", "spark://a:7077,b:7077", "yarn",
                                    "k8s://https://k8s.example:6443"])
def test_master_uris_spark_knows(tmp_path: Path, master: str) -> None:
    assert _load(tmp_path, engine="spark", spark={"master": master}).spark.master == master  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("extra", "needles"),
    [
        ({"engine": "dask"}, ["engine", "'dask'", "'polars' or 'spark'"]),
        ({"spark": {"master": "local[0]"}}, ["spark.master", "'local[0]' is not a Spark master URI"]),
        ({"spark": {"master": "spark:/host:7077"}}, ["spark.master", "is not a Spark master URI"]),
        ({"spark": {"mastr": "local"}}, ["spark.mastr", "unknown key"]),
        ({"spark": {"conf": {"spark.driver.memory": ["4g"]}}}, ["spark.conf.spark.driver.memory"]),
    ],
)
def test_bad_engine_settings_name_the_key(tmp_path: Path, extra: dict[str, object], needles: list[str]) -> None:
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, **extra)
    for needle in needles:
        assert needle in str(caught.value), str(caught.value)


@pytest.mark.parametrize(
    ("kind", "path", "needles"),
    [
        ("csv", "s3a://lake/trips/", ["source.kind: s3, source.uri: s3://lake/trips/, source.format: csv",
                                      "hadoop-aws connector", "PySpark wheel does not include"]),
        ("parquet", "s3://lake/trips/part-0.parquet", ["source.uri: s3://lake/trips/part-0.parquet, source.format: parquet"]),
        ("csv", "S3N://lake/a.csv", ["source.uri: s3://lake/a.csv"]),
        ("csv", "hdfs://namenode/data/a.csv", ["a hdfs:// URI is not read", "local file, folder of parts or glob"]),
    ],
)
def test_an_object_store_path_says_to_read_it_as_kind_s3(tmp_path: Path, kind: str, path: str, needles: list[str]) -> None:
    """`source.path: s3a://...` on either engine: one line at load time (no JVM), not "source not found" at ingest."""
    data = yaml.safe_load(EXAMPLE.read_text())
    for engine in ("spark", "polars"):
        source = {**data["source"], "kind": kind, "path": path}
        with pytest.raises(ConfigError) as caught:
            _load(tmp_path, engine=engine, source=source)
        message = str(caught.value).splitlines()[-1]
        assert message.strip().startswith("source:") and f"source.path {path!r}" in message, message
        for needle in needles:
            assert needle in message, message


@pytest.mark.parametrize("path", ["data/part-*.csv", "lake", "/abs/trips.csv", "s3a-export/part-0.csv", "a:b.csv"])
def test_local_paths_are_not_uris(tmp_path: Path, path: str) -> None:
    data = yaml.safe_load(EXAMPLE.read_text())
    config = _load(tmp_path, engine="spark", source={**data["source"], "path": path})
    assert config.source.path == path  # type: ignore[attr-defined]
