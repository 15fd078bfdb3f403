"""The point-in-time training set through Feast's Spark offline store against Feast's default
offline stores (file/Dask, DuckDB), in the same run, on taxi-style data: seconds and rows lost.

    PYTHONPATH=src .venv/bin/python benchmarks/pit_spark.py                 # 10,000,000 entity rows
    PYTHONPATH=src .venv/bin/python benchmarks/pit_spark.py --rows 1000000  # a loaded machine

The data is what the `dataset` stage joins on `engine: spark`: one feature row per trip (its
pickup time, 8 float features and 2 integer ones, keyed by the trip id, as Conveyor's row view),
and one entity row per trip (the label's row). 5 % of the entity rows are asked for 1 hour before
their trip's feature row exists (a label older than its features): a correct point-in-time join
keeps those rows, with missing features; a join that drops them loses rows without a word.

Each store gets the same Parquet feature file and the same entity rows (pandas for the file
and DuckDB stores, a Spark DataFrame for Spark: rows that never pass through the driver), and its
result is materialized in full (a pandas/Arrow table, or Parquet parts written by Spark). Rows
lost = entity rows in - rows out. Spark runs `local[*]` in this process (the JVM start is timed
separately). Timings are wall clock; one run each.

Measured on the 2-core machine of this project while other jobs kept its load average at 15-20
(so the 10M default was not run; `--rows 1000000`, Spark `local[*]`, session start 97 s apart):

| offline store                          | seconds | rows out  | rows lost      |
|----------------------------------------|---------|-----------|----------------|
| Feast Spark offline store              | 323.2   | 1,000,000 | 0              |
| Feast DuckDB offline store             | 19.1    | 1,000,000 | 0              |
| Feast file (Dask) store, Feast default | 102.7   | 950,363   | 49,637 (5.0 %) |

Spark on one small machine pays for its shuffles and Feast's SQL (a join on key and time, then a
ROW_NUMBER per entity row); it is there for data that does not fit one machine, on a cluster.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from conveyor.core.config import EVENT_TIMESTAMP

T0 = datetime(2019, 3, 1, tzinfo=UTC)
FLOATS = [f"f{i}" for i in range(8)]
INTS = ["passenger_count", "payment_type"]
EARLY_SHARE = 0.05


def make_data(rows: int, folder: Path, seed: int = 7) -> tuple[Path, Path, int]:
    """The feature file and the entity rows (Parquet); how many entity rows precede their features."""
    rng = np.random.default_rng(seed)
    pickup = rng.integers(0, 31 * 86400 * 1_000_000, rows) + int(T0.timestamp() * 1_000_000)
    features = pl.DataFrame({
        "trip_id": np.arange(rows, dtype=np.int64),
        EVENT_TIMESTAMP: pickup,
        **{name: rng.gamma(2.0, 5.0, rows) for name in FLOATS},
        **{name: rng.integers(1, 6, rows) for name in INTS},
    }).with_columns(pl.col(EVENT_TIMESTAMP).cast(pl.Datetime("us", "UTC")))
    early = rng.random(rows) < EARLY_SHARE
    asked = pickup - np.where(early, 3600 * 1_000_000, 0)
    entities = pl.DataFrame({"trip_id": np.arange(rows, dtype=np.int64), EVENT_TIMESTAMP: asked}).with_columns(
        pl.col(EVENT_TIMESTAMP).cast(pl.Datetime("us", "UTC"))
    )
    feature_path, entity_path = folder / "features.parquet", folder / "entities.parquet"
    features.write_parquet(feature_path)
    entities.write_parquet(entity_path)
    return feature_path, entity_path, int(early.sum())


def _repo(folder: Path, offline: dict[str, Any]) -> Any:
    from feast import FeatureStore
    from feast.repo_config import RepoConfig

    folder.mkdir()
    config = RepoConfig(
        project="bench", provider="local", registry={"registry_type": "file", "path": str(folder / "registry.pb")},
        online_store={"type": "sqlite", "path": str(folder / "online.db")}, offline_store=offline,
        entity_key_serialization_version=3, repo_path=folder,
    )
    return FeatureStore(repo_path=str(folder), config=config)


def _objects(source: Any) -> tuple[Any, Any]:
    from feast import Entity, FeatureView, Field, ValueType
    from feast.types import Float64, Int64

    entity = Entity(name="trip", join_keys=["trip_id"], value_type=ValueType.INT64)
    view = FeatureView(
        name="trips", entities=[entity], ttl=timedelta(0), source=source,
        schema=[*(Field(name=n, dtype=Float64) for n in FLOATS), *(Field(name=n, dtype=Int64) for n in INTS)],
    )
    return entity, view


REFS = [f"trips:{name}" for name in [*FLOATS, *INTS]]


def run_local_store(kind: str, folder: Path, feature_path: Path, entity_path: Path) -> tuple[float, int]:
    """Feast's `file` (Dask) or `duckdb` offline store: seconds and rows out."""
    from feast import FileSource

    store = _repo(folder / kind, {"type": kind})
    entity, view = _objects(FileSource(name="trips_source", path=str(feature_path), timestamp_field=EVENT_TIMESTAMP))
    store.apply([entity, view])
    entity_df = pl.read_parquet(entity_path).to_pandas()
    began = time.perf_counter()
    job = store.get_historical_features(entity_df=entity_df, features=REFS)
    out = job.to_arrow().num_rows if kind == "duckdb" else len(job.to_df())
    return time.perf_counter() - began, out


