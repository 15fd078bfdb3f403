"""The `dataset` stage: the point-in-time training set, through Feast's offline store.

`engine: polars`: Feast's DuckDB offline store, then the entity tables joined with Polars.
`engine: spark`: Feast's Spark offline store and Spark's joins (`_spark_dataset.py`).
"""

from __future__ import annotations

from conveyor.core.artifacts import Artifact
from conveyor.core.config import EVENT_TIMESTAMP, Config
from conveyor.core.errors import FeatureStoreError
from conveyor.core.hashing import hash_json, short
from conveyor.core.workspace import Workspace
from conveyor.stages.features._aggregates import join_aggregates
from conveyor.stages.features._names import ROW, feast_names, field_names
from conveyor.stages.features._ondemand import add_on_demand
from conveyor.stages.features._repo import (
    SOURCE,
    entity_layout,
    offline_parts,
    store_repo,
)
from conveyor.stages.features._results import (
    DATASET_VERSION,
    CleanInput,
    FeatureRepo,
    TrainingSet,
)
from conveyor.stages.features._shared import fetch_offline, offline_root
from conveyor.stages.features._store import (
    feast_error,
    feast_logs,
    feature_columns,
    key_cast,
    open_store,
    read_entity_tables,
    registry_view,
)

__all__ = ["training_set"]


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
    repo = store_repo(config, workspace)
    offline = offline_root(config, feast_names(config).project)
    if offline is not None:  # the shared copies in S3, read here from a local copy
        fetch_offline(offline, repo, offline_parts(config))
    if config.engine == "spark":
        from conveyor.stages.features._spark_dataset import spark_training_set

        result = spark_training_set(config, workspace, features, clean, out)
        return Artifact("training_set", out, digest, result, {"features": features.digest, "clean": clean.digest})
    labels = pl.read_parquet(clean.path, columns=list(dict.fromkeys([key, EVENT_TIMESTAMP, target])))
    labels = labels.with_row_index(ROW)
    entity_df = (
        labels.select(
            pl.col(key).cast(key_cast(config)).alias(fields.feast_key),
            pl.col(EVENT_TIMESTAMP),
            pl.col(ROW).cast(pl.Int64),
        )
        .to_pandas()
    )
    with feast_logs() as logs:
        store = open_store(config, workspace, existing=True)
        try:
            view, refs = registry_view(store, features.result.feature_service, fields, features.result.feature_view,
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
            raise feast_error(f"Feast could not build the training set from {repo}", exc, logs) from exc
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
