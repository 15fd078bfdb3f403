"""Feast, in process: apply, fill the online store, point-in-time training sets, online reads.

The store is opened from a `RepoConfig` computed from where the workspace is now (`_repo.py`),
with objects built in Python from the Config: no generated code runs, no stored absolute path
is read. Feast sees only safe field names (`_names.py`); results are mapped back to the
original column names here.

Nothing here touches process-wide state (stdout, warning filters): Feast's log records are
captured by a handler on the `feast` logger while a Feast call runs, and the printing path
(`materialize`) is not used.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from conveyor.core.artifacts import Artifact, relative_to
from conveyor.core.config import EVENT_TIMESTAMP, Config
from conveyor.core.errors import FeatureStoreError, ServiceUnavailable
from conveyor.core.hashing import hash_json, short
from conveyor.core.workspace import Workspace
from conveyor.stages.features._aggregates import (
    EntityPlan,
    check_features_config,
    entity_table,
    join_aggregates,
    online_rows,
)
from conveyor.stages.features._names import ROW, EntityNames, FieldNames, feast_names, field_names
from conveyor.stages.features._ondemand import add_on_demand
from conveyor.stages.features._online import publish_online, write_frame, write_online
from conveyor.stages.features._repo import (
    ONLINE_STORE,
    REGISTRY,
    SOURCE,
    entity_layout,
    feast_objects,
    import_feast,
    key_is_integer,
    local_parts,
    offline_parts,
    redis_key_prefix,
    repo_config,
    store_repo,
    write_repo,
)
from conveyor.stages.features._shared import fetch_offline, offline_root, push_offline
from conveyor.stages.features._stage import (
    DATASET_VERSION,
    FEATURES_VERSION,
    CleanInput,
    FeatureRepo,
    TrainingSet,
)

__all__ = [
    "OnlineFeatures",
    "UnknownEntityError",
    "build_features",
    "feast_logs",
    "feature_columns",
    "link_features",
    "open_store",
    "repo_digest",
    "read_entity_tables",
    "training_set",
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
    return _open(config, repo)


def _open(config: Config, repo: Path) -> Any:
    from feast import FeatureStore

    return FeatureStore(repo_path=str(repo), config=repo_config(config, repo))


def _feast_error(what: str, exc: Exception, logs: list[str]) -> FeatureStoreError:
    said = f"; Feast logged: {' | '.join(logs[-3:])}" if logs else ""
    return FeatureStoreError(f"{what}: {type(exc).__name__}: {exc}{said}")


def _key_cast(config: Config) -> Any:
    import polars as pl

    return pl.Int64 if key_is_integer(config) else pl.String


def _write_source(config: Config, fields: FieldNames, clean: Path, out: Path) -> int:
    """The Feast source: entity key, event time and features of the clean data, under safe names."""
    import polars as pl

    frame = pl.read_parquet(clean, columns=[fields.key, EVENT_TIMESTAMP, *fields.features])
    frame = frame.with_columns(pl.col(fields.key).cast(_key_cast(config))).rename(
        {name: fields.to_feast[name] for name in (fields.key, *fields.features)}
    )
    tmp = out.with_name(out.name + ".tmp")
    frame.write_parquet(tmp)
    tmp.replace(out)
    return frame.height


def _to_feast(frame: Any, plan: EntityPlan, names: EntityNames) -> Any:
    """A feature table under Feast names (join key, fields)."""
    return frame.rename({plan.entity: names.join_key, **dict(names.to_feast)})


def _from_feast(frame: Any, plan: EntityPlan, names: EntityNames) -> Any:
    return frame.rename({names.join_key: plan.entity, **{f: o for o, f in names.to_feast.items()}})


def _write_entity_tables(
    config: Config, layout: list[tuple[EntityPlan, EntityNames]], clean: Path, repo: Path
) -> tuple[dict[str, Any], datetime]:
    """Each entity's feature table (`data/by_<entity>.parquet`, Feast names), and the newest event time."""
    import polars as pl

    wanted = [EVENT_TIMESTAMP, *dict.fromkeys(c for plan, _ in layout for c in (plan.entity, *plan.columns))]
    events = pl.read_parquet(clean, columns=wanted) if layout else None
    tables: dict[str, Any] = {}
    if events is None:
        return tables, datetime.min
    newest = events[EVENT_TIMESTAMP].max()
    if not isinstance(newest, datetime):
        raise FeatureStoreError(f"{clean} has no row with an event time: no entity features to compute")
    as_of = newest
    for plan, names in layout:
        table = entity_table(events, plan)
        tables[plan.entity] = table
        out = repo / names.path
        tmp = out.with_name(out.name + ".tmp")
        _to_feast(table, plan, names).write_parquet(tmp)
        tmp.replace(out)
    return tables, as_of


