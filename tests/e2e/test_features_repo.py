"""A second project reading the taxi project's feature repo (`features.repo`) without owning it:
its own target (the tip) and a few columns, the taxi project's views, registry and stores."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import polars as pl
import pytest
import yaml

from tests.conftest import conveyor, stage_artifact, stage_result

pytestmark = pytest.mark.slow

READER_COLUMNS = ["trip_distance", "passenger_count", "PULocationID", "DOLocationID", "payment_type"]


def _hashes(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def _reader(owner: Path, folder: Path, repo: str | None = None) -> Path:
    """A project named otherwise, on the same trips, predicting the tip from a few columns."""
    folder.mkdir(parents=True)
    shutil.copy(owner / "nyc_taxi_trips.csv", folder / "nyc_taxi_trips.csv")
    config = yaml.safe_load((owner / "conveyor.yaml").read_text())
    del config["models"]
    config["name"] = "taxi-tips"
    schema = config["schema"]
    schema["target"] = "tip_amount"
    schema["drop"] = [
        name for name, column in schema["columns"].items()
        if column["role"] in ("numeric", "categorical") and name not in READER_COLUMNS and name != "tip_amount"
    ]
    config["features"] = {"repo": repo or os.path.relpath(owner, folder)}
    config["training"]["lightgbm"]["n_estimators"] = 50  # tests: a small model
    (folder / "conveyor.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return folder


def test_a_project_reads_another_projects_feature_repo(taxi_models: Path, tmp_path: Path) -> None:
    from conveyor.core import Workspace
    from conveyor.core.config import load_config
    from conveyor.stages.features import OnlineFeatures

    owner = taxi_models
    before = _hashes(owner / "feature_repo")
    reader = _reader(owner, tmp_path / "tips")
    conveyor("run", "-C", str(reader), "--no-search")

    assert _hashes(owner / "feature_repo") == before  # nothing applied, materialized or written there
    assert not (reader / "feature_repo").exists()
    linked = stage_result(reader, "features")
    assert linked.repo == str(owner.resolve())
    assert linked.feature_service == "nyc_taxi_model" and linked.project == "nyc_taxi"

    # the training set: the owner's rows and features (point in time), the reader's own target
    config = load_config(reader / "conveyor.yaml")
    mine = pl.read_parquet(stage_artifact(reader, "dataset").path)
    theirs = pl.read_parquet(stage_artifact(owner, "dataset").path)
    shared = ["row_id", "event_timestamp", *config.schema.features(), *config.features.engineered()]
    assert mine.columns == [*shared, "tip_amount"]
    assert mine.height == theirs.height == 6500
    assert mine.select(shared).equals(theirs.select(shared))
    assert stage_result(reader, "promote").promoted

    # serving reads the entity features from the owner's online store
    owner_online = OnlineFeatures(load_config(owner / "conveyor.yaml"), Workspace.at(owner))
    reader_online = OnlineFeatures(config, Workspace.at(reader))
    zones = [{"PULocationID": 132, "DOLocationID": 48}, {"PULocationID": 161, "DOLocationID": 237}]
    assert reader_online.get_entities(zones) == owner_online.get_entities(zones)
    assert reader_online.get([1, 2]) == [
        {name: row[name] for name in reader_online.features} if row else None for row in owner_online.get([1, 2])
    ]

    # a rebuilt owner store is noticed: the reader's features stage (and what follows) runs again
    from conveyor.stages.features import FEATURES

    assert FEATURES.extra_key is not None
    registry = owner / "feature_repo" / "data" / "registry.pb"
    saved = registry.read_bytes()
    key = FEATURES.extra_key(config, Workspace.at(reader))
    try:
        registry.write_bytes(saved + b"\n")
        assert FEATURES.extra_key(config, Workspace.at(reader)) != key
    finally:
        registry.write_bytes(saved)
    assert FEATURES.extra_key(config, Workspace.at(reader)) == key


def test_a_missing_feature_repo_is_one_line(taxi_models: Path, tmp_path: Path) -> None:
    reader = _reader(taxi_models, tmp_path / "tips", repo="../no-such-project")
    done = conveyor("run", "-C", str(reader), "--no-search", check=False)
    assert done.returncode == 1, done.stdout + done.stderr
    message = [line for line in (done.stdout + done.stderr).splitlines() if "no-such-project" in line]
    assert len(message) == 1 and "Traceback" not in done.stderr
    assert "features.repo" in message[0] and "no such folder" in message[0]
