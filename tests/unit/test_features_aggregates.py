"""Engineered features: declared per-entity aggregates and lags, point-in-time correct, the same
in the training set and online; on-demand features the same in training and serving.

The reference is a brute-force loop over the rows (`_expected`). The data has rows out of file
order (late-arriving), several rows at one instant, a future-dated row and null values.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
import pytest

from conveyor.core.artifacts import Artifact
from conveyor.core.config import EVENT_TIMESTAMP, Aggregate, Config, Lag
from conveyor.core.errors import ConfigError
from conveyor.core.workspace import Workspace
from conveyor.stages.features import (
    OnlineFeatures,
    UnknownEntityError,
    build_features,
    feature_columns,
    on_demand_values,
    training_set,
)
from conveyor.stages.features._aggregates import INSTANT, EntityPlan, entity_table, join_aggregates

T0 = datetime(2019, 3, 1, tzinfo=UTC)
FUNCTIONS = ["count", "sum", "mean", "min", "max", "last"]


@dataclass(frozen=True)
class _CleanResult:
    rows: int


def _config(**features: Any) -> Config:
    columns = {
        "zone": {"type": "integer", "role": "categorical"},
        "dest": {"type": "string", "role": "categorical"},
        "when": {"type": "datetime", "role": "event_time"},
        "distance": {"type": "float", "role": "numeric"},
        "fare": {"type": "float", "role": "numeric"},
    }
    aggregates = [
        *({"entity": "zone", "function": f, "column": None if f == "count" else "fare", "window": w}
          for f in FUNCTIONS for w in ("1h", "24h")),
        {"entity": "dest", "function": "mean", "column": "distance", "window": "7d", "name": "dest_distance_7d"},
        {"entity": "dest", "function": "count", "window": "2h"},
    ]
    spec: dict[str, Any] = {
        "entities": ["zone", "dest"],
        "aggregates": aggregates,
        "lags": [{"entity": "zone", "column": "fare", "lag": 1}, {"entity": "zone", "column": "fare", "lag": 2}],
        "on_demand": [
            {"name": "hour", "kind": "hour_of_day"},
            {"name": "weekday", "kind": "day_of_week"},
            {"name": "distance_vs_dest", "kind": "ratio", "of": ["distance", "dest_distance_7d"]},
        ],
    }
    spec.update(features)
    return Config.model_validate({
        "name": "trips",
        "source": {"path": "t.csv"},
        "schema": {
            "target": "fare",
            "task": "regression",
            "entity": {"key": "row_id", "generated": True},
            "event_time": {"kind": "datetime", "columns": ["when"]},
            "columns": columns,
        },
        "features": spec,
    })


def _rows(n: int = 400, seed: int = 3) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        when = T0 + timedelta(minutes=rng.randint(0, 3 * 24 * 60))
        if i % 25 == 0 and rows:
            when = rows[rng.randrange(len(rows))][EVENT_TIMESTAMP]  # same instant as another row
        rows.append({
            "zone": rng.randint(1, 6),
            "dest": f"d{rng.randint(1, 4)}",
            EVENT_TIMESTAMP: when,
            "distance": rng.choice([None, 0.0, *[round(rng.uniform(0.5, 9), 2) for _ in range(5)]]),
            "fare": rng.choice([None, *[round(rng.uniform(3, 50), 2) for _ in range(8)]]),
        })
    rows.append({"zone": 1, "dest": "d1", EVENT_TIMESTAMP: T0 + timedelta(days=400), "distance": 1.0, "fare": 999.0})
    rng.shuffle(rows)  # file order is not time order: late-arriving rows
    for line, row in enumerate(rows, start=2):
        row["row_id"] = line - 1
        row["_line"] = line
    return rows


def _frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema={
        "row_id": pl.Int64, EVENT_TIMESTAMP: pl.Datetime("us", "UTC"), "zone": pl.Int64, "dest": pl.String,
        "distance": pl.Float64, "fare": pl.Float64, "_line": pl.Int64,
    }).select("row_id", EVENT_TIMESTAMP, "zone", "dest", "distance", "fare", "_line")


def _expected(rows: list[dict[str, Any]], row: dict[str, Any], item: Aggregate | Lag) -> Any:
    """Brute force: the entity's rows strictly earlier than the row, by event time (ties: file order)."""
    t = row[EVENT_TIMESTAMP]
    earlier = sorted(
        (r for r in rows if r[item.entity] == row[item.entity] and r[EVENT_TIMESTAMP] < t),
        key=lambda r: (r[EVENT_TIMESTAMP], r["_line"]),
    )
    if isinstance(item, Lag):
        return earlier[-item.lag][item.column] if len(earlier) >= item.lag else None
    window = [r for r in earlier if r[EVENT_TIMESTAMP] >= t - timedelta(seconds=item.seconds())]
    if item.function == "count":
        return len(window)
    if item.function == "last":
        return window[-1][item.column] if window else None
    values = [r[item.column] for r in window if r[item.column] is not None]
    if item.function == "sum":
        return float(sum(values))
    if not values:
        return None
    return {"mean": sum(values) / len(values), "min": min(values), "max": max(values)}[item.function]