def read_entity_tables(repo: Path, layout: list[tuple[EntityPlan, EntityNames]]) -> dict[str, Any]:
    """Each entity's feature table from the repo, under the original column names."""
    import polars as pl

    tables = {}
    for plan, names in layout:
        path = repo / names.path
        if not path.is_file():
            raise FeatureStoreError(f"no feature table {path}: run `conveyor run --from features`")
        tables[plan.entity] = _from_feast(pl.read_parquet(path), plan, names)
    return tables


def build_features(config: Config, workspace: Workspace, clean: Artifact[CleanInput]) -> Artifact[FeatureRepo]:
    """Apply the project's Feast objects and fill the online store with the latest row per entity."""
    inputs = {"clean": clean.digest, "schema": config.section("schema"), "features": config.section("features"),
              "version": FEATURES_VERSION}
    digest = hash_json(inputs)  # `models:` adds feature services only: the views and the data are the same
    names = feast_names(config)
    fields = field_names(config)
    offline = offline_root(config, names.project)
    if offline is None:
        objects = feast_objects(config)  # FileSource path relative to the repo: it moves with it
    else:  # the registry names the shared copies in S3
        objects = feast_objects(config, source_path=f"{offline}/{SOURCE}", repo_path=offline)
    repo = workspace.feature_repo
    # Build a whole store in a staging repo, then move its files in: a failed build leaves the
    # previous store as it was, and a server still reading the old online store keeps its file.
    staging = repo / ".building"
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "data").mkdir(parents=True)
    check_features_config(config)
    layout = entity_layout(config)
    generation = _new_generation(config)
    with feast_logs() as logs:
        try:
            rows = _write_source(config, fields, clean.path, staging / SOURCE)
            began = time.perf_counter()
            tables, as_of = _write_entity_tables(config, layout, clean.path, staging)
            table_seconds = time.perf_counter() - began
            if offline is not None:
                push_offline(offline, staging, offline_parts(config))
            store = _open(config, staging)
            store.apply(objects.all())
            began = time.perf_counter()
            written = write_online(store, objects.view, staging / SOURCE, fields.feast_key, generation=generation)
            online: dict[str, int] = {}
            for made in objects.by_entity:
                latest = online_rows(tables[made.plan.entity], made.plan, as_of)
                start = written.start
                online[made.names.view] = write_frame(
                    store, made.view, _to_feast(latest, made.plan, made.names), start, as_of, generation=generation
                ).entities
            seconds = time.perf_counter() - began
        except (FeatureStoreError, ServiceUnavailable):
            raise
        except Exception as exc:  # Feast raises many unrelated types
            raise _feast_error(f"could not build the feature store in {repo} from {clean.path}", exc, logs) from exc
    (repo / "data").mkdir(parents=True, exist_ok=True)
    wanted = {names.path for _, names in layout}
    for stale in (repo / "data").glob("by_*.parquet"):
        if f"data/{stale.name}" not in wanted:
            stale.unlink()
    # the registry last: it names what the others hold (on Redis, the new generation is served
    # just before it; a SQLite store left from an earlier build on files is no store any more)
    held = local_parts(config)
    for part in (SOURCE, *sorted(wanted), *(p for p in (ONLINE_STORE,) if p in held)):
        if offline is not None and part in (SOURCE, *wanted):  # the S3 object's ETag, beside its local copy
            (staging / f"{part}.etag").replace(repo / f"{part}.etag")
        (staging / part).replace(repo / part)
    if generation is not None:
        publish_online(store, generation)
        (repo / ONLINE_STORE).unlink(missing_ok=True)
    if REGISTRY in held:
        (staging / REGISTRY).replace(repo / REGISTRY)
    shutil.rmtree(staging)
    (repo / "data" / "registry.db").unlink(missing_ok=True)  # the SQL registry of FEATURES_VERSION 1
    write_repo(config, workspace)
    result = FeatureRepo(
        project=names.project,
        feature_view=names.view,
        feature_service=names.service,
        features=list(fields.features),
        materialized_from=written.start.isoformat(),
        materialized_to=written.end.isoformat(),
        online_store=relative_to(repo / ONLINE_STORE, workspace.root) if generation is None
        else f"redis:{redis_key_prefix(config)}",
        online_generation=generation or "",
        feast_names={o: f for o, f in fields.to_feast.items() if o != f},
        source_rows=rows,
        online_entities=written.entities,
        online_entities_without_values=written.skipped,
        online_write_seconds=round(seconds, 3),
        feast_log=logs[:20],
        entity_views={m.names.view: m.plan.entity for m in objects.by_entity},
        engineered=config.features.engineered(),
        entity_table_rows={view: tables[entity].height for view, entity in
                           ((m.names.view, m.plan.entity) for m in objects.by_entity)},
        entity_online=online,
        online_as_of=as_of.isoformat() if layout else written.end.isoformat(),
        entity_table_seconds=round(table_seconds, 3),
        model_services={model: service.name for model, service in objects.model_services},
    )
    return Artifact("features", repo, digest, result, {"clean": clean.digest})


