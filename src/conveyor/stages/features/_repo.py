"""The Feast repository of a project, built in Python from the project file.

Conveyor never executes generated code: the Feast objects (Entity, FileSource, FeatureView,
FeatureService) are made here from the validated `Config`, and the store is opened from a
`RepoConfig` computed at run time from where the workspace is now. Nothing Conveyor reads holds
an absolute path, so a project folder can be copied or moved and keeps working at its new place.

For people (and the `feast` CLI), `write_repo` also writes `feature_store.yaml` (paths relative
to `feature_repo/`, which Feast resolves against the repo folder) and a `definitions.py` that
defines the same objects; every string in it comes from `repr()`. Conveyor does not read either.

Layout of `feature_repo/`:

    feature_store.yaml      for people and the feast CLI
    definitions.py          for people and the feast CLI
    data/source.parquet     the Feast source: entity key, event_timestamp, features, safe names
    data/registry.pb        Feast file registry
    data/online_store.db    Feast online store (SQLite)
"""

from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from conveyor.core.config import EVENT_TIMESTAMP, Config
from conveyor.core.errors import FeatureStoreError
from conveyor.core.workspace import Workspace
from conveyor.stages.features._names import FieldNames, feast_names, field_names

__all__ = [
    "ONLINE_STORE",
    "REGISTRY",
    "SOURCE",
    "FeastObjects",
    "feast_objects",
    "feast_types",
    "key_is_integer",
    "repo_config",
    "write_repo",
]

SOURCE = "data/source.parquet"
REGISTRY = "data/registry.pb"
ONLINE_STORE = "data/online_store.db"
"""Paths inside `feature_repo/`, relative: the same wherever the project folder is."""

REGISTRY_CACHE_SECONDS = 60

_FEAST_TYPES = {"integer": "Int64", "float": "Float64", "string": "String", "boolean": "Bool"}


def key_is_integer(config: Config) -> bool:
    """An integer key (Conveyor's row number, or an integer column) is INT64; any other is a STRING."""
    entity = config.schema.entity
    return entity.generated or config.schema.columns[entity.key].type == "integer"


def feast_types(config: Config) -> dict[str, str]:
    """Feature column (original name) -> name of its Feast type in `feast.types`."""
    columns = config.schema.columns
    types: dict[str, str] = {}
    for name in config.schema.features():
        kind = columns[name].type
        if kind not in _FEAST_TYPES:
            raise FeatureStoreError(
                f"feature {name!r} is a {kind} column; the feature store takes integer, float, "
                "string and boolean features: change its type or role in conveyor.yaml"
            )
        types[name] = _FEAST_TYPES[kind]
    return types


def import_feast() -> None:
    """Import Feast once, keeping the application's warning filters.

    Importing Feast puts `simplefilter("once", DeprecationWarning)` in front of every filter
    the application set; the import runs inside `catch_warnings`, which restores them.
    """
    if "feast" in sys.modules:
        return
    with warnings.catch_warnings():
        import feast  # noqa: F401


def repo_config(config: Config, repo: Path) -> Any:
    """The Feast `RepoConfig` of a repo folder, with absolute paths computed from where it is now."""
    import_feast()
    from feast.repo_config import RepoConfig

    return RepoConfig(
        project=feast_names(config).project,
        provider="local",
        registry={
            "registry_type": "file",
            "path": str(repo / REGISTRY),
            "cache_ttl_seconds": REGISTRY_CACHE_SECONDS,
        },
        online_store={"type": "sqlite", "path": str(repo / ONLINE_STORE)},
        offline_store={"type": "duckdb"},
        entity_key_serialization_version=3,
        repo_path=repo,
    )


@dataclass(frozen=True)
class FeastObjects:
    entity: Any
    source: Any
    view: Any
    service: Any

    def all(self) -> list[Any]:
        return [self.entity, self.source, self.view, self.service]


