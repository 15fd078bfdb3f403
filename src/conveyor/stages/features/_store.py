"""Feast, in process: opening the store, Feast's log records, the registry's view of a service.

The store is opened from a `RepoConfig` computed from where the workspace is now (`_repo.py`),
with objects built in Python from the Config: no generated code runs, no stored absolute path
is read. Feast sees only safe field names (`_names.py`); results are mapped back to the
original column names by the modules that read them (`_build`, `_link`, `_dataset`, `_reads`).

Nothing here touches process-wide state (stdout, warning filters): Feast's log records are
captured by a handler on the `feast` logger while a Feast call runs, and the printing path
(`materialize`) is not used.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from conveyor.core.config import Config
from conveyor.core.errors import FeatureStoreError
from conveyor.core.workspace import Workspace
from conveyor.stages.features._aggregates import EntityPlan
from conveyor.stages.features._names import EntityNames, FieldNames
from conveyor.stages.features._repo import (
    import_feast,
    key_is_integer,
    local_parts,
    repo_config,
    store_repo,
)

__all__ = [
    "UnknownEntityError",
    "feast_error",
    "feast_logs",
    "feature_columns",
    "from_feast",
    "key_cast",
    "open_repo",
    "open_store",
    "read_entity_tables",
    "registry_view",
    "to_feast",
]


def feature_columns(config: Config) -> list[str]:
    """Every model input of a training set: the schema's features, then the engineered ones
    (aggregates, lags, on-demand: numeric, see `FeaturesConfig.engineered`)."""
    return [*config.schema.features(), *config.features.engineered()]


class UnknownEntityError(FeatureStoreError):
    """An entity key the online store does not hold (no row of the data had it)."""

    def __init__(self, entity: str, key: Any, as_of: datetime | None) -> None:
        self.entity = entity
        self.key = key
        when = f" (online as of {as_of.isoformat()})" if as_of is not None else ""
        super().__init__(f"unknown {entity} {key!r}: no row of the data has this {entity}{when}")


class _Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string in a third-party log call
            message = str(record.msg)
        self.messages.append(f"{record.levelname.lower()}: {message}")


_lock = threading.Lock()
_active: list[_Captured] = []
_saved: dict[str, Any] = {}


@contextlib.contextmanager
def feast_logs() -> Iterator[list[str]]:
    """Feast's log records of WARNING and above while the block runs, kept off the console.

    Only the `feast` logger is touched (a handler, and `propagate` off), and only while some block
    is active: blocks may nest or run in several threads; the last one out restores the logger.
    Yields the list the messages are appended to.
    """
    import_feast()
    logger = logging.getLogger("feast")
    handler = _Captured()
    with _lock:
        if not _active:
            _saved.update(propagate=logger.propagate)
            logger.propagate = False
        _active.append(handler)
        logger.addHandler(handler)
    try:
        yield handler.messages
    finally:
        with _lock:
            logger.removeHandler(handler)
            _active.remove(handler)
            if not _active:
                logger.propagate = _saved.pop("propagate", True)


def open_store(config: Config, workspace: Workspace, *, existing: bool = False) -> Any:
    """A `feast.FeatureStore` on the workspace's repo, configured for where the workspace is now.

    With `existing`, the store must have been built (by this version of Conveyor): a missing
    registry or online store is an error, never an empty store made on the spot.
    """
    repo = store_repo(config, workspace)
    if existing:
        missing = [part for part in local_parts(config) if not (repo / part).is_file()]
        if missing:
            raise FeatureStoreError(
                f"no feature store in {repo} (missing {', '.join(missing)}); it was never built, or built "
                "by an older Conveyor: run `conveyor run --from features`"
                + (f" in {repo.parent}" if config.features.repo is not None else "")
            )
    return open_repo(config, repo)


def open_repo(config: Config, repo: Path) -> Any:
    from feast import FeatureStore

    return FeatureStore(repo_path=str(repo), config=repo_config(config, repo))


def feast_error(what: str, exc: Exception, logs: list[str]) -> FeatureStoreError:
    said = f"; Feast logged: {' | '.join(logs[-3:])}" if logs else ""
    return FeatureStoreError(f"{what}: {type(exc).__name__}: {exc}{said}")


def key_cast(config: Config) -> Any:
    import polars as pl

    return pl.Int64 if key_is_integer(config) else pl.String


def to_feast(frame: Any, plan: EntityPlan, names: EntityNames) -> Any:
    """A feature table under Feast names (join key, fields)."""
    return frame.rename({plan.entity: names.join_key, **dict(names.to_feast)})


def from_feast(frame: Any, plan: EntityPlan, names: EntityNames) -> Any:
    return frame.rename({names.join_key: plan.entity, **{f: o for o, f in names.to_feast.items()}})


def read_entity_tables(repo: Path, layout: list[tuple[EntityPlan, EntityNames]]) -> dict[str, Any]:
    """Each entity's feature table from the repo, under the original column names."""
    import polars as pl

    tables = {}
    for plan, names in layout:
        path = repo / names.path
        if not path.is_file():
            raise FeatureStoreError(f"no feature table {path}: run `conveyor run --from features`")
        tables[plan.entity] = from_feast(pl.read_parquet(path), plan, names)
    return tables


def registry_view(
    store: Any, service_name: str, fields: FieldNames, view_name: str, *, exact: bool = True
) -> tuple[Any, list[str]]:
    """The row-key feature view of a service, from the registry, and its feature references.

    The registry must hold the features the Config names (by their Feast names): exactly those
    (`exact`, the project's own store), or at least those (another project's, `features.repo`),
    the references then naming only them.
    """
    service = store.get_feature_service(service_name)
    projections = [p for p in service.feature_view_projections if p.name == view_name]
    if len(projections) != 1:
        raise FeatureStoreError(
            f"feature service {service_name!r} does not read the view {view_name!r}; run `conveyor run --from features`"
        )
    projection = projections[0]
    view = store.get_feature_view(projection.name)
    held = [feature.name for feature in projection.features]
    if not exact:
        missing = [name for name, safe in zip(fields.features, fields.feast_features, strict=True) if safe not in held]
        if missing:
            raise FeatureStoreError(
                f"features.repo: the view {view_name!r} in {store.repo_path} has no field for "
                f"{', '.join(map(repr, missing))}, which this project's schema reads; drop them "
                "(schema.drop) or add them to that project"
            )
        return view, [f"{projection.name_to_use()}:{safe}" for safe in fields.feast_features]
    refs = [f"{projection.name_to_use()}:{name}" for name in held]
    if held != fields.feast_features:
        raise FeatureStoreError(
            f"the feature store in {store.repo_path} was built for other features than conveyor.yaml "
            "names; run `conveyor run --from features` to rebuild it"
        )
    return view, refs