def run_spark_store(session: Any, folder: Path, feature_path: Path, entity_path: Path) -> tuple[float, int]:
    """Feast's Spark offline store, as the `dataset` stage calls it on `engine: spark`."""
    import pyarrow.parquet as pq
    from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import SparkSource

    from conveyor.stages.features._spark_dataset import spark_historical_features

    store = _repo(folder / "spark", {"type": "spark"})
    source = SparkSource(name="trips_source", path=feature_path.resolve().as_uri(), file_format="parquet",
                         timestamp_field=EVENT_TIMESTAMP)
    entity, view = _objects(source)
    store.apply([entity, view])
    began = time.perf_counter()
    entity_df = session.read.parquet(entity_path.resolve().as_uri())
    joined = spark_historical_features(store, store.get_feature_view("trips"), REFS, entity_df, feature_path)
    out = folder / "spark_out"
    joined.write.mode("overwrite").parquet(out.resolve().as_uri())
    seconds = time.perf_counter() - began
    rows = sum(pq.ParquetFile(part).metadata.num_rows for part in out.glob("part-*.parquet"))
    return seconds, rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="entity rows (= feature rows)")
    parser.add_argument("--skip-file", action="store_true", help="leave out Feast's file (Dask) store")
    parser.add_argument("--spark-port", type=int, default=0, help="first loopback port of the Spark driver (0: any)")
    args = parser.parse_args()

    from conveyor.core.config import SparkConfig
    from conveyor.stages.features._repo import import_feast
    from conveyor.stages.features._store import feast_logs
    from conveyor.stages.spark import spark_session, stop_session

    import_feast()
    from feast.infra.offline_stores.contrib.spark_offline_store import spark  # noqa: F401 - sets a filter at import

    # Feast warns that its Spark store and source are experimental, at every SparkSource it copies
    warnings.filterwarnings("ignore", message="The spark .* is an experimental feature")
    folder = Path(tempfile.mkdtemp(prefix="pit_spark_"))
    results: list[tuple[str, float, int]] = []
    try:
        began = time.perf_counter()
        feature_path, entity_path, early = make_data(args.rows, folder)
        print(f"{args.rows:,} entity rows x {args.rows:,} feature rows ({early:,} asked before their features), "
              f"made in {time.perf_counter() - began:.1f} s", flush=True)
        conf: dict[str, str | int | bool] = {"spark.ui.enabled": False, "spark.driver.memory": "4g"}
        if args.spark_port:
            conf |= {"spark.driver.port": args.spark_port, "spark.blockManager.port": args.spark_port + 40,
                     "spark.port.maxRetries": 30}
        began = time.perf_counter()
        session = spark_session(SparkConfig.model_validate({"master": "local[*]", "conf": conf}), "pit-bench")
        jvm = time.perf_counter() - began
        with feast_logs():
            seconds, out = run_spark_store(session, folder, feature_path, entity_path)
            results.append(("Feast Spark offline store (engine: spark)", seconds, out))
            print(f"spark done in {seconds:.1f} s", flush=True)
            stop_session()
            seconds, out = run_local_store("duckdb", folder, feature_path, entity_path)
            results.append(("Feast DuckDB offline store (engine: polars)", seconds, out))
            print(f"duckdb done in {seconds:.1f} s", flush=True)
            if not args.skip_file:
                seconds, out = run_local_store("file", folder, feature_path, entity_path)
                results.append(("Feast file (Dask) offline store (Feast's default)", seconds, out))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    spark_seconds = results[0][1]
    print(f"\nPoint-in-time training set, {args.rows:,} entity rows (Spark session start: {jvm:.1f} s, not counted)\n")
    print(f"| {'offline store':<50} | {'seconds':>8} | {'rows out':>12} | {'rows lost':>15} | {'vs Spark':>8} |")
    print(f"|{'-' * 52}|{'-' * 10}|{'-' * 14}|{'-' * 17}|{'-' * 10}|")
    for name, seconds, out in results:
        lost = args.rows - out
        share = f"{lost:,} ({100 * lost / args.rows:.1f} %)" if lost else "0"
        print(f"| {name:<50} | {seconds:>8.1f} | {out:>12,} | {share:>15} | {seconds / spark_seconds:>7.2f}x |")
    lost_spark = args.rows - results[0][2]
    print(f"\ntarget: Feast's Spark store loses no row: {'met' if lost_spark == 0 else f'NOT met ({lost_spark:,} lost)'}")
    return 0 if lost_spark == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
