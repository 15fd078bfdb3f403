"""The point-in-time training set on Apache Spark (`engine: spark`), through Feast's Spark offline store.

The schema's features come through Feast: `SparkOfflineStore.get_historical_features`, with the
registry's feature view read from a `SparkSource` on the same `data/source.parquet` (the registry
itself keeps its `FileSource`: the Polars engine, serving and other projects read it unchanged).
The entity rows are a Spark DataFrame, so they never come to the driver. Rows in and out are
counted and matched one to one by a row id, as on the Polars engine: Feast's join must keep
every row, and an entity row without an earlier feature row keeps its nulls.

The engineered features are joined by Spark (`_spark.join_tables_spark`: the latest table row at
or before each row's time, as Polars's ASOF join), the on-demand ones by `_ondemand`'s Polars
expressions in Spark's tasks. The result is written in the Polars engine's row order and types:
one Parquet file, sorted by event time then entity key.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.core.artifacts import Artifact
from conveyor.core.config import EVENT_TIMESTAMP, Config
from conveyor.core.errors import FeatureStoreError
from conveyor.core.workspace import Workspace
from conveyor.stages.features._names import ROW, field_names
from conveyor.stages.features._repo import SOURCE, entity_layout, key_is_integer, store_repo
from conveyor.stages.features._results import CleanInput, FeatureRepo, TrainingSet
from conveyor.stages.features._spark import (
    ORDER,
    add_on_demand_spark,
    clean_frame,
    join_tables_spark,
    single_file,
    spark_for,
)
from conveyor.stages.features._store import feast_error, feast_logs, feature_columns, open_store, registry_view
from conveyor.stages.spark import column

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame, SparkSession

__all__ = ["spark_historical_features", "spark_training_set"]


def spark_historical_features(store: Any, view: Any, refs: list[str], entity_df: DataFrame, source: Path) -> DataFrame:
    """Feast's Spark offline store's point-in-time join of `entity_df` with `view`, read from `source`.

    The view's batch source becomes a `SparkSource` on `source` (this call only), and the repo's
    config names the Spark offline store: the registry and the repo's files are not changed.

    The entity rows' event time goes in as `TIMESTAMP_NTZ` (its UTC wall clock): Feast collects the
    entity rows' first and last time to the driver to bound the feature rows it reads, and PySpark
    turns a `TIMESTAMP` into the driver process's local time, which Feast then takes for UTC
    ("need utc conversion here" in its code). On a driver west of UTC that would cut the feature
    rows of the last hours and leave those entity rows' features missing, without a lost row.
    """
    from feast.infra.offline_stores.contrib.spark_offline_store.spark import (
        SparkOfflineStore,
        SparkOfflineStoreConfig,
    )
    from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import SparkSource
    from pyspark.sql import functions as F

    entity_df = entity_df.withColumn(EVENT_TIMESTAMP, F.col(EVENT_TIMESTAMP).cast("timestamp_ntz"))
    with warnings.catch_warnings():  # after the imports: Feast's module sets a RuntimeWarning filter of its own
        warnings.filterwarnings("ignore", message="The spark .* is an experimental feature")
        return _historical(store, view, refs, entity_df, source, SparkOfflineStore, SparkOfflineStoreConfig, SparkSource)


def _historical(store: Any, view: Any, refs: list[str], entity_df: DataFrame, source: Path, offline: Any,
                offline_config: Any, spark_source: Any) -> DataFrame:
    batch = view.batch_source
    view.batch_source = spark_source(
        name=batch.name,
        path=source.resolve().as_uri(),
        file_format="parquet",
        timestamp_field=batch.timestamp_field,
        created_timestamp_column=batch.created_timestamp_column or None,
        field_mapping=dict(batch.field_mapping) or None,
    )
    config = store.config.model_copy()
    config._offline_store = offline_config()
    job = offline.get_historical_features(
        config=config,
        feature_views=[view],
        feature_refs=refs,
        entity_df=entity_df,
        registry=store.registry,
        project=store.project,
        full_feature_names=False,
    )
    joined: DataFrame = job.to_spark_df()
    return joined


def spark_training_set(
    config: Config, workspace: Workspace, features: Artifact[FeatureRepo], clean: Artifact[CleanInput], out: Path
) -> TrainingSet:
    """The Polars engine's training set (`_dataset.training_set`), computed by Spark, written to `out`."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    schema = config.schema
    fields = field_names(config)
    key, target = schema.entity.key, schema.target
    session = spark_for(config)
    labels = clean_frame(session, clean.path, [key, EVENT_TIMESTAMP, target]).drop(ORDER)
    labels = labels.withColumn(ROW, F.monotonically_increasing_id()).persist(StorageLevel.DISK_ONLY)
    kept: list[DataFrame] = [labels]
    try:
        entity_rows = labels.count()
        entity_df = labels.select(
            column(key).cast("long" if key_is_integer(config) else "string").alias(fields.feast_key),
            F.col(EVENT_TIMESTAMP),
            F.col(ROW),
        )
        repo = store_repo(config, workspace)
        with feast_logs() as logs:
            store = open_store(config, workspace, existing=True)
            try:
                view, refs = registry_view(store, features.result.feature_service, fields,
                                           features.result.feature_view, exact=config.features.repo is None)
                joined = spark_historical_features(store, view, refs, entity_df, repo / SOURCE)
                joined = joined.select(
                    F.col(ROW), *[column(fields.to_feast[name]).alias(name) for name in fields.features]
                ).persist(StorageLevel.DISK_ONLY)
                kept.append(joined)
                counts = joined.agg(F.count(F.lit(1)).alias("rows"), F.countDistinct(ROW).alias("ids")).collect()[0]
            except FeatureStoreError:
                raise
            except Exception as exc:
                raise feast_error(f"Feast's Spark offline store could not build the training set from {repo}",
                                  exc, logs) from exc
        if counts["rows"] != entity_rows or counts["ids"] != entity_rows:
            raise FeatureStoreError(
                f"Feast's Spark point-in-time join returned {counts['rows']} rows ({counts['ids']} distinct) "
                f"for {entity_rows} entity rows; refusing to train on a silently changed training set"
            )
        frame = labels.join(joined, on=ROW, how="left")
        layout = entity_layout(config)
        if layout:
            frame = join_tables_spark(frame, _tables(session, repo, layout), [p for p, _ in layout])
        engineered = config.features.engineered()
        columns = [key, EVENT_TIMESTAMP, *fields.features, *engineered, target]
        frame = add_on_demand_spark(config, frame.drop(ROW))
        frame = frame.select(*[column(c) for c in columns]).orderBy(F.col(EVENT_TIMESTAMP), column(key))
        workspace.ensure(workspace.training_sets)
        rows = single_file(frame, out, _polars_types(clean.path, frame, columns))
    finally:
        for kept_frame in kept:
            kept_frame.unpersist()
    if rows != entity_rows:
        raise FeatureStoreError(f"the training set has {rows} rows for {entity_rows} clean rows")
    return TrainingSet(
        rows=rows,
        entity_rows=entity_rows,
        columns=columns,
        features=feature_columns(config),
        engineered=engineered,
    )


def _tables(session: SparkSession, repo: Path, layout: list[tuple[Any, Any]]) -> dict[str, DataFrame]:
    """Each entity's feature table from the repo, under the original column names."""
    tables = {}
    for plan, names in layout:
        path = repo / names.path
        if not path.is_file():
            raise FeatureStoreError(f"no feature table {path}: run `conveyor run --from features`")
        frame = session.read.parquet(path.resolve().as_uri())
        original = {names.join_key: plan.entity, **{f: o for o, f in names.to_feast.items()}}
        tables[plan.entity] = frame.toDF(*[original.get(c, c) for c in frame.columns])
    return tables


def _polars_types(clean: Path, frame: DataFrame, columns: list[str]) -> pa.Schema:
    """The training set's Arrow schema: the clean data's types for its columns (Spark reads an
    unsigned or narrow integer wider), Spark's for the engineered ones."""
    import pyarrow.dataset as ds
    from pyspark.sql.pandas.types import to_arrow_schema

    source = ds.dataset(clean, format="parquet").schema
    spark = to_arrow_schema(frame.schema, timezone="UTC")
    import pyarrow as pa

    return pa.schema([source.field(c) if c in source.names else spark.field(c) for c in columns])
