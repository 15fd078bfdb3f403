"""`engine: spark`: the features and dataset stages on Spark give the Polars engine's Feast source,
entity tables, training set and online values, frame by frame, to the last bit (online reads:
floats within 1e-9).

Each project runs ingest, prepare, features and dataset in this process, on its own engine (the
Spark project reads Spark's folder of clean parts). The test worker's one Spark session serves
every test (`spark`, from `test_spark_engine`).
"""

from __future__ import annotations

import math
import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import BIKE_DIR
from tests.e2e.test_spark_engine import SPARK, TAXI_DIR, spark  # noqa: F401 - the worker's one session
from tests.redis_server import RedisServer

TOLERANCE = {"rel_tol": 1e-9, "abs_tol": 1e-9}
URL_ENV = "CONVEYOR_TEST_REDIS_URL"

# Every aggregate function, a count of a column, `last`, and lags beside the taxi example's own
# features: each Spark compilation of `_aggregates.py` is compared with the Polars one.
TAXI_EXTRA = {
    "aggregates": [
        {"entity": "PULocationID", "function": "sum", "column": "trip_distance", "window": "2h", "name": "pu_dist_2h"},
        {"entity": "PULocationID", "function": "min", "column": "fare_amount", "window": "1d", "name": "pu_fare_min_1d"},
        {"entity": "PULocationID", "function": "max", "column": "fare_amount", "window": "1d", "name": "pu_fare_max_1d"},
        {"entity": "DOLocationID", "function": "last", "column": "fare_amount", "window": "3h", "name": "do_last_3h"},
        {"entity": "DOLocationID", "function": "count", "column": "extra", "window": "6h", "name": "do_extras_6h"},
    ],
    "lags": [
        {"entity": "PULocationID", "column": "fare_amount", "lag": 1, "name": "pu_fare_lag1"},
        {"entity": "PULocationID", "column": "fare_amount", "lag": 3, "name": "pu_fare_lag3"},
    ],
}


def _config(example: str) -> tuple[Path, dict[str, Any]]:
    folder = BIKE_DIR if example == "bike" else TAXI_DIR
    config = yaml.safe_load((folder / "conveyor.yaml").read_text(encoding="utf-8"))
    if example == "taxi":
        features = config["features"]
        features["aggregates"] = [*features["aggregates"], *TAXI_EXTRA["aggregates"]]
        features["lags"] = [*(features.get("lags") or []), *TAXI_EXTRA["lags"]]
    return folder / config["source"]["path"], config


def _project(folder: Path, source: Path, config: dict[str, Any], engine: str, *, redis: bool = False) -> Path:
    folder.mkdir(parents=True)
    shutil.copy(source, folder / source.name)
    data = {**config, "engine": engine}
    if engine == "spark":
        data["spark"] = SPARK
    if redis:
        data["stores"] = {"online": {"kind": "redis", "url_env": URL_ENV}}
    (folder / "conveyor.yaml").write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return folder


def _run(project: Path) -> dict[str, Any]:
    """Ingest to dataset in this process; the store's files, the training set and online reads."""
    import polars as pl

    from conveyor.core import Workspace, load_config
    from conveyor.stages.features import OnlineFeatures, build_features, training_set
    from conveyor.stages.prep import prepare
    from conveyor.stages.sources import ingest

    config = load_config(project / "conveyor.yaml")
    workspace = Workspace.at(project)
    clean = prepare(config, workspace, ingest(config, workspace))
    features = build_features(config, workspace, clean)
    dataset = training_set(config, workspace, features, clean)
    frame = pl.read_parquet(dataset.path)
    online = OnlineFeatures(config, workspace)
    keys = frame[config.schema.entity.key].gather_every(97).to_list() + [10**9]  # and one unknown key
    entity_rows = frame.select(online.entities).unique(maintain_order=True).to_dicts()[:200] if online.entities else []
    return {
        "store": {p.name: pl.read_parquet(p) for p in sorted((workspace.feature_repo / "data").glob("*.parquet"))},
        "training_set": frame,
        "features": features.result,
        "dataset": dataset.result,
        "online": online.get(keys),
        "entities": online.entity_features(entity_rows),
    }


def _close(a: Any, b: Any) -> bool:
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers) and not isinstance(a, bool) and not isinstance(b, bool):
        return math.isclose(a, b, **TOLERANCE)
    return bool(a == b)


def _same_rows(spark_rows: list[dict[str, Any] | None], polars_rows: list[dict[str, Any] | None]) -> None:
    assert len(spark_rows) == len(polars_rows)
    for s, p in zip(spark_rows, polars_rows, strict=True):
        if p is None or s is None:
            assert s is p, (s, p)
            continue
        assert s.keys() == p.keys()
        differing = {k: (s[k], p[k]) for k in p if not _close(s[k], p[k])}
        assert not differing, differing


def _assert_same(polars: dict[str, Any], on_spark: dict[str, Any]) -> None:
    from polars.testing import assert_frame_equal

    assert on_spark["store"].keys() == polars["store"].keys()
    for name, frame in polars["store"].items():  # Feast source and entity tables: values, types, order
        assert_frame_equal(on_spark["store"][name], frame, check_exact=True)  # the same code: to the last bit
    assert_frame_equal(on_spark["training_set"], polars["training_set"], check_exact=True)
    _same_rows(on_spark["online"], polars["online"])
    _same_rows(on_spark["entities"], polars["entities"])
    # timings; where the online store is (a file, or a Redis generation)
    timing = {"online_write_seconds", "entity_table_seconds", "feast_log", "online_store", "online_generation"}
    assert on_spark["features"].model_dump(exclude=timing) == polars["features"].model_dump(exclude=timing)
    assert on_spark["dataset"] == polars["dataset"]


