"""The taxi example through the CLI, up to the training set: zone views, engineered columns,
`conveyor feature-views`, online reads by zone keys."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import polars as pl
import pytest

from tests.conftest import ROOT, conveyor, stage_result

pytestmark = pytest.mark.slow

TAXI = ROOT / "examples" / "nyc-taxi"
SHA256 = "c0e6b037a130e6939b44bd47d8e713091f51e85ae065523a5298eb3a1adb4632"


@pytest.fixture(scope="module")
def taxi(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = tmp_path_factory.mktemp("taxi") / "p"
    project.mkdir()
    for name in ("nyc_taxi_trips.csv", "conveyor.yaml"):
        shutil.copy(TAXI / name, project / name)
    for stage in ("ingest", "prepare", "features", "dataset"):
        conveyor(stage, "-C", str(project))
    return project


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
    listed = conveyor("feature-views", "-C", str(taxi)).stdout
    for name in ("nyc_taxi_features", "nyc_taxi_by_PULocationID", "nyc_taxi_by_DOLocationID"):
        assert name in listed
    assert "2019-03-31T23:43:45" in listed
    shown = conveyor("feature-views", "show", "nyc_taxi_by_PULocationID", "-C", str(taxi)).stdout
    assert "PULocationID" in shown and "pu_mean_fare_7d" in shown and "Float64" in shown
    assert "data/by_PULocationID.parquet" in shown
    missing = conveyor("feature-views", "show", "nope", "-C", str(taxi), check=False)
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


def test_a_served_row_is_joined_with_its_zones_online_features(taxi: Path) -> None:
    """Over HTTP: a raw row is predicted with its zones' online aggregates and on-demand values
    joined in, exactly as the model predicts that enriched row; an unseen zone is a new zone."""
    import csv
    from datetime import UTC, datetime, timedelta

    import httpx
    import yaml

    from conveyor.core import Workspace
    from conveyor.core.config import load_config
    from conveyor.stages.features import OnlineFeatures, on_demand_values
    from conveyor.stages.training import load_champion
    from tests.conftest import Server

    conveyor("train", "-C", str(taxi), "--no-search")
    conveyor("promote", "-C", str(taxi))
    config = load_config(taxi / "conveyor.yaml")
    columns = yaml.safe_load((taxi / "conveyor.yaml").read_text())["schema"]["columns"]
    with (taxi / "nyc_taxi_trips.csv").open(newline="") as handle:
        raw = list(csv.DictReader(handle))[-3:]

    def value(name: str, text: str) -> object:
        if text == "":
            return None
        column = columns[name]
        return float(text) if column["role"] == "numeric" or column["type"] == "float" else (
            int(text) if column["type"] == "integer" else text)

    rows = [{f: value(f, r[f]) for f in config.schema.features()} for r in raw]
    server = Server(taxi).start()
    try:
        answer = httpx.post(f"{server.url}/predict", json={"rows": rows})
        unseen = httpx.post(f"{server.url}/predict", json={"rows": [{**rows[0], "PULocationID": 99999}]})
    finally:
        server.stop()
    assert answer.status_code == 200, answer.text
    assert unseen.status_code == 200, unseen.text
    served = [p["prediction"] for p in answer.json()["predictions"]]

    online = OnlineFeatures(config, Workspace.at(taxi))
    joined = [{**row, **found} for row, found in zip(rows, online.get_entities(rows), strict=True)]
    model = load_champion(config, Workspace.at(taxi)).model
    assert set(config.features.engineered()) <= set(model.features)

    def expected(at: datetime) -> list[float]:  # on-demand hour and weekday come from the request time
        extra = on_demand_values(config, joined, event_time=at)
        return list(model.predict_records([{**r, **e} for r, e in zip(joined, extra, strict=True)])["prediction"])

    now = datetime.now(UTC)  # the server answered a few seconds ago: in this hour or, just past it, the last
    assert served in (pytest.approx(expected(now), rel=1e-9), pytest.approx(expected(now - timedelta(minutes=2)), rel=1e-9))
    without = model.predict_records(rows)["prediction"]  # the same rows with the zone features missing
    assert served != pytest.approx(without, rel=1e-6)