def feast_objects(config: Config, source_path: str = SOURCE) -> FeastObjects:
    """The Feast objects of a project, made from the Config: no generated code, no data in names.

    `source_path` is where the FileSource reads, relative to `feature_repo/` (what the registry
    keeps), or absolute (for a read through the DuckDB offline store, which does not resolve
    relative paths itself).
    """
    import_feast()
    import feast.types as ftypes
    from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType

    names = feast_names(config)
    fields = field_names(config)
    types = feast_types(config)
    entity = Entity(
        name=names.entity,
        join_keys=[fields.feast_key],
        value_type=ValueType.INT64 if key_is_integer(config) else ValueType.STRING,
        description="row key made by Conveyor" if config.schema.entity.generated else "entity key from the data",
    )
    source = FileSource(name=names.source, path=source_path, timestamp_field=EVENT_TIMESTAMP)
    view = FeatureView(
        name=names.view,
        entities=[entity],
        ttl=timedelta(0),  # features never expire
        schema=[Field(name=fields.to_feast[name], dtype=getattr(ftypes, types[name])) for name in fields.features],
        source=source,
        online=True,
        tags={"conveyor.project": config.name},
    )
    service = FeatureService(
        name=names.service,
        features=[view],
        description=f"The features the {config.name} model reads, in training and at serving time",
    )
    return FeastObjects(entity, source, view, service)


def _yaml(project: str) -> str:
    return f"""\
# Written by Conveyor from conveyor.yaml for people and the feast CLI; Conveyor itself does not
# read it (it computes the same settings from where the project is now). Every path is relative
# to this folder, so the project folder can move.
project: {project}
provider: local
registry:
  registry_type: file
  path: {REGISTRY}
  cache_ttl_seconds: {REGISTRY_CACHE_SECONDS}
online_store:
  type: sqlite
  path: {ONLINE_STORE}
offline_store:
  type: duckdb
entity_key_serialization_version: 3
"""


def _definitions(config: Config, fields: FieldNames) -> str:
    names = feast_names(config)
    types = feast_types(config)
    schema = "\n".join(
        f"        Field(name={fields.to_feast[name]!r}, dtype={types[name]}),  # column {name!r}"
        if fields.to_feast[name] != name
        else f"        Field(name={name!r}, dtype={types[name]}),"
        for name in fields.features
    )
    value_type = "INT64" if key_is_integer(config) else "STRING"
    described = "row key made by Conveyor" if config.schema.entity.generated else "entity key from the data"
    return f'''\
"""Feast definitions of a Conveyor project, for people and the feast CLI.

Written by Conveyor from conveyor.yaml; Conveyor builds the same objects in Python and never
runs this file. Field names are the safe Feast names of the data columns (see the comments);
`{SOURCE}` holds the data under these names. Run the feast CLI from this folder.
"""

from datetime import timedelta

from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
from feast.types import Bool, Float64, Int64, String  # noqa: F401

entity = Entity(
    name={names.entity!r},
    join_keys=[{fields.feast_key!r}],  # column {fields.key!r}
    value_type=ValueType.{value_type},
    description={described!r},
)

source = FileSource(
    name={names.source!r},
    path={SOURCE!r},
    timestamp_field={EVENT_TIMESTAMP!r},
)

view = FeatureView(
    name={names.view!r},
    entities=[entity],
    ttl=timedelta(0),  # features never expire
    schema=[
{schema}
    ],
    source=source,
    online=True,
    tags={{"conveyor.project": {config.name!r}}},
)

service = FeatureService(
    name={names.service!r},
    features=[view],
    description={f"The features the {config.name} model reads, in training and at serving time"!r},
)
'''


def write_repo(config: Config, workspace: Workspace, clean_path: Path | None = None) -> Path:
    """Write `feature_store.yaml` and `definitions.py` (for people); returns the definitions file.

    `clean_path` is accepted for compatibility and unused: the Feast source is `data/source.parquet`.
    """
    del clean_path
    repo = workspace.feature_repo
    (repo / "data").mkdir(parents=True, exist_ok=True)
    project = feast_names(config).project
    _write(repo / "feature_store.yaml", _yaml(project))
    definitions = repo / "definitions.py"
    _write(definitions, _definitions(config, field_names(config)))
    return definitions


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
