"""Engineered features on Apache Spark (`engine: spark`): the entity tables of `_aggregates.py`,
the training-set join and the on-demand features, on Spark, from the same `EntityPlan`s.

- each entity's feature table (windowed aggregates over `[t - window, t)` of strictly earlier
  rows, lags, `last`) is `_aggregates.entity_table` itself, run by Spark on each entity's rows
  (`groupBy(entity).applyInArrow`, the rows in file order): one definition, the same values to
  the last bit. Spark's own range windows were the first version here; they agree with Polars'
  running sums to about 1e-14 only, and LightGBM's bins and early stopping turned that into a
  different model (the taxi example: 162 boosting rounds against 246). An executor's Python
  worker holds one entity's rows at a time, never the data;
- the training-set rows take each table's latest row at or before their event time by Spark
  window functions (an ASOF join by entity), and the online rows are each entity's latest;
- on-demand features run the Polars expressions of `_ondemand.py` in Spark's tasks (`mapInArrow`),
  so a value is computed by the very same code on both engines.

The file order of the clean rows is Spark's `_metadata` (part file, then row in the part): the
order the Polars engine reads the same folder in.

Whatever Spark writes here goes to a folder of parts first; `single_file` then streams the parts'
record batches into the one Parquet file the store layout names (`data/source.parquet`,
`data/by_<entity>.parquet`), so the files, the registry and every reader are the engines' same.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.core.config import EVENT_TIMESTAMP, Config
from conveyor.stages.features._aggregates import INSTANT, EntityPlan
from conveyor.stages.spark import column, positional

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import Column, DataFrame, SparkSession

__all__ = [
    "ORDER",
    "add_on_demand_spark",
    "clean_frame",
    "entity_table_spark",
    "join_tables_spark",
    "latest_per_key",
    "newest",
    "online_as_of",
    "parquet_batches",
    "single_file",
    "spark_for",
    "write_parts",
]

ORDER = "__conveyor_order"
"""A clean row's place in the file order (part, then row): ties at one instant keep it."""
_T = "__conveyor_t"
_FILE = "__conveyor_file"
_ROW = "__conveyor_row"
_KIND = "__conveyor_kind"
_CARRY = "__conveyor_carry"
_RANK = "__conveyor_rank"
_MICROS = 1_000_000

BATCH_ROWS = 100_000
"""Rows per batch read back on the driver (online writes, file copies): its memory bound."""


def spark_for(config: Config) -> SparkSession:
    from conveyor.stages.spark import spark_session

    return spark_session(config.spark, config.name)


def clean_frame(session: SparkSession, clean: Path, columns: list[str]) -> DataFrame:
    """The clean rows' `columns` and `ORDER` (file order: part file, then row within it)."""
    from pyspark.sql import functions as F

    frame = session.read.parquet(clean.resolve().as_uri())
    order = F.struct(F.col("_metadata.file_path"), F.col("_metadata.row_index"))
    return frame.select(*[column(c) for c in dict.fromkeys(columns)], order.alias(ORDER))


def _micros(column: str) -> Column:
    from pyspark.sql import functions as F

    return F.unix_micros(F.col(column))


def entity_table_spark(events: DataFrame, plan: EntityPlan) -> DataFrame:
    """`_aggregates.entity_table` on Spark: entity, `event_timestamp` (valid from), last event, outputs.

    `events` holds the entity column, `event_timestamp`, the plan's columns and `ORDER`. Spark
    groups the rows by entity and each group, in file order, goes through `entity_table` itself
    in an executor's Python worker (`applyInArrow`): the one definition, and the same float sums
    to the last bit (a running sum and Spark's per-window sums differ there, and LightGBM's bins
    and early stopping turn that into a different model). An executor holds one entity's rows.
    """
    from pyspark.sql import functions as F
    from pyspark.sql import types as T
    from pyspark.sql.pandas.types import to_arrow_schema

    e = plan.entity
    ev = events.where(column(e).isNotNull() & F.col(EVENT_TIMESTAMP).isNotNull()).select(
        column(e), _micros(EVENT_TIMESTAMP).alias(_T), F.col(f"{ORDER}.file_path").alias(_FILE),
        F.col(f"{ORDER}.row_index").alias(_ROW), *[column(c).cast("double").alias(c) for c in plan.columns],
    )
    schema = T.StructType([
        T.StructField(e, ev.schema[e].dataType), T.StructField(_T, T.LongType()),
        T.StructField(plan.last_event, T.LongType()),
        *[T.StructField(n, T.LongType() if _output_type(plan, n) == "long" else T.DoubleType()) for n in plan.outputs()],
    ])
    safe, names = positional(ev)
    key = safe.columns[names.index(e)]
    table = safe.groupBy(F.col(key)).applyInArrow(
        _entity_task(plan, to_arrow_schema(schema, timezone="UTC"), names), schema)
    return table.select(
        column(e),
        F.timestamp_micros(F.col(_T)).alias(EVENT_TIMESTAMP),
        F.timestamp_micros(F.col(plan.last_event)).alias(plan.last_event),
        *[column(n) for n in plan.outputs()],
    )


