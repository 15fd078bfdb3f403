"""The project file, `conveyor.yaml`, as typed, validated, immutable objects.

Every model is strict, frozen and forbids unknown keys, so a typo is an error naming the key,
the value and what was expected, never a silently ignored setting.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from conveyor.core._config_data import (
    EVENT_TIMESTAMP,
    NAN_TOKENS,
    NULL_TOKENS,
    Column,
    Entity,
    EventTime,
    FeaturesConfig,
    Incremental,
    Schema,
    SourceConfig,
)
from conveyor.core._config_data import Aggregate as Aggregate
from conveyor.core._config_data import AggregateFunction as AggregateFunction
from conveyor.core._config_data import CleaningConfig as CleaningConfig
from conveyor.core._config_data import ColumnType as ColumnType
from conveyor.core._config_data import Lag as Lag
from conveyor.core._config_data import OnDemandFeature as OnDemandFeature
from conveyor.core._config_data import OnDemandKind as OnDemandKind
from conveyor.core._config_data import Role as Role
from conveyor.core._config_data import Task as Task
from conveyor.core._config_data import window_seconds as window_seconds
from conveyor.core._config_pipeline import BatchingConfig as BatchingConfig
from conveyor.core._config_pipeline import ClassificationMetric as ClassificationMetric
from conveyor.core._config_pipeline import LightGBMParams as LightGBMParams
from conveyor.core._config_pipeline import MlflowStore as MlflowStore
from conveyor.core._config_pipeline import (
    ModelSpec,
    MonitoringConfig,
    PromotionConfig,
    ServingConfig,
    SparkConfig,
    StoresConfig,
    TrainingConfig,
    WebhookConfig,
)
from conveyor.core._config_pipeline import PostgresStore as PostgresStore
from conveyor.core._config_pipeline import RedisStore as RedisStore
from conveyor.core._config_pipeline import RegressionMetric as RegressionMetric
from conveyor.core._config_pipeline import S3Store as S3Store
from conveyor.core._config_pipeline import SearchConfig as SearchConfig
from conveyor.core._config_root import Config
from conveyor.core.errors import ConfigError

__all__ = [
    "CONFIG_FILE",
    "EVENT_TIMESTAMP",
    "NAN_TOKENS",
    "NULL_TOKENS",
    "Column",
    "Config",
    "Entity",
    "EventTime",
    "FeaturesConfig",
    "Incremental",
    "ModelSpec",
    "MonitoringConfig",
    "WebhookConfig",
    "PromotionConfig",
    "Schema",
    "ServingConfig",
    "SourceConfig",
    "SparkConfig",
    "StoresConfig",
    "TrainingConfig",
    "dump_config",
    "load_config",
]

CONFIG_FILE = "conveyor.yaml"


def _describe(error: dict[str, Any]) -> str:
    where = ".".join(str(part) for part in error["loc"]) or "(top level)"
    value = error.get("input")
    shown = repr(value) if not isinstance(value, dict) else "a mapping"
    if error["type"] == "missing":
        return f"{where}: required key is missing"
    if error["type"] == "extra_forbidden":
        return f"{where}: unknown key (value {shown}); check its spelling"
    return f"{where}: {shown} is not valid: {error['msg']}"


def load_config(path: Path) -> Config:
    """Read and validate a project file; every problem is a ConfigError naming the key."""
    import yaml

    if not path.is_file():
        raise ConfigError(
            f"{path}: no project file here; create one with `conveyor init --csv FILE --target COL`"
        )
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_strict_loader())  # noqa: S506 (a SafeLoader)
    except _DuplicateKey as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top, got {type(data).__name__}")
    owner = _feature_owner(path, data)
    if owner is not None:
        data = {**data, "features": {**owner.features.model_dump(mode="json"), "repo": data["features"]["repo"]}}
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        problems = "\n  ".join(_describe(e) for e in exc.errors())  # type: ignore[arg-type]
        raise ConfigError(f"{path}: invalid project file\n  {problems}") from None
    if owner is not None:
        config.features._owner = owner.name
    return config


class _DuplicateKey(Exception):
    """A key given twice in one mapping of the project file."""


def _strict_loader() -> type:
    """A YAML SafeLoader that refuses a key given twice in one mapping, naming both lines.

    PyYAML keeps the last value silently: an `api_key_env` written twice, the second time empty,
    would turn authentication off without a word.
    """
    import yaml

    class StrictLoader(yaml.SafeLoader):
        pass

    def mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = loader.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                first = seen.setdefault(key, line)
            except TypeError:  # an unhashable key: PyYAML's own error follows
                continue
            if first != line:
                raise _DuplicateKey(f"key {key!r} is given twice (lines {first} and {line}); keep one")
        return loader.construct_mapping(node, deep=deep)

    StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    return StrictLoader


def _feature_owner(path: Path, data: dict[str, Any]) -> Config | None:
    """With `features.repo`: the Config of the project owning the feature repo, whose feature
    definitions this project reads. None when that folder holds no conveyor.yaml: the features
    stage then says what is missing (a run-time error, not a config one, as a store that is not
    built yet is)."""
    features = data.get("features")
    if not isinstance(features, dict) or features.get("repo") is None:
        return None
    repo = features["repo"]
    if not isinstance(repo, str):
        raise ConfigError(f"{path}: features.repo: {repo!r} is not a folder path")
    own = sorted(set(features) - {"repo"})
    if own:
        raise ConfigError(
            f"{path}: features.repo: the features are those of the project in {repo!r}; "
            f"remove features.{', features.'.join(own)}"
        )
    folder = Path(repo).expanduser()
    folder = folder if folder.is_absolute() else path.parent / folder
    owner_file = folder / "conveyor.yaml"
    if not owner_file.is_file():
        return None
    if owner_file.resolve() == path.resolve():
        raise ConfigError(f"{path}: features.repo: {repo!r} is this project itself; remove features.repo")
    owner = load_config(owner_file)
    if owner.features.repo is not None:
        raise ConfigError(
            f"{path}: features.repo: the project in {repo!r} reads its features from another project "
            f"({owner.features.repo!r}); point features.repo at the project owning the feature repo"
        )
    return owner


def dump_config(config: Config, path: Path, header: str = "") -> None:
    """Write a project file, keys in a readable order."""
    import yaml

    class Flow(dict):  # type: ignore[type-arg]
        """A mapping written on one line: one column's type and role."""

    class Dumper(yaml.SafeDumper):
        pass

    Dumper.add_representer(Flow, lambda d, v: d.represent_mapping("tag:yaml.org,2002:map", v, flow_style=True))
    data = config.model_dump(mode="json", by_alias=True)
    if not data["models"]:
        del data["models"]  # a one-model project's file stays as it was
    if not config.stores.shared():
        del data["stores"]  # the embedded default needs no section
    else:
        data["stores"] = {k: v for k, v in data["stores"].items() if v is not None}
    if config.engine == "polars" and config.spark == SparkConfig():
        del data["engine"], data["spark"]  # the default engine needs no section
    if config.features.repo is not None:
        data["features"] = {"repo": config.features.repo}  # the rest is the other project's
    else:
        del data["features"]["repo"]
    for key in ("path", "dsn_env", "table", "query", "uri", "format", "incremental"):
        if data["source"].get(key, "") is None:
            del data["source"][key]  # the keys of other source kinds
    if config.source.kind == "postgres" and config.source.decimal == "." and config.source.thousands is None:
        for key in ("delimiter", "encoding", "decimal", "thousands"):
            data["source"].pop(key, None)  # how a file's text is written: the server's CSV is always the same
    data["schema"]["columns"] = {k: Flow({f: x for f, x in v.items() if f != "format" or x is not None})
                                 for k, v in data["schema"]["columns"].items()}
    search = data["training"]["search"]
    if search.get("timeout_s") is None:
        search.pop("timeout_s", None)  # the former name of budget_s: only where an older file set it
    text = yaml.dump(data, Dumper=Dumper, sort_keys=False, default_flow_style=False, width=100, allow_unicode=True)
    path.write_text(header + text, encoding="utf-8")
