"""Feature-store benchmark: online lookups by entity key, and the point-in-time training-set join.

    PYTHONPATH=src .venv/bin/python benchmarks/features.py [--rows 1000000] [--entity-rows 100000]

1. Online lookup, 1 and 100 entities: `OnlineFeatures.get_entities` (Conveyor: key conversion,
   unknown-key check, rows by name) against the plain Feast call it wraps
   (`FeatureStore.get_online_features(...).to_dict()` with the references built once), on the same
   SQLite online store, built by `build_features` from a synthetic project (20,000 zones).
2. Point-in-time join, 100k entity rows x 1M feature rows (100k entities, 10 feature rows
   each, 10 float features): Conveyor's `join_aggregates` (polars ASOF) against Feast's file
   offline store (`get_historical_features`) on the same Parquet file; rows in and out counted.

Both parts run in the same process, one after the other; timings are wall clock.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from conveyor.core.artifacts import Artifact
from conveyor.core.config import EVENT_TIMESTAMP, Aggregate, Config
from conveyor.core.workspace import Workspace
from conveyor.stages.features import OnlineFeatures, build_features
from conveyor.stages.features._aggregates import EntityPlan, join_aggregates

T0 = datetime(2024, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class _Clean:
    rows: int


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered) * 1000, ordered[int(0.99 * (len(ordered) - 1))] * 1000


def _lookup_project(root: Path, zones: int, rows: int) -> tuple[Config, Workspace]:
    config = Config.model_validate({
        "name": "bench",
        "source": {"path": "x.csv"},
        "schema": {
            "target": "y",
            "task": "regression",
            "entity": {"key": "row_id", "generated": True},
            "event_time": {"kind": "datetime", "columns": ["t"]},
            "columns": {
                "zone": {"type": "integer", "role": "categorical"},
                "t": {"type": "datetime", "role": "event_time"},
                "x": {"type": "float", "role": "numeric"},
                "y": {"type": "float", "role": "numeric"},
            },
        },
        "features": {
            "entities": ["zone"],
            "aggregates": [
                {"entity": "zone", "function": "count", "window": "1h"},
                {"entity": "zone", "function": "count", "window": "24h"},
                {"entity": "zone", "function": "mean", "column": "y", "window": "24h"},
                {"entity": "zone", "function": "max", "column": "x", "window": "7d"},
                {"entity": "zone", "function": "sum", "column": "x", "window": "7d"},
            ],
        },
    })
    rng = np.random.default_rng(0)
    frame = pl.DataFrame({
        "row_id": np.arange(1, rows + 1),
        EVENT_TIMESTAMP: [T0 + timedelta(seconds=int(s)) for s in rng.integers(0, 30 * 86400, rows)],
        "zone": rng.integers(0, zones, rows),
        "x": rng.normal(5, 2, rows),
        "y": rng.normal(20, 5, rows),
        "_line": np.arange(2, rows + 2),
    }).with_columns(pl.col(EVENT_TIMESTAMP).cast(pl.Datetime("us", "UTC")))
    path = root / "data" / "clean" / "bench.parquet"
    path.parent.mkdir(parents=True)
    frame.write_parquet(path)
    workspace = Workspace.at(root)
    build_features(config, workspace, Artifact("clean", path, "b" * 64, _Clean(rows)))
    return config, workspace


def bench_lookup(zones: int = 20_000, rows: int = 100_000) -> list[tuple[str, float, float]]:
    with tempfile.TemporaryDirectory() as tmp:
        config, workspace = _lookup_project(Path(tmp), zones, rows)
        online = OnlineFeatures(config, workspace)
        store = online._store  # the same FeatureStore: Feast's own call, references built once
        refs = list(online._entity_refs)
        join_key = online._entity_keys[0][1]
        rng = np.random.default_rng(1)
        known = sorted(int(z) for z in pl.read_parquet(workspace.feature_repo / "data" / f"by_{join_key}.parquet")[join_key].unique())
        results = []
        for size, repeats in ((1, 2000), (100, 300)):
            batches = [[int(k) for k in rng.choice(known, size)] for _ in range(repeats)]
            for _ in range(20):  # warm up both paths
                online.get_entities([{"zone": k} for k in batches[0]])
                store.get_online_features(features=refs, entity_rows={join_key: batches[0]}).to_dict()
            ours, feast = [], []
            for keys in batches:  # interleaved: the same load on both
                requests = [{"zone": k} for k in keys]
                began = time.perf_counter()
                online.get_entities(requests)
                ours.append(time.perf_counter() - began)
                began = time.perf_counter()
                store.get_online_features(features=refs, entity_rows={join_key: keys}).to_dict()
                feast.append(time.perf_counter() - began)
            results.append((f"lookup {size} entit{'y' if size == 1 else 'ies'}: Conveyor get_entities", *_percentiles(ours)))
            results.append((f"lookup {size} entit{'y' if size == 1 else 'ies'}: Feast get_online_features", *_percentiles(feast)))
        return results


def _pit_data(feature_rows: int, entity_rows: int, entities: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    rng = np.random.default_rng(2)
    span = 30 * 86400 * 1_000_000
    table = pl.DataFrame({
        "zone": rng.integers(0, entities, feature_rows),
        EVENT_TIMESTAMP: rng.integers(0, span, feature_rows),
        **{f"f{i}": rng.normal(0, 1, feature_rows) for i in range(10)},
    })
    rows = pl.DataFrame({"zone": rng.integers(0, entities, entity_rows), EVENT_TIMESTAMP: rng.integers(0, span, entity_rows)})
    start = int(T0.timestamp() * 1_000_000)
    as_time = (pl.col(EVENT_TIMESTAMP) + start).cast(pl.Datetime("us", "UTC"))
    return table.with_columns(as_time).sort(["zone", EVENT_TIMESTAMP]), rows.with_columns(as_time)


def bench_point_in_time(feature_rows: int, entity_rows: int) -> list[tuple[str, float, int, int]]:
    table, rows = _pit_data(feature_rows, entity_rows, entities=feature_rows // 10)
    plan = EntityPlan(
        "zone", 0, tuple(Aggregate(entity="zone", function="mean", column="x", window="1d", name=f"f{i}") for i in range(10))
    )
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "features.parquet"
        table.write_parquet(path)
        # Conveyor: the table read from its Parquet file, then the ASOF join (what `dataset` does)
        began = time.perf_counter()
        ours = join_aggregates(rows, {"zone": pl.read_parquet(path)}, [plan])
        seconds = time.perf_counter() - began
        results.append(("training set: Conveyor join_aggregates (polars ASOF)", seconds, entity_rows, ours.height))
        # Feast's file offline store on the same file
        from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
        from feast.repo_config import RepoConfig
        from feast.types import Float64

        from conveyor.stages.features._repo import import_feast
        from conveyor.stages.features._store import feast_logs

        import_feast()
        repo = Path(tmp) / "repo"
        repo.mkdir()
        config = RepoConfig(
            project="bench", provider="local", registry={"registry_type": "file", "path": str(repo / "registry.pb")},
            online_store={"type": "sqlite", "path": str(repo / "online.db")}, offline_store={"type": "file"},
            entity_key_serialization_version=3, repo_path=repo,
        )
        store = FeatureStore(repo_path=str(repo), config=config)
        entity = Entity(name="zone", join_keys=["zone"], value_type=ValueType.INT64)
        view = FeatureView(
            name="by_zone", entities=[entity], ttl=timedelta(0),
            schema=[Field(name=f"f{i}", dtype=Float64) for i in range(10)],
            source=FileSource(path=str(path), timestamp_field=EVENT_TIMESTAMP),
        )
        with feast_logs():
            store.apply([entity, view])
            entity_df = rows.to_pandas()
            began = time.perf_counter()
            theirs = store.get_historical_features(
                entity_df=entity_df, features=[f"by_zone:f{i}" for i in range(10)]
            ).to_df()
            seconds = time.perf_counter() - began
        results.append(("training set: Feast file offline store", seconds, entity_rows, len(theirs)))
    return results


def bench_table_build(events: int) -> tuple[float, int]:
    """The features stage's own cost: one entity's feature table from `events` rows (5 aggregates)."""
    from conveyor.stages.features._aggregates import entity_table

    table, _ = _pit_data(events, 1, entities=events // 10)
    aggregates = (
        Aggregate(entity="zone", function="count", window="1h"),
        Aggregate(entity="zone", function="count", window="24h"),
        Aggregate(entity="zone", function="mean", column="f0", window="24h"),
        Aggregate(entity="zone", function="max", column="f1", window="7d"),
        Aggregate(entity="zone", function="last", column="f2", window="7d"),
    )
    began = time.perf_counter()
    built = entity_table(table, EntityPlan("zone", 0, aggregates, (), ("f0", "f1", "f2")))
    return time.perf_counter() - began, built.height


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="feature rows of the point-in-time join")
    parser.add_argument("--entity-rows", type=int, default=100_000)
    args = parser.parse_args(argv)
    print("online lookup (ms)                                          p50      p99")
    lookup = bench_lookup()
    for name, p50, p99 in lookup:
        print(f"  {name:<56} {p50:7.3f}  {p99:7.3f}")
    for size in (0, 2):
        ours, feast = lookup[size], lookup[size + 1]
        print(f"  Conveyor adds {ours[1] - feast[1]:+.3f} ms at p50 ({ours[0].split(':')[0]})")
    print(f"\npoint-in-time training set, {args.entity_rows:,} entity rows x {args.rows:,} feature rows")
    for name, seconds, rows_in, rows_out in bench_point_in_time(args.rows, args.entity_rows):
        lost = rows_in - rows_out
        print(f"  {name:<56} {seconds:6.2f} s  rows in {rows_in:,} out {rows_out:,} ({lost:,} lost)")
    seconds, height = bench_table_build(args.rows)
    print(f"\nfeature table of one entity view from {args.rows:,} rows (5 aggregates, 3 windows): "
          f"{seconds:.2f} s, {height:,} change points")
    return 0


if __name__ == "__main__":
    sys.exit(main())
