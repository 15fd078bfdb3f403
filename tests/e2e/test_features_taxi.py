"""The taxi example through the CLI, up to the training set: zone views, engineered columns,
`conveyor features list` / `show`, online reads by zone keys."""

from __future__ import annotations

import hashlib
from pathlib import Path

import polars as pl
import pytest

from tests.conftest import ROOT, conveyor, stage_result

pytestmark = pytest.mark.slow

TAXI = ROOT / "examples" / "nyc-taxi"
SHA256 = "c0e6b037a130e6939b44bd47d8e713091f51e85ae065523a5298eb3a1adb4632"


@pytest.fixture(scope="module")
def taxi(taxi_models: Path) -> Path:
    """The taxi example run once (with two models: tests/e2e/test_models_taxi.py serves them)."""
    return taxi_models


def test_the_example_data_is_the_pinned_file() -> None:
    assert hashlib.sha256((TAXI / "nyc_taxi_trips.csv").read_bytes()).hexdigest() == SHA256
    assert SHA256 in (TAXI / "README.md").read_text()


def test_taxi_training_set_has_the_zone_features(taxi: Path) -> None:
    from conveyor.core.config import load_config

    config = load_config(taxi / "conveyor.yaml")
    result = stage_result(taxi, "dataset")
    frame = pl.read_parquet(next((taxi / "data" / "training").glob("*.parquet")))
    assert result.rows == frame.height == 6500
    engineered = config.features.engineered()
    assert len(config.features.aggregates) >= 4 and config.features.on_demand
    assert frame.columns == ["row_id", "event_timestamp", *config.schema.features(), *engineered, "fare_amount"]
    assert result.features == [*config.schema.features(), *engineered]
    # the first trip of a zone has no earlier trip: count 0, no mean fare
    first = frame.sort("event_timestamp").group_by("PULocationID", maintain_order=True).first()
    assert (first["pu_trips_24h"] == 0).all() and first["pu_mean_fare_7d"].is_null().all()
    assert frame["pickup_hour"].to_list() == frame["event_timestamp"].dt.hour().cast(pl.Int64).to_list()


def test_feature_views_list_and_show(taxi: Path) -> None:
    listed = conveyor("features", "list", "-C", str(taxi)).stdout
    for name in ("nyc_taxi_features", "nyc_taxi_by_PULocationID", "nyc_taxi_by_DOLocationID"):
        assert name in listed
    assert "2019-03-31T23:43:45" in listed and "3 feature views" in listed
    assert conveyor("feature-views", "-C", str(taxi)).stdout == listed  # the other name of the same list
    shown = conveyor("features", "show", "nyc_taxi_by_PULocationID", "-C", str(taxi)).stdout
    assert "PULocationID" in shown and "pu_mean_fare_7d" in shown and "Float64" in shown
    assert "data/by_PULocationID.parquet" in shown and "read by: fare, tip" in shown
    from conveyor import Project

    views = Project(taxi).feature_views()
    used = {v.name: v.models for v in views}
    # the tip model reads no dropoff-zone feature: its feature service does not project that view
    assert used == {"nyc_taxi_features": ["fare", "tip"], "nyc_taxi_by_PULocationID": ["fare", "tip"],
                    "nyc_taxi_by_DOLocationID": ["fare"]}
    by_zone = next(v for v in views if v.name == "nyc_taxi_by_PULocationID")
    assert by_zone.entity == "PULocationID" and by_zone.source == "data/by_PULocationID.parquet"
    assert ("pu_mean_fare_7d", "Float64") in {(name, dtype) for name, _, dtype in by_zone.fields}
    assert any(v.online_as_of and v.online_as_of.startswith("2019-03-31T23:43:45") for v in views), views
    missing = conveyor("features", "show", "nope", "-C", str(taxi), check=False)
    assert missing.returncode == 1 and "no feature view 'nope'" in missing.stderr


def test_online_zone_features_by_key(taxi: Path) -> None:
    from conveyor.core import Workspace
    from conveyor.core.config import load_config
    from conveyor.stages.features import OnlineFeatures, UnknownEntityError

    config = load_config(taxi / "conveyor.yaml")
    online = OnlineFeatures(config, Workspace.at(taxi))
    [row] = online.get_entities([{"PULocationID": 132, "DOLocationID": 48}])
    assert set(row) == {"pu_trips_1h", "pu_trips_24h", "pu_mean_fare_7d", "pu_mean_distance_7d",
                        "do_trips_24h", "do_mean_fare_7d"}
    assert row["pu_trips_24h"] > 0 and row["pu_mean_fare_7d"] > 0
    with pytest.raises(UnknownEntityError, match="unknown PULocationID 9999"):
        online.get_entities([{"PULocationID": 9999, "DOLocationID": 48}])