@pytest.mark.parametrize("example, online", [("bike", "sqlite"), ("taxi", "redis")])
def test_features_and_training_set_on_spark_equal_polars(
    tmp_path: Path, spark: Any, monkeypatch: pytest.MonkeyPatch, example: str, online: str  # noqa: F811
) -> None:
    """Frame by frame, and the online values read back the same. The Spark project's online store
    (SQLite, or Redis for the taxi) is written from Spark's parts 500 rows at a time, never more
    in one batch; the Polars project's is its SQLite file. The taxi's Spark run has a driver in
    New York's time zone: its last hours' features must not be cut (they were, before the entity
    rows' time went to Feast as TIMESTAMP_NTZ)."""
    from conveyor.stages.features import _online, _spark_build

    batches: list[int] = []
    write_frames = _online.write_frames

    def counting(store: Any, view: Any, frames: Any, *args: Any, **kwargs: Any) -> Any:
        def seen() -> Any:
            for frame in frames:
                batches.append(frame.height)
                yield frame

        return write_frames(store, view, seen(), *args, **kwargs)

    monkeypatch.setattr(_spark_build, "BATCH_ROWS", 500)
    monkeypatch.setattr(_spark_build, "write_frames", counting)
    source, config = _config(example)
    polars = _run(_project(tmp_path / "polars", source, config, "polars"))
    server = RedisServer(tmp_path / "redis").start() if online == "redis" else None
    zone = os.environ.get("TZ")
    try:
        if server is not None:
            monkeypatch.setenv(URL_ENV, server.url)
        if example == "taxi":  # a driver west of UTC: PySpark gives Feast local times (see `_spark_dataset`)
            os.environ["TZ"] = "America/New_York"
            time.tzset()
        on_spark = _run(_project(tmp_path / "spark", source, config, "spark", redis=server is not None))
    finally:
        if zone is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = zone
        time.tzset()
        if server is not None:
            server.stop()
    _assert_same(polars, on_spark)
    assert bool(on_spark["features"].online_generation) == (online == "redis")  # where it was written
    frame = on_spark["training_set"]
    assert frame.height == on_spark["dataset"].entity_rows == polars["training_set"].height  # no row lost
    assert on_spark["online"][-1] is None  # the unknown key
    entities = on_spark["features"].online_entities + sum(on_spark["features"].entity_online.values())
    assert max(batches) <= 500
    assert sum(batches) == entities
    assert len(batches) >= entities // 500 > 1
    if example == "taxi":  # the engineered features are there, and not all empty
        assert {"pu_trips_1h", "pu_fare_lag3", "do_last_3h", "distance_vs_zone"} <= set(frame.columns)
        assert frame["pu_fare_lag3"].null_count() < frame.height
        assert frame["do_last_3h"].null_count() < frame.height


def test_hostile_column_names_and_a_date_time_pair_run_on_spark_as_on_polars(
    tmp_path: Path, spark: Any  # noqa: F811
) -> None:
    """Names Spark would read as a struct field or a quote (`zone.id`, `fare.amt`, a backtick) are
    data on every Spark path (prepare's tasks, the entity tables, the join, on-demand features);
    the event time is a `Date;Time` pair with a bad time quarantined, as on Polars."""
    from conveyor.runner import init_project

    lines = ["Date;Time;zone.id;fare.amt;odd`name;y.value"]
    for i in range(300):
        time = "25.61.00" if i == 17 else f"{i % 24:02d}.{i * 7 % 60:02d}.00"
        lines.append(f"{1 + i // 24:02d}/03/2004;{time};{i % 6};{i % 13},5;{i % 5};{i % 13 * 2 + i % 6},25")
    source = tmp_path / "hostile.csv"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    init_project(source, target="y.value", output=tmp_path / "init.yaml")
    config = yaml.safe_load((tmp_path / "init.yaml").read_text(encoding="utf-8"))
    assert config["schema"]["event_time"] == {"kind": "date_time", "columns": ["Date", "Time"], "format": None}
    config["source"]["path"] = source.name
    config["features"]["entities"] = ["zone.id"]
    config["features"]["aggregates"] = [
        {"entity": "zone.id", "function": "mean", "column": "fare.amt", "window": "1d"},
        {"entity": "zone.id", "function": "count", "window": "6h"},
    ]
    config["features"]["on_demand"] = [{"name": "hour", "kind": "hour_of_day"}]
    polars = _run(_project(tmp_path / "polars", source, config, "polars"))
    on_spark = _run(_project(tmp_path / "spark", source, config, "spark"))
    _assert_same(polars, on_spark)
    frame = on_spark["training_set"]
    assert frame.height == 299 and {"zone.id_mean_fare.amt_1d", "hour", "odd`name"} <= set(frame.columns)
    assert frame["zone.id_mean_fare.amt_1d"].drop_nulls().len() > 250
