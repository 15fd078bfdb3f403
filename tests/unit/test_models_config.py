"""`models:`: several models over the shared feature views, each its own Config, stages and cache key."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from conveyor.core.config import Config
from tests.conftest import ROOT

TIP = ["trip_distance", "payment_type", "fare_amount", "pu_trips_24h"]


def _config(**models: Any) -> Config:
    data = yaml.safe_load((ROOT / "examples" / "nyc-taxi" / "conveyor.yaml").read_text())
    data["schema"]["drop"] = ["total_amount"]
    data["models"] = models
    return Config.model_validate(data)


def _two(tip_features: list[str] = TIP) -> Config:
    return _config(fare={"target": "fare_amount", "task": "regression"},
                   tip={"target": "tip_amount", "task": "regression", "features": tip_features})


def test_a_model_config_is_named_and_reads_only_its_inputs() -> None:
    config = _two()
    fare, tip = config.for_model("fare"), config.for_model("tip")
    assert (fare.name, fare.model, fare.schema.target) == ("nyc-taxi-fare", "fare", "fare_amount")
    assert (tip.name, tip.schema.target) == ("nyc-taxi-tip", "tip_amount")
    assert sorted(tip.model_inputs()) == sorted(TIP)
    assert "tip_amount" not in fare.model_inputs()  # another model's target is never a default input
    assert set(config.features.engineered()) <= set(fare.model_inputs())
    assert config.targets() == ["fare_amount", "tip_amount"]
    assert config.model is None and config.model_inputs() == [*config.schema.features(), *config.features.engineered()]


@pytest.mark.parametrize(("spec", "says"), [
    ({"target": "nope", "task": "regression"}, "models.x.target: 'nope'"),
    ({"target": "total_amount", "task": "regression"}, "schema.drop"),
    ({"target": "tip_amount", "task": "regression", "features": ["tip_amount"]}, "models.x.features"),
    ({"target": "tip_amount", "task": "regression", "features": ["made_up"]}, "'made_up' is not a model input"),
])
def test_a_model_that_does_not_fit_the_schema_is_refused(spec: dict[str, Any], says: str) -> None:
    with pytest.raises(ValidationError, match=says):
        _config(x=spec)


def test_each_model_has_its_own_stages_and_cache_keys(tmp_path: Path) -> None:
    from conveyor.core import Workspace
    from conveyor.runner import STAGES, cache_key, stages_of

    workspace = Workspace.at(tmp_path)
    single = _config()
    assert stages_of(single) is STAGES
    stages = {stage.name: stage for stage in stages_of(_two())}
    assert list(stages) == ["ingest", "prepare", "eda", "features", "dataset", "train.fare", "promote.fare",
                            "train.tip", "promote.tip"]
    assert stages["promote.tip"].needs == ("train.tip", "dataset")
    upstream: Any = {name: SimpleNamespace(digest=name) for name in stages}

    def keys(config: Config) -> dict[str, str]:
        return {name: cache_key(stage, config, workspace, upstream) for name, stage in stages.items() if name != "ingest"}

    before, after = keys(_two()), keys(_two([*TIP, "pickup_hour"]))
    changed = {name for name in before if before[name] != after[name]}
    assert changed == {"features", "train.tip", "promote.tip"}  # the views' data and the fare model stay cached


def test_for_picks_the_models_a_command_is_about() -> None:
    from conveyor.core.errors import ConfigError
    from conveyor.runner import model_configs

    config = _two()
    assert [c.name for c in model_configs(config, None)] == ["nyc-taxi-fare", "nyc-taxi-tip"]
    assert [c.model for c in model_configs(config, "tip", one=True)] == ["tip"]
    with pytest.raises(ConfigError, match=r"several models \(fare, tip\); say which with --for MODEL"):
        model_configs(config, None, one=True)
    with pytest.raises(ConfigError, match=r"no model 'duration' in models: \(the project has fare, tip\)"):
        model_configs(config, "duration")
    single = _config()
    assert model_configs(single, None, one=True) == [single]
    with pytest.raises(ConfigError, match="this project has one model"):
        model_configs(single, "fare")


def test_serving_shadow_is_one_per_model_in_a_project_with_models() -> None:
    from conveyor.core.config import Config

    config = _two()
    data = config.model_dump(mode="json", by_alias=True)
    data["serving"]["shadow"] = {"tip": 1}
    per_model = Config.model_validate(data)
    assert per_model.for_model("tip").serving.shadow == 1 and per_model.for_model("fare").serving.shadow is None
    data["serving"]["shadow"] = 1
    with pytest.raises(ValidationError, match=r"names a version of one model, and this project has several"):
        Config.model_validate(data)
    data["serving"]["shadow"] = {"duration": "challenger"}
    with pytest.raises(ValidationError, match=r"serving.shadow.duration: no model 'duration'"):
        Config.model_validate(data)
    single = _config().model_dump(mode="json", by_alias=True)
    single["serving"]["shadow"] = {"tip": 1}
    with pytest.raises(ValidationError, match="a mapping of models is for a project with models:"):
        Config.model_validate(single)
