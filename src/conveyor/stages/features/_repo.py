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
    data/by_<entity>.parquet   one per `features.entities` column: its engineered features over
                            time (the source of the view `<project>_by_<entity>`)
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
from conveyor.stages.features._aggregates import EntityPlan, entity_plans
from conveyor.stages.features._names import EntityNames, FieldNames, entity_names, feast_names, field_names

__all__ = [
    "ONLINE_STORE",
    "REDIS_STORE_TYPE",
    "EntityObjects",
    "entity_layout",
    "REGISTRY",
    "SOURCE",
    "FeastObjects",
    "feast_objects",
    "feast_types",
    "key_is_integer",
    "local_parts",
    "model_service_name",
    "online_store_settings",
    "redis_key_prefix",
    "offline_parts",
    "registry_config",
    "repo_config",
    "store_repo",
    "write_repo",
]

SOURCE = "data/source.parquet"
REGISTRY = "data/registry.pb"
ONLINE_STORE = "data/online_store.db"
ROW_STORE_TYPE = "conveyor.stages.features.sqlite_store.SqliteRowOnlineStore"
"""Conveyor's Feast online store (one SQLite row per entity, `sqlite_store.py`), as Feast's
`online_store.type` names it; the one place this path is written."""
REDIS_STORE_TYPE = "conveyor.stages.features.redis_store.RedisRowOnlineStore"
"""Conveyor's Feast online store on Redis (`redis_store.py`), with `stores.online`."""
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


def store_repo(config: Config, workspace: Workspace) -> Path:
    """The feature repo a project reads: its own `feature_repo/`, or with `features.repo` the one
    of that other project (a folder relative to the project file)."""
    if config.features.repo is None:
        return workspace.feature_repo
    return (workspace.resolve(config.features.repo) / "feature_repo").resolve()


def repo_config(config: Config, repo: Path) -> Any:
    """The Feast `RepoConfig` of a repo folder, with absolute paths computed from where it is now."""
    import_feast()
    from feast.repo_config import RepoConfig

    return RepoConfig(
        project=feast_names(config).project,
        provider="local",
        registry=registry_config(config, repo),
        online_store=online_store_settings(config, str(repo / ONLINE_STORE)),
        offline_store={"type": "duckdb"},
        entity_key_serialization_version=3,
        repo_path=repo,
    )


def registry_config(config: Config, repo: Path) -> dict[str, Any]:
    """Feast's `registry` settings: the file registry in the repo, or with `stores.registry` Feast's
    SQL registry on PostgreSQL, its URL built from the environment variable at run time (never
    written to a file)."""
    store = config.stores.registry
    if store is None:
        return {"registry_type": "file", "path": str(repo / REGISTRY), "cache_ttl_seconds": REGISTRY_CACHE_SECONDS}
    from conveyor.core.environment import from_env, sqlalchemy_url

    dsn = from_env(store.dsn_env, "stores.registry.dsn_env", "postgresql://user:password@host:5432/db")
    return {
        "registry_type": "sql",
        "path": sqlalchemy_url(dsn),
        "cache_ttl_seconds": REGISTRY_CACHE_SECONDS,
        "sqlalchemy_config_kwargs": {"pool_pre_ping": True},
    }


def offline_parts(config: Config) -> list[str]:
    """The offline data files of `feature_repo/`: the Feast source and each entity's table."""
    return [SOURCE, *(names.path for _, names in entity_layout(config))]


def local_parts(config: Config) -> tuple[str, ...]:
    """The files of `feature_repo/` a built store must have on this machine: the offline data unless
    it is in S3 (`stores.offline`: fetched when needed), the registry and online store when they are
    the embedded ones (files)."""
    parts = offline_parts(config) if config.stores.offline is None else []
    if config.stores.registry is None:
        parts.append(REGISTRY)
    if config.stores.online is None:
        parts.append(ONLINE_STORE)
    return tuple(parts)


@dataclass(frozen=True)
class EntityObjects:
    """The Feast objects of one entity column: its engineered features."""

    plan: EntityPlan
    names: EntityNames
    entity: Any
    source: Any
    view: Any