def _new_generation(config: Config) -> str | None:
    """With `stores.online`: the Redis generation a build writes into (served once it is whole)."""
    if config.stores.online is None:
        return None
    from conveyor.stages.features.redis_store import next_generation

    return next_generation(config.stores.online.url_env, redis_key_prefix(config))


def repo_digest(config: Config, workspace: Workspace) -> str:
    """With `features.repo`: the content hash of that project's registry, which every build of
    its store rewrites (views, materialized intervals); "" when it has none."""
    from conveyor.core.hashing import hash_file

    registry = store_repo(config, workspace) / REGISTRY
    return hash_file(registry) if registry.is_file() else ""


def link_features(config: Config, workspace: Workspace) -> Artifact[FeatureRepo]:
    """The `features` stage of a project reading another project's feature repo (`features.repo`):
    nothing is applied or written there; the repo must exist and hold the views, fields and
    entities this project reads. Its registry's hash makes the artifact's digest, so a rebuild of
    that store re-runs this project's training set and models."""
    import pyarrow.parquet as pq

    assert config.features.repo is not None
    folder = workspace.resolve(config.features.repo)
    where = f"features.repo {config.features.repo!r} ({folder})"
    if not folder.is_dir():
        raise FeatureStoreError(f"{where}: no such folder")
    if config.features.owner is None:
        raise FeatureStoreError(f"{where}: no conveyor.yaml there; point features.repo at a Conveyor project folder")
    repo = store_repo(config, workspace)
    layout = entity_layout(config)
    missing = [part for part in local_parts(config) if not (repo / part).is_file()]
    if missing:
        raise FeatureStoreError(
            f"{where}: its feature store is not built (missing feature_repo/{', feature_repo/'.join(missing)}); "
            f"run `conveyor run` in {folder}"
        )
    names = feast_names(config)
    fields = field_names(config)
    offline = offline_root(config, names.project)
    if offline is not None:
        fetch_offline(offline, repo, offline_parts(config))
    with feast_logs() as logs:
        store = _open(config, repo)
        try:
            view, _ = _registry_view(store, names.service, fields, names.view, exact=False)
            keys = list(view.join_keys)
            if keys != [fields.feast_key]:
                raise FeatureStoreError(
                    f"{where}: its view {names.view!r} is keyed by {', '.join(keys)}, this project by "
                    f"{fields.feast_key!r} (schema.entity); the keys must be the same"
                )
            intervals = list(view.materialization_intervals)
            entity_ends = []
            for plan, entity in layout:
                held = {f.name for f in store.get_feature_view(entity.view).features}
                lacking = [n for n in [plan.last_event, *plan.outputs()] if entity.to_feast[n] not in held]
                if lacking:
                    raise FeatureStoreError(
                        f"{where}: its view {entity.view!r} lacks {', '.join(lacking)}; run `conveyor run` in {folder}"
                    )
                entity_ends += [end for _, end in store.get_feature_view(entity.view).materialization_intervals]
        except FeatureStoreError:
            raise
        except Exception as exc:  # a view or service the registry does not hold
            raise _feast_error(f"{where}: its registry lacks what this project reads", exc, logs) from exc
    registry = repo_digest(config, workspace)
    digest = hash_json({"registry": registry, "schema": config.section("schema"),
                        "features": config.section("features"), "version": FEATURES_VERSION})
    start = min((s for s, _ in intervals), default=None)
    end = max((e for _, e in intervals), default=None)
    as_of = min(entity_ends) if entity_ends else end
    result = FeatureRepo(
        project=names.project,
        feature_view=names.view,
        feature_service=names.service,
        features=list(fields.features),
        materialized_from=start.isoformat() if start is not None else "",
        materialized_to=end.isoformat() if end is not None else "",
        online_store=relative_to(repo / ONLINE_STORE, workspace.root),
        feast_names={o: f for o, f in fields.to_feast.items() if o != f},
        source_rows=pq.ParquetFile(repo / SOURCE).metadata.num_rows,
        feast_log=logs[:20],
        entity_views={entity.view: plan.entity for plan, entity in layout},
        engineered=config.features.engineered(),
        online_as_of=as_of.isoformat() if as_of is not None else "",
        repo=str(folder.resolve()),
    )
    return Artifact("features", repo, digest, result, {"registry": registry})


