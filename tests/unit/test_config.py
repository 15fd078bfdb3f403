from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from conveyor.core import ConfigError, load_config
from conveyor.core.config import Config, dump_config

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "bike-sharing" / "conveyor.yaml"


def _write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "conveyor.yaml"
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


def _example() -> dict:
    return yaml.safe_load(EXAMPLE.read_text())


def test_the_example_loads_and_round_trips(tmp_path: Path) -> None:
    config = load_config(EXAMPLE)
    assert config.schema.target == "cnt"
    assert "casual" not in config.schema.features() and "instant" not in config.schema.features()
    assert config.schema.features()[:3] == ["season", "yr", "mnth"]
    dump_config(config, tmp_path / "again.yaml")
    assert load_config(tmp_path / "again.yaml") == config


@pytest.mark.parametrize(
    ("change", "needles"),
    [
        (lambda d: d["schema"].update(task="regresion"), ["schema.task", "'regresion'", "'regression' or 'classification'"]),
        (lambda d: d["training"].update(test_sise=0.2), ["training.test_sise", "unknown key"]),
        (lambda d: d["training"].update(test_size=1.5), ["training.test_size", "1.5", "less than 1"]),
        (lambda d: d["serving"].update(port="8000"), ["serving.port", "'8000'", "valid integer"]),
        (lambda d: d.pop("source"), ["source: required key is missing"]),
        (lambda d: d["schema"].update(drop=["nope"]), ["column 'nope' is not in schema.columns"]),
        (lambda d: d["schema"]["event_time"].update(columns=["dteday"]), ["date_hour", "takes 2 column(s)"]),
        (lambda d: d.update(name="Bike Sharing!"), ["name", "'Bike Sharing!'", "pattern"]),
    ],
)
def test_invalid_values_name_the_key_value_and_expectation(tmp_path: Path, change, needles: list[str]) -> None:
    data = _example()
    change(data)
    with pytest.raises(ConfigError) as error:
        load_config(_write(tmp_path, data))
    for needle in needles:
        assert needle in str(error.value)


def test_not_yaml_and_not_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(_write(tmp_path, "a: [unclosed"))
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(_write(tmp_path, "- a\n- b\n"))
    with pytest.raises(ConfigError, match="no project file"):
        load_config(tmp_path / "missing.yaml")


def test_a_key_given_twice_is_an_error_naming_both_lines(tmp_path: Path) -> None:
    text = EXAMPLE.read_text() + "\nserving:\n  api_key_env: SERVING_KEY\n"  # a second serving: section
    with pytest.raises(ConfigError) as error:
        load_config(_write(tmp_path, text))
    first = next(i for i, line in enumerate(EXAMPLE.read_text().splitlines(), 1) if line.startswith("serving:"))
    assert f"key 'serving' is given twice (lines {first} and " in str(error.value)
    nested = "name: x\nserving:\n  api_key_env: KEY\n  port: 8000\n  api_key_env:\n"
    with pytest.raises(ConfigError, match=r"key 'api_key_env' is given twice \(lines 3 and 5\)"):
        load_config(_write(tmp_path, nested))
    # the same key in two different mappings is no repeat
    assert load_config(_write(tmp_path, EXAMPLE.read_text())).name == "bike-sharing"


def test_config_is_frozen() -> None:
    config = load_config(EXAMPLE)
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="frozen"):
        config.name = "other"  # type: ignore[misc]
    assert isinstance(config, Config)


@pytest.mark.parametrize(
    ("null_values", "needle"),
    [({"windspeeed": [0]}, "column 'windspeeed' is not in schema.columns"), ({"windspeed": ["calm"]}, "'calm' is not a number")],
)
def test_cleaning_rules_must_fit_the_schema(tmp_path: Path, null_values: dict, needle: str) -> None:
    data = _example()
    data["cleaning"]["null_values"] = null_values
    with pytest.raises(ConfigError, match=needle):
        load_config(_write(tmp_path, data))
