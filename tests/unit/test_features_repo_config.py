"""`features.repo`: a project reading another project's feature repo takes its feature definitions."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from conveyor.core.config import dump_config, load_config
from conveyor.core.errors import ConfigError
from tests.conftest import ROOT

TAXI = ROOT / "examples" / "nyc-taxi" / "conveyor.yaml"


def _project(folder: Path, name: str, features: dict[str, object]) -> Path:
    folder.mkdir(parents=True)
    data = yaml.safe_load(TAXI.read_text())
    data["name"] = name
    data["features"] = features
    (folder / "conveyor.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return folder / "conveyor.yaml"


def test_the_reader_takes_the_owners_features_and_feast_names(tmp_path: Path) -> None:
    from conveyor.stages.features import feast_names

    owner = yaml.safe_load(TAXI.read_text())
    _project(tmp_path / "taxi", "nyc-taxi", owner["features"])
    path = _project(tmp_path / "tips", "taxi-tips", {"repo": "../taxi"})
    config = load_config(path)
    assert config.features.repo == "../taxi" and config.features.owner == "nyc-taxi"
    assert config.features.engineered() == load_config(tmp_path / "taxi" / "conveyor.yaml").features.engineered()
    assert feast_names(config).project == "nyc_taxi" and config.name == "taxi-tips"
    assert feast_names(config).view == "nyc_taxi_features"
    dump_config(config, tmp_path / "again.yaml")
    assert yaml.safe_load((tmp_path / "again.yaml").read_text())["features"] == {"repo": "../taxi"}


def test_a_reader_declares_no_features_of_its_own(tmp_path: Path) -> None:
    _project(tmp_path / "taxi", "nyc-taxi", {})
    path = _project(tmp_path / "tips", "taxi-tips", {"repo": "../taxi", "entities": ["PULocationID"]})
    with pytest.raises(ConfigError, match="remove features.entities"):
        load_config(path)


def test_no_chains_of_readers(tmp_path: Path) -> None:
    _project(tmp_path / "taxi", "nyc-taxi", {})
    _project(tmp_path / "b", "b", {"repo": "../taxi"})
    with pytest.raises(ConfigError, match="point features.repo at the project owning"):
        load_config(_project(tmp_path / "c", "c", {"repo": "../b"}))


def test_a_missing_owner_is_left_to_the_features_stage(tmp_path: Path) -> None:
    config = load_config(_project(tmp_path / "tips", "taxi-tips", {"repo": "../nowhere"}))
    assert config.features.repo == "../nowhere" and config.features.owner is None
