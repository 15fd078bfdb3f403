"""The `features` stage's build: the Feast source, each entity's feature table, apply, the online store.

A whole store is built in a staging repo, then its files are moved in: a failed build leaves the
previous store as it was. With `engine: spark` the tables and the online rows are computed by
Spark (`_spark.py`); everything else is the same.
"""

from __future__ import annotations

import shutil
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from conveyor.core.artifacts import Artifact, relative_to
from conveyor.core.config import EVENT_TIMESTAMP, Config
from conveyor.core.errors import FeatureStoreError, ServiceUnavailable
from conveyor.core.hashing import hash_json
from conveyor.core.workspace import Workspace
from conveyor.stages.features._aggregates import (
    EntityPlan,
    check_features_config,
    entity_table,
    online_rows,
)
from conveyor.stages.features._names import EntityNames, FieldNames, feast_names, field_names
from conveyor.stages.features._online import OnlineWrite, publish_online, write_frame, write_online
from conveyor.stages.features._repo import (
    ONLINE_STORE,
    REGISTRY,
    SOURCE,
    entity_layout,
    feast_objects,
    local_parts,
    offline_parts,
    redis_key_prefix,
    write_repo,
)
from conveyor.stages.features._results import (
    FEATURES_VERSION,
    CleanInput,
    FeatureRepo,
)
from conveyor.stages.features._shared import offline_root, push_offline
from conveyor.stages.features._store import (
    feast_error,
    feast_logs,
    key_cast,
    open_repo,
    to_feast,
)

__all__ = ["build_features"]


def _write_source(config: Config, fields: FieldNames, clean: Path, out: Path) -> int:
    """The Feast source: entity key, event time and features of the clean data, under safe names."""
    import polars as pl

    frame = pl.read_parquet(clean, columns=[fields.key, EVENT_TIMESTAMP, *fields.features])
    frame = frame.with_columns(pl.col(fields.key).cast(key_cast(config))).rename(
        {name: fields.to_feast[name] for name in (fields.key, *fields.features)}
    )
    tmp = out.with_name(out.name + ".tmp")
    frame.write_parquet(tmp)
    tmp.replace(out)
    return frame.height


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
        to_feast(table, plan, names).write_parquet(tmp)
        tmp.replace(out)
    return tables, as_of


class _PolarsBuild:
    """The tables and online rows computed with Polars (`engine: polars`)."""

    def __init__(self, config: Config, clean: Path, layout: list[tuple[EntityPlan, EntityNames]]) -> None:
        self.config, self.clean, self.layout = config, clean, layout
        self.tables: dict[str, Any] = {}

    def write_source(self, fields: FieldNames, out: Path) -> int:
        return _write_source(self.config, fields, self.clean, out)

    def write_tables(self, repo: Path) -> tuple[dict[str, int], datetime]:
        self.tables, as_of = _write_entity_tables(self.config, self.layout, self.clean, repo)
        return {entity: table.height for entity, table in self.tables.items()}, as_of

    def write_online(self, store: Any, view: Any, key: str, generation: str | None) -> OnlineWrite:
        return write_online(store, view, store.repo_path / SOURCE, key, generation=generation)

    def write_entity_online(
        self, store: Any, view: Any, plan: EntityPlan, names: EntityNames, start: datetime, as_of: datetime,
        generation: str | None,
    ) -> OnlineWrite:
        latest = online_rows(self.tables[plan.entity], plan, as_of)
        return write_frame(store, view, to_feast(latest, plan, names), start, as_of, generation=generation)


def _engine(config: Config, clean: Path, layout: list[tuple[EntityPlan, EntityNames]]) -> Any:
    """What computes the tables and online rows: Polars, or Spark with `engine: spark`."""
    if config.engine == "spark":
        from conveyor.stages.features._spark_build import SparkBuild

        return SparkBuild(config, clean, layout)
    return _PolarsBuild(config, clean, layout)


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
            build = _engine(config, clean.path, layout)
            rows = build.write_source(fields, staging / SOURCE)
            began = time.perf_counter()
            table_rows, as_of = build.write_tables(staging)
            table_seconds = time.perf_counter() - began
            if offline is not None:
                push_offline(offline, staging, offline_parts(config))
            store = open_repo(config, staging)
            store.apply(objects.all())
            began = time.perf_counter()
            written = build.write_online(store, objects.view, fields.feast_key, generation)
            online: dict[str, int] = {}
            for made in objects.by_entity:
                online[made.names.view] = build.write_entity_online(
                    store, made.view, made.plan, made.names, written.start, as_of, generation
                ).entities
            seconds = time.perf_counter() - began
        except (FeatureStoreError, ServiceUnavailable):
            raise
        except Exception as exc:  # Feast raises many unrelated types
            raise feast_error(f"could not build the feature store in {repo} from {clean.path}", exc, logs) from exc
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
        entity_table_rows={m.names.view: table_rows[m.plan.entity] for m in objects.by_entity},
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