def _registry_view(
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


def _close_offline_duckdb() -> None:
    """Close the DuckDB instance Feast's offline store joined in (ibis's default connection).

    ibis keeps that connection for the whole process, and DuckDB gives the memory of a join back
    only when its instance closes (1M rows: ~450 MB held through training otherwise). ibis opens
    a new one the next time it is asked.
    """
    import ibis

    backend = ibis.options.default_backend
    if backend is not None:
        ibis.options.default_backend = None
        backend.disconnect()


def training_set(
    config: Config, workspace: Workspace, features: Artifact[FeatureRepo], clean: Artifact[CleanInput]
) -> Artifact[TrainingSet]:
    """The training set, built by Feast's point-in-time join, written to `data/training/`.

    Entity key, event time and label come from the clean data; every feature comes through Feast
    (DuckDB offline store, the registry's feature view). Rows in and rows out are counted and
    matched one to one: a join that loses or repeats a row is an error. Columns carry the
    original names.
    """
    import polars as pl
    from feast import FileSource
    from feast.infra.offline_stores.duckdb import DuckDBOfflineStore

    schema = config.schema
    fields = field_names(config)
    key, target = schema.entity.key, schema.target
    digest = hash_json(
        {"features": features.digest, "clean": clean.digest, "target": target, "version": DATASET_VERSION}
    )
    out = workspace.training_sets / f"{short(digest)}.parquet"
    labels = pl.read_parquet(clean.path, columns=list(dict.fromkeys([key, EVENT_TIMESTAMP, target])))
    labels = labels.with_row_index(ROW)
    entity_df = (
        labels.select(
            pl.col(key).cast(_key_cast(config)).alias(fields.feast_key),
            pl.col(EVENT_TIMESTAMP),
            pl.col(ROW).cast(pl.Int64),
        )
        .to_pandas()
    )
    repo = store_repo(config, workspace)
    offline = offline_root(config, feast_names(config).project)
    if offline is not None:  # the shared copies in S3, read here from a local copy
        fetch_offline(offline, repo, offline_parts(config))
    with feast_logs() as logs:
        store = open_store(config, workspace, existing=True)
        try:
            view, refs = _registry_view(store, features.result.feature_service, fields, features.result.feature_view,
                                        exact=config.features.repo is None)
            # The registry keeps the source path relative to the repo (or the S3 object's URI); the
            # DuckDB offline store reads it as given (relative to the process's cwd), so resolve it
            # against the repo where it is now, with Feast's own rule (or read the local copy).
            view.batch_source.file_options.uri = (
                FileSource.get_uri_for_file_path(repo, view.batch_source.path) if offline is None else str(repo / SOURCE)
            )
            job = DuckDBOfflineStore.get_historical_features(
                config=store.config,
                feature_views=[view],
                feature_refs=refs,
                entity_df=entity_df,
                registry=store.registry,
                project=store.project,
                full_feature_names=False,
            )
            joined = pl.from_arrow(job.to_arrow())
        except FeatureStoreError:
            raise
        except Exception as exc:
            raise _feast_error(f"Feast could not build the training set from {repo}", exc, logs) from exc
        finally:
            _close_offline_duckdb()
    assert isinstance(joined, pl.DataFrame)
    if joined.height != labels.height or joined[ROW].n_unique() != labels.height:
        raise FeatureStoreError(
            f"the point-in-time join returned {joined.height} rows ({joined[ROW].n_unique()} distinct) "
            f"for {labels.height} entity rows; refusing to train on a silently changed training set"
        )
    feature_frame = joined.select(
        pl.col(ROW).cast(pl.UInt32), *[pl.col(fields.to_feast[name]).alias(name) for name in fields.features]
    )
    frame = labels.join(feature_frame, on=ROW, how="left").sort([EVENT_TIMESTAMP, key], maintain_order=True)
    # Engineered features: each entity's table (the Feast source of its view) joined as of each
    # row's event time (ASOF: the latest table row at or before it), then the on-demand ones.
    layout = entity_layout(config)
    if layout:
        frame = join_aggregates(frame, read_entity_tables(repo, layout), [p for p, _ in layout])
    frame = add_on_demand(config, frame)
    engineered = config.features.engineered()
    frame = frame.select([key, EVENT_TIMESTAMP, *fields.features, *engineered, target])
    if frame.height != labels.height:
        raise FeatureStoreError(f"the training set has {frame.height} rows for {labels.height} clean rows")
    workspace.ensure(workspace.training_sets)
    tmp = out.with_name(out.name + ".tmp")
    frame.write_parquet(tmp)
    tmp.replace(out)
    result = TrainingSet(
        rows=frame.height,
        entity_rows=labels.height,
        columns=frame.columns,
        features=feature_columns(config),
        engineered=engineered,
    )
    return Artifact("training_set", out, digest, result, {"features": features.digest, "clean": clean.digest})


class OnlineFeatures:
    """Reads feature rows for entity keys from the online store, for serving.

    `get` is safe to call from server threads: it touches no process-wide state.
    """

    def __init__(self, config: Config, workspace: Workspace) -> None:
        fields = field_names(config)
        self.key = config.schema.entity.key
        self.features = list(fields.features)
        self._feast_key = fields.feast_key
        self._as_text = not key_is_integer(config)
        with feast_logs() as logs:
            self._store = open_store(config, workspace, existing=True)
            try:
                names = feast_names(config)
                view, refs = _registry_view(self._store, names.service, fields, names.view,
                                            exact=config.features.repo is None)
            except FeatureStoreError:
                raise
            except Exception as exc:
                raise FeatureStoreError(
                    f"no feature service in {store_repo(config, workspace)}; run `conveyor run` first "
                    f"({type(exc).__name__}: {exc}{'; ' + ' | '.join(logs[-3:]) if logs else ''})"
                ) from exc
        self._refs = refs  # built once: get() runs per request
        intervals = view.materialization_intervals
        self.as_of: datetime | None = max(end for _, end in intervals) if intervals else None
        """The latest event time written to the online store: how fresh its values are."""
        self._columns = [(name, fields.to_feast[name]) for name in self.features]
        # Entity views: one Feast call reads every entity's engineered features.
        layout = entity_layout(config)
        self.entities: list[str] = [plan.entity for plan, _ in layout]
        """The entity columns `get_entities` takes (`features.entities`)."""
        self.engineered: list[str] = [name for plan, _ in layout for name in plan.outputs()]
        """The entity features `get_entities` returns (aggregates and lags), by name."""
        self._entity_keys = [
            (plan.entity, names.join_key, _entity_is_text(config, plan.entity)) for plan, names in layout
        ]
        self._entity_refs = [f"{names.view}:{names.to_feast[n]}" for plan, names in layout
                             for n in [plan.last_event, *plan.outputs()]]
        self._entity_markers = [(plan.entity, names.to_feast[plan.last_event]) for plan, names in layout]
        self._entity_columns = [(n, names.to_feast[n]) for plan, names in layout for n in plan.outputs()]
        self._entity_outputs = [[(n, names.to_feast[n]) for n in plan.outputs()] for plan, names in layout]
        self._entity_empty = [
            {n: (0.0 if n in plan.zero_when_empty() else None) for n in plan.outputs()} for plan, _ in layout
        ]
        """Per entity: what a training row of an entity with no earlier row gets (counts and sums 0)."""
        self.entities_as_of: datetime | None = None
        """The instant the entity features are computed at: values for a request just after it."""
        if layout:
            try:
                ends = [
                    end
                    for _, names in layout
                    for _, end in self._store.get_feature_view(names.view).materialization_intervals
                ]
            except Exception as exc:  # a store built before features.entities was set
                raise FeatureStoreError(
                    f"the feature store in {store_repo(config, workspace)} has no view for every entity of "
                    f"features.entities ({type(exc).__name__}: {exc}); run `conveyor run --from features`"
                ) from exc
            self.entities_as_of = min(ends) if ends else None
        # On Redis, rows are read straight from Conveyor's layout (`redis_store.RedisRows`): one
        # round trip, JSON decoded, no proto per value; `get_online_features` is not on the path.
        self._rows: Any = None
        self._checks: list[tuple[str, Any]] = []
        if config.stores.online is not None:
            from conveyor.stages.features.redis_store import RedisRows

            names = feast_names(config)
            project = names.project
            self._table = f"{project}_{names.view}"
            self._entity_tables = [f"{project}_{n.view}" for _, n in layout]
            self._rows = RedisRows(config.stores.online.url_env, redis_key_prefix(config))
            if not self._rows.published():
                raise FeatureStoreError(
                    f"the online store in Redis (prefix {redis_key_prefix(config)!r}) holds no published features; "
                    "run `conveyor run --from features`"
                )
            self._checks.append(("redis", self._rows.ping))
        if config.stores.registry is not None:
            dsn_env = config.stores.registry.dsn_env
            self._checks.append(("postgresql", lambda: _postgres_down(dsn_env, "feature registry")))

    def health(self) -> dict[str, str | None]:
        """Each shared service the online reads depend on: None when it answers, else why not (one line)."""
        return {name: check() for name, check in self._checks}

    def get(self, keys: list[Any]) -> list[dict[str, Any] | None]:
        """One feature row per key, in order, by original column names; None for an unknown key."""
        values = [str(k) if self._as_text and not isinstance(k, str) else k for k in keys]
        if self._rows is not None:
            return self._get_rows([str(v) if not isinstance(v, str) else v for v in values])
        result = self._store.get_online_features(features=self._refs, entity_rows={self._feast_key: values}).to_dict()
        rows: list[dict[str, Any] | None] = []
        for index in range(len(keys)):
            row = {name: result[safe][index] for name, safe in self._columns}
            rows.append(None if all(v is None for v in row.values()) else row)
        return rows

    def _get_rows(self, keys: list[str]) -> list[dict[str, Any] | None]:
        """`get` on Redis: the stored JSON objects, by original names; None for an unknown key."""
        found: list[dict[str, Any] | None] = self._rows.read([(self._table, keys)])[0]
        rows: list[dict[str, Any] | None] = []
        columns = self._columns
        for raw in found:
            row = None if raw is None else {name: raw.get(safe) for name, safe in columns}
            rows.append(None if row is None or all(v is None for v in row.values()) else row)
        return rows

    def get_entities(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Each request row's engineered entity features (every entity view joined), by name.

        A row gives every entity column of `features.entities` (`{"PULocationID": 132,
        "DOLocationID": 48}`). The values are those a row just after `entities_as_of` gets in
        a training set. A key the store does not hold raises `UnknownEntityError` naming it.
        """
        entity_rows: dict[str, list[Any]] = {}
        for entity, join_key, as_text in self._entity_keys:
            values = []
            for row in rows:
                if entity not in row or row[entity] is None:
                    raise UnknownEntityError(entity, None, self.entities_as_of)
                value = row[entity]
                values.append(str(value) if as_text and not isinstance(value, str) else value)
            entity_rows[join_key] = values
        if not entity_rows:
            return [{} for _ in rows]
        if self._rows is not None:
            found = self._read_entities(entity_rows)
            for (entity, _), seen in zip(self._entity_markers, found, strict=True):
                for index, raw in enumerate(seen):
                    if raw is None:
                        raise UnknownEntityError(entity, rows[index][entity], self.entities_as_of)
            out: list[dict[str, Any]] = [{} for _ in rows]
            for columns, seen in zip(self._entity_outputs, found, strict=True):
                for index, raw in enumerate(seen):
                    assert raw is not None  # checked above
                    out[index] |= {name: raw.get(safe) for name, safe in columns}
            return out
        result = self._store.get_online_features(features=self._entity_refs, entity_rows=entity_rows).to_dict()
        for entity, marker in self._entity_markers:
            for index, value in enumerate(result[marker]):
                if value is None:
                    raise UnknownEntityError(entity, rows[index][entity], self.entities_as_of)
        return [{name: result[safe][index] for name, safe in self._entity_columns} for index in range(len(rows))]

    def _read_entities(self, entity_rows: dict[str, list[Any]]) -> list[list[dict[str, Any] | None]]:
        """Per entity view, in layout order: each row's stored JSON object (None: never seen), in one call."""
        requests = [(table, [v if isinstance(v, str) else str(v) for v in entity_rows[join_key]])
                    for table, (_, join_key, _) in zip(self._entity_tables, self._entity_keys, strict=True)]
        found: list[list[dict[str, Any] | None]] = self._rows.read(requests)
        return found

    def entity_features(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Each row's engineered entity features for a model, never an error for a key.

        As `get_entities`, in one Feast call, except that an entity the row does not give, or
        whose key the store has never seen, gets what a training row of a new entity gets: its
        counts and sums 0, the rest missing. Each entity on its own: a known pickup zone keeps
        its values beside an unseen dropoff zone.
        """
        if not self._entity_keys:
            return [{} for _ in rows]
        entity_rows: dict[str, list[Any]] = {}
        for entity, join_key, as_text in self._entity_keys:
            values = []
            for row in rows:
                value = row.get(entity)
                if value is None:
                    value = _ABSENT_TEXT if as_text else _ABSENT_INT  # no row has it: read as unseen
                values.append(str(value) if as_text and not isinstance(value, str) else value)
            entity_rows[join_key] = values
        out: list[dict[str, Any]] = [{} for _ in rows]
        if self._rows is not None:
            for columns, empty, seen in zip(self._entity_outputs, self._entity_empty, self._read_entities(entity_rows),
                                            strict=True):
                for index, raw in enumerate(seen):
                    out[index] |= empty if raw is None else {name: raw.get(safe) for name, safe in columns}
            return out
        result = self._store.get_online_features(features=self._entity_refs, entity_rows=entity_rows).to_dict()
        for (_, marker), columns, empty in zip(self._entity_markers, self._entity_outputs, self._entity_empty,
                                               strict=True):
            for index, seen in enumerate(result[marker]):
                out[index] |= empty if seen is None else {name: result[safe][index] for name, safe in columns}
        return out

    def freshness(self, now: datetime | None = None) -> dict[str, Any]:
        """How stale the online values are: the instant they are computed at, and its age."""
        from datetime import UTC

        when = now or datetime.now(UTC)
        as_of = self.entities_as_of or self.as_of
        age = (when - as_of).total_seconds() if as_of is not None else None
        return {"as_of": as_of.isoformat() if as_of is not None else None, "age_seconds": age}


_ABSENT_INT = -(2**63)
_ABSENT_TEXT = "\x00conveyor:absent"
"""The key read for an entity a request row does not give: no data row can hold it."""


def _postgres_down(dsn_env: str, what: str) -> str | None:
    """None when the PostgreSQL database `dsn_env` names answers `SELECT 1` within a second; else why not."""
    import os

    import psycopg

    dsn = os.environ.get(dsn_env, "")
    try:
        where = psycopg.conninfo.conninfo_to_dict(dsn)
        place = f"{where.get('host', 'localhost')}:{where.get('port', 5432)}"
    except psycopg.Error:
        place = f"({dsn_env} is not a PostgreSQL connection string)"
    if not dsn:
        return f"{what} unavailable: the environment variable {dsn_env} is not set"
    try:
        with psycopg.connect(dsn, connect_timeout=1, autocommit=True) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        text = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        why = "refused the connection" if "refused" in str(exc).lower() else f"failed: {text}"
        return f"{what} unavailable: PostgreSQL at {place} {why}"
    return None


def _entity_is_text(config: Config, column: str) -> bool:
    if column == config.schema.entity.key:
        return not key_is_integer(config)
    return config.schema.columns[column].type != "integer"