def _entity_task(plan: EntityPlan, target: pa.Schema, names: list[str]) -> Any:
    def run(group: pa.Table) -> pa.Table:
        import polars as pl

        from conveyor.stages.features._aggregates import entity_table

        frame = pl.from_arrow(group.rename_columns(names))
        assert isinstance(frame, pl.DataFrame)
        rows = frame.sort(_FILE, _ROW).select(
            plan.entity, pl.from_epoch(_T, time_unit="us").dt.replace_time_zone("UTC").alias(EVENT_TIMESTAMP),
            *plan.columns,
        )
        out = entity_table(rows, plan).with_columns(
            pl.col(EVENT_TIMESTAMP).dt.epoch("us").alias(_T), pl.col(plan.last_event).dt.epoch("us"),
        )
        return out.select(target.names).to_arrow().cast(target)

    return run


def _output_type(plan: EntityPlan, name: str) -> str:
    return "long" if name in {a.output() for a in plan.aggregates if a.function == "count"} else "double"


def latest_per_key(frame: DataFrame, key: str, *, up_to: datetime | None = None) -> DataFrame:
    """One row per `key`: its latest by event time (on a tie, the later in `ORDER` when the frame has it)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    if up_to is not None:
        frame = frame.where(F.col(EVENT_TIMESTAMP) <= F.lit(up_to))
    order = [F.col(EVENT_TIMESTAMP).desc(), *([F.col(ORDER).desc()] if ORDER in frame.columns else [])]
    ranked = frame.withColumn(_RANK, F.row_number().over(Window.partitionBy(column(key)).orderBy(*order)))
    return ranked.where(F.col(_RANK) == 1).drop(_RANK)


def online_as_of(table: DataFrame, plan: EntityPlan, as_of: datetime) -> DataFrame:
    """`_aggregates.online_rows` on Spark: each entity's values at `as_of + 1 us`."""
    return latest_per_key(table, plan.entity, up_to=as_of + INSTANT)