def _close(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return abs(float(a) - float(b)) <= 1e-9 * max(1.0, abs(float(a)))


def _plans(config: Config) -> list[EntityPlan]:
    from conveyor.stages.features._aggregates import entity_plans

    return entity_plans(config)


def test_aggregates_use_only_strictly_earlier_rows() -> None:
    """Every value equals the brute-force one over earlier rows: no row sees itself, a row at the
    same instant, a later row, or the future-dated row; shuffled file order changes nothing."""
    config = _config()
    rows = _rows()
    frame = _frame(rows)
    plans = _plans(config)
    tables = {plan.entity: entity_table(frame, plan) for plan in plans}
    out = join_aggregates(frame, tables, plans)
    assert out.height == frame.height and out["row_id"].to_list() == frame["row_id"].to_list()
    items: list[Aggregate | Lag] = [*config.features.aggregates, *config.features.lags]
    for row, got in zip(rows, out.iter_rows(named=True)):
        for item in items:
            assert _close(_expected(rows, row, item), got[item.output()]), (item.output(), row)
    # the target-derived aggregates never see the future-dated fare of 999
    assert out.filter(pl.col(EVENT_TIMESTAMP) < T0 + timedelta(days=399))["zone_max_fare_24h"].max() < 999
    # shuffling the file again gives the same values, row for row
    again = join_aggregates(frame.sample(fraction=1.0, shuffle=True, seed=7), tables, plans).sort("row_id")
    assert again.select(sorted(again.columns)).equals(out.sort("row_id").select(sorted(out.columns)))


def test_late_arriving_and_future_dated_rows_do_not_leak() -> None:
    """By hand: a zone's mean fare over 24 h never includes the row's own fare, a row of the same
    instant, a row that arrives late in the file but happened later, or a future-dated row."""
    config = _config(entities=["zone"], aggregates=[
        {"entity": "zone", "function": "mean", "column": "fare", "window": "24h", "name": "mean_fare"},
        {"entity": "zone", "function": "count", "window": "24h", "name": "trips"},
    ], lags=[], on_demand=[])
    h = timedelta(hours=1)
    rows = [  # file order
        {"zone": 1, EVENT_TIMESTAMP: T0 + 10 * h, "fare": 10.0},
        {"zone": 1, EVENT_TIMESTAMP: T0 + 12 * h, "fare": 20.0},
        {"zone": 1, EVENT_TIMESTAMP: T0 + 12 * h, "fare": 40.0},  # the same instant
        {"zone": 1, EVENT_TIMESTAMP: T0 + 9000 * h, "fare": 5000.0},  # future-dated
        {"zone": 1, EVENT_TIMESTAMP: T0 + 11 * h, "fare": 1000.0},  # arrives late, happened at 11:00
        {"zone": 1, EVENT_TIMESTAMP: T0 + 30 * h, "fare": 3.0},
        {"zone": 1, EVENT_TIMESTAMP: T0 + 40 * h, "fare": 7.0},  # only the 30:00 row is in its window
    ]
    for line, row in enumerate(rows, start=2):
        row.update(row_id=line - 1, _line=line, dest="d", distance=1.0)
    frame = _frame(rows)
    [plan] = _plans(config)
    out = join_aggregates(frame, {"zone": entity_table(frame, plan)}, [plan])
    assert out["mean_fare"].to_list() == [None, 505.0, 505.0, None, 10.0, (10 + 1000 + 20 + 40) / 4, 3.0]
    assert out["trips"].to_list() == [0, 2, 2, 0, 1, 4, 1]


def test_feature_table_is_exact_between_rows() -> None:
    """The table is exact at any instant, not only at rows: windows empty out when rows expire."""
    config = _config()
    rows = _rows(120, seed=5)
    frame = _frame(rows)
    plans = _plans(config)
    tables = {plan.entity: entity_table(frame, plan) for plan in plans}
    rng = random.Random(1)
    probes = [{"zone": rng.randint(1, 6), "dest": f"d{rng.randint(1, 4)}",
               EVENT_TIMESTAMP: T0 + timedelta(seconds=rng.randint(0, 5 * 86400))} for _ in range(300)]
    probe_frame = pl.DataFrame(probes, schema={"zone": pl.Int64, "dest": pl.String,
                                               EVENT_TIMESTAMP: pl.Datetime("us", "UTC")})
    out = join_aggregates(probe_frame, tables, plans)
    for probe, got in zip(probes, out.iter_rows(named=True)):
        for item in [*config.features.aggregates, *config.features.lags]:
            assert _close(_expected(rows, probe, item), got[item.output()]), (item.output(), probe)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Config, Workspace, Artifact, Artifact, list[dict[str, Any]]]:
    root = tmp_path_factory.mktemp("trips")
    config = _config()
    rows = _rows()
    frame = _frame(rows)
    path = root / "data" / "clean" / "c0ffee.parquet"
    path.parent.mkdir(parents=True)
    frame.write_parquet(path)
    clean: Artifact = Artifact("clean", path, "c0ffee" * 10, _CleanResult(frame.height))
    workspace = Workspace.at(root)
    features = build_features(config, workspace, clean)
    return config, workspace, clean, features, rows