@dataclass(frozen=True)
class FeastObjects:
    entity: Any
    source: Any
    view: Any
    service: Any
    by_entity: tuple[EntityObjects, ...] = ()
    model_services: tuple[tuple[str, Any], ...] = ()
    """With `models:`: each model's own FeatureService (its fields of the shared views), by model."""

    def all(self) -> list[Any]:
        extra = [obj for e in self.by_entity for obj in (e.entity, e.source, e.view)]
        return [self.entity, self.source, self.view, *extra, self.service, *(s for _, s in self.model_services)]


def model_service_name(config: Config, model: str) -> str:
    """The FeatureService of one model of `models:`: `<project>_<model>_model`."""
    return f"{feast_names(config).project}_{model}_model"


def _model_services(config: Config, view: Any, by_entity: tuple[EntityObjects, ...]) -> tuple[tuple[str, Any], ...]:
    """Per model: the row view's fields and the entity views' fields it reads (on-demand features
    are computed from these: an entity view is read whole when the model reads any of its outputs)."""
    from feast import FeatureService

    fields = field_names(config)
    services = []
    for model in config.models:
        own = config.for_model(model)
        inputs = set(own.model_inputs())
        needed = inputs | {o for f in config.features.on_demand if f.name in inputs for o in f.of}
        projections = [view[[fields.to_feast[n] for n in fields.features if n in inputs]]]
        projections += [e.view for e in by_entity if needed & set(e.plan.outputs())]
        services.append((model, FeatureService(
            name=model_service_name(config, model),
            features=projections,
            description=f"The features the {model} model of {config.name} reads ({own.schema.target})",
            tags={"conveyor.project": config.name, "conveyor.model": model},
        )))
    return tuple(services)


def entity_layout(config: Config) -> list[tuple[EntityPlan, EntityNames]]:
    """Each entity column's plan (what it computes) and Feast names."""
    layout = []
    for plan in entity_plans(config):
        layout.append((plan, entity_names(config, plan.entity, [plan.last_event, *plan.outputs()])))
    return layout


def _entity_value_type(config: Config, column: str) -> str:
    if column == config.schema.entity.key:
        return "INT64" if key_is_integer(config) else "STRING"
    return "INT64" if config.schema.columns[column].type == "integer" else "STRING"


def _output_type(plan: EntityPlan, name: str) -> str:
    if name == plan.last_event:
        return "UnixTimestamp"
    return "Int64" if name in {a.output() for a in plan.aggregates if a.function == "count"} else "Float64"


def _entity_objects(config: Config, base_path: str | None) -> tuple[EntityObjects, ...]:
    import feast.types as ftypes
    from feast import Entity, FeatureView, Field, FileSource, ValueType

    made = []
    for plan, names in entity_layout(config):
        entity = Entity(
            name=names.entity,
            join_keys=[names.join_key],
            value_type=getattr(ValueType, _entity_value_type(config, plan.entity)),
            description=f"entity column {plan.entity!r} of the data",
        )
        path = names.path if base_path is None else f"{base_path}/{names.path}"
        source = FileSource(name=names.source, path=path, timestamp_field=EVENT_TIMESTAMP)
        view = FeatureView(
            name=names.view,
            entities=[entity],
            ttl=timedelta(seconds=plan.ttl_seconds()),
            schema=[
                Field(name=names.to_feast[name], dtype=getattr(ftypes, _output_type(plan, name)))
                for name in [plan.last_event, *plan.outputs()]
            ],
            source=source,
            online=True,
            tags={"conveyor.project": config.name, "conveyor.entity": plan.entity},
        )
        made.append(EntityObjects(plan, names, entity, source, view))
    return tuple(made)


def feast_objects(config: Config, source_path: str = SOURCE, repo_path: str | None = None) -> FeastObjects:
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
    by_entity = _entity_objects(config, repo_path)
    service = FeatureService(
        name=names.service,
        features=[view, *(e.view for e in by_entity)],
        description=f"The features the {config.name} model reads, in training and at serving time",
    )
    return FeastObjects(entity, source, view, service, by_entity, _model_services(config, view, by_entity))


def online_store_type(config: Config) -> str:
    """Feast's `online_store.type` for `stores.online`, else `features.online_store`."""
    if config.stores.online is not None:
        return REDIS_STORE_TYPE
    if config.features.online_store == "feast-sqlite":
        return "sqlite"
    return ROW_STORE_TYPE