def join_tables_spark(rows: DataFrame, tables: dict[str, DataFrame], plans: list[EntityPlan]) -> DataFrame:
    """`_aggregates.join_aggregates` on Spark: each row with every plan's features as of its event
    time (the latest table row at or before it, by entity). Rows in == rows out; an entity
    without an earlier row gets counts and sums 0, the rest null."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    out = rows
    for plan in plans:
        e, outputs = plan.entity, plan.outputs()
        table = tables[plan.entity].select(column(e).cast(rows.schema[e].dataType).alias(e), EVENT_TIMESTAMP,
                                           *[column(n) for n in outputs])
        left = out.select("*", F.lit(1).alias(_KIND))
        right_columns = [F.lit(None).cast(f.dataType).alias(f.name) for f in out.schema.fields
                         if f.name not in (e, EVENT_TIMESTAMP)]
        right = table.select(column(e), EVENT_TIMESTAMP, F.struct(*[column(n) for n in outputs]).alias(_CARRY),
                             *right_columns,
                             F.lit(0).alias(_KIND))
        left = left.withColumn(_CARRY, F.lit(None).cast(right.schema[_CARRY].dataType))
        # table rows before entity rows at one instant: "at or before" t
        before = Window.partitionBy(column(e)).orderBy(EVENT_TIMESTAMP, _KIND).rowsBetween(
            Window.unboundedPreceding, Window.currentRow)
        carried = F.last(F.col(_CARRY), ignorenulls=True).over(before)
        joined = left.unionByName(right).withColumn(_CARRY, carried).where(F.col(_KIND) == 1)
        zero = set(plan.zero_when_empty())
        out = joined.select(
            *[column(c) for c in out.columns],
            *[(F.coalesce(F.col(_CARRY).getField(n), F.lit(0).cast(_output_type(plan, n))) if n in zero
               else F.col(_CARRY).getField(n)).alias(n) for n in outputs],
        )
    return out


def add_on_demand_spark(config: Config, frame: DataFrame) -> DataFrame:
    """The on-demand features, by `_ondemand.add_on_demand` itself in each task (Arrow batches)."""
    import polars as pl
    from pyspark.sql.pandas.types import from_arrow_schema, to_arrow_schema

    from conveyor.stages.features._ondemand import add_on_demand

    if not config.features.on_demand:
        return frame
    arrow_schema = to_arrow_schema(frame.schema, timezone="UTC")
    empty = pl.from_arrow(arrow_schema.empty_table())
    assert isinstance(empty, pl.DataFrame)
    out_schema = from_arrow_schema(add_on_demand(config, empty).to_arrow().schema)
    spec = config.model_dump(mode="json", by_alias=True)
    safe, names = positional(frame)
    return safe.mapInArrow(_on_demand_task(spec, names), out_schema)


def _on_demand_task(spec: dict[str, Any], names: list[str]) -> Any:
    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import polars as pl

        from conveyor.core.config import Config
        from conveyor.stages.features._ondemand import add_on_demand

        config = Config.model_validate(spec)
        for batch in batches:
            frame = pl.from_arrow(batch.rename_columns(names))
            assert isinstance(frame, pl.DataFrame)
            yield from add_on_demand(config, frame).to_arrow().to_batches()

    return run


def parquet_batches(folder: Path, batch_rows: int = BATCH_ROWS) -> Iterator[pa.RecordBatch]:
    """The record batches of a folder of Parquet parts, in part order, `batch_rows` at a time."""
    import pyarrow.parquet as pq

    for part in sorted(folder.glob("part-*.parquet")):
        yield from pq.ParquetFile(part).iter_batches(batch_size=batch_rows)


def write_parts(frame: DataFrame, folder: Path) -> Path:
    shutil.rmtree(folder, ignore_errors=True)
    frame.write.mode("overwrite").parquet(folder.resolve().as_uri())
    return folder


def single_file(frame: DataFrame, out: Path, schema: pa.Schema | None = None) -> int:
    """Write `frame` (in its order) as the one Parquet file `out`, through a folder of parts whose
    batches are copied one at a time; cast to `schema` when given. Returns the rows written."""
    import pyarrow.parquet as pq

    parts = write_parts(frame, out.with_name(out.name + ".parts"))
    tmp = out.with_name(out.name + ".tmp")
    first = sorted(parts.glob("part-*.parquet"))
    target = schema or (pq.read_schema(first[0]) if first else None)
    if target is None:
        raise ValueError(f"Spark wrote no part to {parts}")
    rows = 0
    with pq.ParquetWriter(tmp, target) as writer:
        for batch in parquet_batches(parts):
            writer.write_batch(batch.cast(target) if schema is not None else batch)
            rows += batch.num_rows
    shutil.rmtree(parts)
    tmp.replace(out)
    return rows


def newest(frame: DataFrame) -> tuple[datetime | None, datetime | None]:
    """The first and last event time of a frame (one Spark job)."""
    from pyspark.sql import functions as F

    # as microseconds: PySpark turns a timestamp into a datetime in the Python process's zone
    row = frame.agg(F.min(_micros(EVENT_TIMESTAMP)).alias("a"), F.max(_micros(EVENT_TIMESTAMP)).alias("b")).collect()[0]
    return _from_micros(row["a"]), _from_micros(row["b"])


def _from_micros(value: int | None) -> datetime | None:
    if value is None:
        return None
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=value)