def test_training_set_keeps_rows_and_adds_engineered_columns(store: Any) -> None:
    import ibis

    config, workspace, clean, features, rows = store
    dataset = training_set(config, workspace, features, clean)
    # the DuckDB instance of Feast's offline store is closed after the join (it holds the join's memory)
    assert ibis.options.default_backend is None
    got = pl.read_parquet(dataset.path)
    engineered = config.features.engineered()
    assert got.columns == ["row_id", EVENT_TIMESTAMP, "zone", "dest", "distance", *engineered, "fare"]
    assert dataset.result.rows == dataset.result.entity_rows == len(rows) == got["row_id"].n_unique()
    assert dataset.result.features == feature_columns(config) == ["zone", "dest", "distance", *engineered]
    assert dataset.result.engineered == engineered
    by_id = {row["row_id"]: row for row in rows}
    for out in got.iter_rows(named=True):
        row = by_id[out["row_id"]]
        for item in [*config.features.aggregates, *config.features.lags]:
            assert _close(_expected(rows, row, item), out[item.output()]), item.output()
        assert out["hour"] == row[EVENT_TIMESTAMP].hour and out["weekday"] == row[EVENT_TIMESTAMP].isoweekday()


def test_online_value_equals_training_value_at_the_next_instant(store: Any) -> None:
    """What the online store serves for an entity is what the training-set builder computes for
    a row of that entity at the store's next instant; unknown keys are named."""
    config, workspace, clean, features, rows = store
    online = OnlineFeatures(config, workspace)
    as_of = max(r[EVENT_TIMESTAMP] for r in rows)
    assert online.entities_as_of == as_of
    assert features.result.online_as_of == as_of.isoformat()
    assert online.entities == ["zone", "dest"]
    requests = [{"zone": z, "dest": d} for z in range(1, 7) for d in ("d1", "d2", "d3", "d4")]
    served = online.get_entities(requests)
    plans = _plans(config)
    tables = {plan.entity: entity_table(_frame(rows), plan) for plan in plans}
    probe = pl.DataFrame([{**r, EVENT_TIMESTAMP: as_of + INSTANT} for r in requests],
                         schema={"zone": pl.Int64, "dest": pl.String, EVENT_TIMESTAMP: pl.Datetime("us", "UTC")})
    built = join_aggregates(probe, tables, plans).to_dicts()
    for request, got, want in zip(requests, served, built):
        assert set(got) == set(online.engineered)
        for name in online.engineered:
            assert _close(want[name], got[name]), (request, name, want[name], got[name])
    # and the same from the brute force, for zone 1 (its future-dated row is in its windows)
    row = {"zone": 1, "dest": "d1", EVENT_TIMESTAMP: as_of + INSTANT}
    assert _close(_expected(rows, row, config.features.aggregates[0]), served[0]["zone_count_1h"])
    assert served[0]["zone_max_fare_24h"] == 999.0  # the newest row is in the online values
    with pytest.raises(UnknownEntityError, match="unknown zone 4242"):
        online.get_entities([{"zone": 1, "dest": "d1"}, {"zone": 4242, "dest": "d1"}])
    with pytest.raises(UnknownEntityError, match="unknown dest 'nowhere'"):
        online.get_entities([{"zone": 1, "dest": "nowhere"}])
    fresh = online.freshness(now=as_of + timedelta(hours=2))
    assert fresh == {"as_of": as_of.isoformat(), "age_seconds": 7200.0}