def redis_key_prefix(config: Config) -> str:
    """Every Redis key of the project starts with this: two projects share one Redis safely."""
    return f"conveyor:{feast_names(config).project}"


def online_store_settings(config: Config, path: str) -> dict[str, str]:
    """Feast's `online_store:` section: the SQLite file at `path`, or (`stores.online`) Redis by the
    name of the environment variable holding its URL (read when the store connects, never written)."""
    if config.stores.online is not None:
        return {"type": REDIS_STORE_TYPE, "url_env": config.stores.online.url_env,
                "key_prefix": redis_key_prefix(config)}
    return {"type": online_store_type(config), "path": path}


def _registry_yaml(config: Config) -> str:
    store = config.stores.registry
    if store is None:
        return f"""\
registry:
  registry_type: file
  path: {REGISTRY}
  cache_ttl_seconds: {REGISTRY_CACHE_SECONDS}
"""
    return f"""\
# Feast's SQL registry on PostgreSQL: the URL is read from ${{{store.dsn_env}}} when the file is loaded,
# never written here (for the feast CLI, that variable must be a postgresql+psycopg:// URL).
registry:
  registry_type: sql
  path: ${{{store.dsn_env}}}
  cache_ttl_seconds: {REGISTRY_CACHE_SECONDS}
"""


def _yaml(project: str, online: dict[str, str], registry: str) -> str:
    return f"""\
# Written by Conveyor from conveyor.yaml for people and the feast CLI; Conveyor itself does not
# read it (it computes the same settings from where the project is now). Every path is relative
# to this folder, so the project folder can move.
project: {project}
provider: local
{registry.rstrip()}
online_store:
{"".join(f"  {k}: {v}{chr(10)}" for k, v in online.items())}offline_store:
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
from feast.types import Bool, Float64, Int64, String, UnixTimestamp  # noqa: F401

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

{_entity_definitions(config)}
service = FeatureService(
    name={names.service!r},
    features=[view{"".join(f", view_{plan.index}" for plan, _ in entity_layout(config))}],
    description={f"The features the {config.name} model reads, in training and at serving time"!r},
)
'''


def _entity_definitions(config: Config) -> str:
    """The entity views in `definitions.py`: one entity, source and view per entity column."""
    parts = []
    for plan, names in entity_layout(config):
        i = plan.index
        schema = "\n".join(
            f"        Field(name={names.to_feast[name]!r}, dtype={_output_type(plan, name)}),"
            + (f"  # {name!r}" if names.to_feast[name] != name else "")
            for name in [plan.last_event, *plan.outputs()]
        )
        parts.append(f"""
entity_{i} = Entity(
    name={names.entity!r},
    join_keys=[{names.join_key!r}],  # column {plan.entity!r}
    value_type=ValueType.{_entity_value_type(config, plan.entity)},
)

source_{i} = FileSource(name={names.source!r}, path={names.path!r}, timestamp_field={EVENT_TIMESTAMP!r})

# Engineered features of {plan.entity!r}: each value as of its row's time, over earlier rows only.
view_{i} = FeatureView(
    name={names.view!r},
    entities=[entity_{i}],
    ttl=timedelta(seconds={plan.ttl_seconds()}),
    schema=[
{schema}
    ],
    source=source_{i},
    online=True,
    tags={{"conveyor.project": {config.name!r}, "conveyor.entity": {plan.entity!r}}},
)
""")
    return "".join(parts)


def write_repo(config: Config, workspace: Workspace, clean_path: Path | None = None) -> Path:
    """Write `feature_store.yaml` and `definitions.py` (for people); returns the definitions file.

    `clean_path` is accepted for compatibility and unused: the Feast source is `data/source.parquet`.
    """
    del clean_path
    repo = workspace.feature_repo
    (repo / "data").mkdir(parents=True, exist_ok=True)
    project = feast_names(config).project
    _write(repo / "feature_store.yaml", _yaml(project, online_store_settings(config, ONLINE_STORE), _registry_yaml(config)))
    definitions = repo / "definitions.py"
    _write(definitions, _definitions(config, field_names(config)))
    return definitions


def _write(path: Path, text: str) -> None:
    from conveyor.core.report import write_text

    write_text(path, text)