def test_an_unseen_or_absent_entity_reads_as_a_new_entity_on_its_own(store: Any) -> None:
    """`entity_features` (what serving reads) owns the rule: an unseen or absent key gets what a
    training row of a new entity gets (counts and sums 0, the rest missing), for that entity
    only; a known entity in the same row keeps its values."""
    config, workspace, clean, features, rows = store
    online = OnlineFeatures(config, workspace)
    [known] = online.get_entities([{"zone": 1, "dest": "d1"}])
    plans = {plan.entity: plan for plan in _plans(config)}
    for request in ({"zone": 1, "dest": "nowhere"}, {"zone": 1}, {"zone": 1, "dest": None}):
        [got] = online.entity_features([request])
        assert set(got) == set(online.engineered)
        for name in plans["zone"].outputs():
            assert got[name] == known[name], (request, name)
        for name in plans["dest"].outputs():
            assert got[name] == (0.0 if name in plans["dest"].zero_when_empty() else None), (request, name)
    both = online.entity_features([{"zone": 4242, "dest": "d1"}, {"zone": 1, "dest": "d1"}])
    assert both[1] == known
    assert all(both[0][n] == known[n] for n in plans["dest"].outputs())


def test_on_demand_values_match_the_training_set(store: Any) -> None:
    config, workspace, clean, features, rows = store
    got = pl.read_parquet(training_set(config, workspace, features, clean).path)
    sample = got.head(60).to_dicts()
    served = on_demand_values(config, sample)
    for row, values in zip(sample, served):
        for feature in config.features.on_demand:
            assert _close(row[feature.name], values[feature.name]), feature.name
    # a naive time is UTC; an ISO string works; the divisor 0 gives None
    one = on_demand_values(config, [{"distance": 3.0, "dest_distance_7d": 0.0}], event_time="2019-03-04T17:30:00")
    assert one == [{"hour": 17, "weekday": 1, "distance_vs_dest": None}]


def test_feast_registry_has_one_view_per_entity_with_ttl(store: Any) -> None:
    config, workspace, _, features, _ = store
    from conveyor.stages.features._store import open_store

    registry = open_store(config, workspace, existing=True)
    views = {v.name: v for v in registry.list_feature_views()}
    assert set(features.result.entity_views) == {"trips_by_zone", "trips_by_dest"}
    assert views["trips_by_zone"].ttl == timedelta(0)  # it has lags: values never expire
    assert views["trips_by_dest"].ttl == timedelta(days=7, seconds=1)
    service = registry.get_feature_service("trips_model")
    assert {p.name for p in service.feature_view_projections} == {"trips_features", "trips_by_zone", "trips_by_dest"}


def test_features_config_errors_name_the_key() -> None:
    with pytest.raises(ValueError, match="entity 'nope' is not in features.entities"):
        _config(aggregates=[{"entity": "nope", "function": "count", "window": "1h"}])
    with pytest.raises(ValueError, match="needs a column"):
        _config(aggregates=[{"entity": "zone", "function": "mean", "window": "1h"}])
    with pytest.raises(ValueError, match="window"):
        _config(aggregates=[{"entity": "zone", "function": "count", "window": "1 day"}])
    from conveyor.stages.features._aggregates import check_features_config

    with pytest.raises(ConfigError, match="'when' is not a feature"):
        check_features_config(_config(entities=["when"], aggregates=[], lags=[]))
    with pytest.raises(ConfigError, match="reads 'dest'"):
        check_features_config(_config(aggregates=[{"entity": "zone", "function": "sum", "column": "dest",
                                                    "window": "1h"}]))
