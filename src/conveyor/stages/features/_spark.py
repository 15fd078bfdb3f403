"""Engineered features on Apache Spark (`engine: spark`): the entity tables of `_aggregates.py`,
computed with Spark window functions from the same `EntityPlan`s.

The definitions are `_aggregates.py`'s, compiled to Spark instead of Polars:

- a windowed aggregate over `[t - window, t)` is a range window over the entity's event times in
  microseconds, `rangeBetween(-window, -1)`: strictly earlier rows only, whatever the file order.
  A point's window always holds the point one instant after the entity's row it came from, so it
  is never empty; a window of only missing values sums to 0 (as Polars sums it) and counts 0;
- the change points are the rows' times plus one instant and plus each window and one instant,
  one table row per entity and point (a point reached from several rows is one row);
- a lag (and `last`) is the value `k - 1` rows back in (time, file) order, at the last row of its
  instant, carried forward to each later point (an ASOF join by entity, strictly before);
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
_EVENT = "__conveyor_event"
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
    return frame.select(*[F.col(f"`{c}`") for c in dict.fromkeys(columns)], order.alias(ORDER))


def _micros(column: str) -> Column:
    from pyspark.sql import functions as F

    return F.unix_micros(F.col(column))


def entity_table_spark(events: DataFrame, plan: EntityPlan) -> DataFrame:
    """`_aggregates.entity_table` on Spark: entity, `event_timestamp` (valid from), last event, outputs.

    `events` holds the entity column, `event_timestamp`, the plan's columns and `ORDER`.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    e = plan.entity
    ev = events.where(F.col(e).isNotNull() & F.col(EVENT_TIMESTAMP).isNotNull()).select(
        F.col(e), _micros(EVENT_TIMESTAMP).alias(_T), F.col(ORDER), *[F.col(c).cast("double").alias(c) for c in plan.columns]
    )
    windows = sorted({a.seconds() for a in plan.aggregates})
    shifts = [1, *(w * _MICROS + 1 for w in windows)]  # one instant after a row, and after it leaves a window
    points = ev.select(e, F.explode(F.array(*[F.col(_T) + F.lit(s) for s in shifts])).alias(_T)).distinct()
    combined = ev.select(e, _T, *plan.columns, F.lit(1).cast("long").alias(_EVENT)).unionByName(
        points.select(e, _T, *[F.lit(None).cast("double").alias(c) for c in plan.columns],
                      F.lit(None).cast("long").alias(_EVENT))
    )
    aggregates = [a for a in plan.aggregates if a.function != "last"]
    exprs = []
    for a in aggregates:
        window = Window.partitionBy(e).orderBy(_T).rangeBetween(-a.seconds() * _MICROS, -1)  # [t - w, t)
        if a.function == "count":
            counted = F.col(_EVENT) if a.column is None else F.col(a.column)
            exprs.append(F.count(counted).over(window).cast("long").alias(a.output()))
            continue
        function = {"sum": F.sum, "mean": F.avg, "min": F.min, "max": F.max}[a.function]
        value = function(F.col(a.column or "")).over(window).cast("double")
        if a.function == "sum":  # Polars sums a window of missing values to 0 (never an empty one: see above)
            value = F.coalesce(value, F.lit(0.0))
        exprs.append(value.alias(a.output()))
    table = combined.select(e, _T, _EVENT, *exprs).where(F.col(_EVENT).isNull()).drop(_EVENT)
    # Lags and `last`: from the latest row strictly before t (ties at one instant: the last in the file).
    lasts = [a for a in plan.aggregates if a.function == "last"]
    in_order = Window.partitionBy(e).orderBy(_T, ORDER)
    carried = [plan.last_event, *[lag.output() for lag in plan.lags], *[a.output() for a in lasts]]
    rows = ev.select(
        e, _T, ORDER, F.col(_T).alias(plan.last_event),
        *[(F.col(lag.column) if lag.lag == 1 else F.lag(lag.column, lag.lag - 1).over(in_order)).alias(lag.output())
          for lag in plan.lags],
        *[F.col(a.column or "").alias(a.output()) for a in lasts],
    )
    instant = Window.partitionBy(e, _T).orderBy(F.col(ORDER).desc())
    latest = rows.withColumn(_RANK, F.row_number().over(instant)).where(F.col(_RANK) == 1)
    outputs = [a.output() for a in aggregates]
    left = table.select(e, _T, *outputs, F.lit(0).alias(_KIND), *[
        F.lit(None).cast("long" if n == plan.last_event else "double").alias(n) for n in carried
    ])
    right = latest.select(e, _T, *[F.lit(None).cast(_output_type(plan, n)).alias(n) for n in outputs],
                          F.lit(1).alias(_KIND), *carried)
    # points before rows at one instant: a point sees only the rows strictly before it
    before = Window.partitionBy(e).orderBy(_T, _KIND).rowsBetween(Window.unboundedPreceding, Window.currentRow)
    carry = F.last(F.when(F.col(_KIND) == 1, F.struct(*carried)), ignorenulls=True).over(before)
    joined = left.unionByName(right).withColumn(_CARRY, carry).where(F.col(_KIND) == 0)
    last_event = F.col(f"{_CARRY}.{plan.last_event}")
    values = {n: F.col(f"{_CARRY}.{n}") for n in carried[1:]}
    for a in lasts:  # `last` over its window: only when the latest row is in it
        values[a.output()] = F.when(last_event >= F.col(_T) - a.seconds() * _MICROS, values[a.output()])
    columns = {**{n: F.col(n) for n in outputs}, **values}
    return joined.select(
        e,
        F.timestamp_micros(F.col(_T)).alias(EVENT_TIMESTAMP),
        F.timestamp_micros(last_event).alias(plan.last_event),
        *[columns[n].alias(n) for n in plan.outputs()],
    )


def _output_type(plan: EntityPlan, name: str) -> str:
    return "long" if name in {a.output() for a in plan.aggregates if a.function == "count"} else "double"


def latest_per_key(frame: DataFrame, key: str, *, up_to: datetime | None = None) -> DataFrame:
    """One row per `key`: its latest by event time (on a tie, the later in `ORDER` when the frame has it)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    if up_to is not None:
        frame = frame.where(F.col(EVENT_TIMESTAMP) <= F.lit(up_to))
    order = [F.col(EVENT_TIMESTAMP).desc(), *([F.col(ORDER).desc()] if ORDER in frame.columns else [])]
    ranked = frame.withColumn(_RANK, F.row_number().over(Window.partitionBy(key).orderBy(*order)))
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
        table = tables[plan.entity].select(F.col(e).cast(rows.schema[e].dataType).alias(e), EVENT_TIMESTAMP, *outputs)
        left = out.select("*", F.lit(1).alias(_KIND))
        right_columns = [F.lit(None).cast(f.dataType).alias(f.name) for f in out.schema.fields
                         if f.name not in (e, EVENT_TIMESTAMP)]
        right = table.select(e, EVENT_TIMESTAMP, F.struct(*outputs).alias(_CARRY), *right_columns,
                             F.lit(0).alias(_KIND))
        left = left.withColumn(_CARRY, F.lit(None).cast(right.schema[_CARRY].dataType))
        # table rows before entity rows at one instant: "at or before" t
        before = Window.partitionBy(e).orderBy(EVENT_TIMESTAMP, _KIND).rowsBetween(
            Window.unboundedPreceding, Window.currentRow)
        carried = F.last(F.col(_CARRY), ignorenulls=True).over(before)
        joined = left.unionByName(right).withColumn(_CARRY, carried).where(F.col(_KIND) == 1)
        zero = set(plan.zero_when_empty())
        out = joined.select(
            *[c for c in out.columns],
            *[(F.coalesce(F.col(f"{_CARRY}.{n}"), F.lit(0).cast(_output_type(plan, n))) if n in zero
               else F.col(f"{_CARRY}.{n}")).alias(n) for n in outputs],
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
    return frame.mapInArrow(_on_demand_task(spec), out_schema)


def _on_demand_task(spec: dict[str, Any]) -> Any:
    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import polars as pl

        from conveyor.core.config import Config
        from conveyor.stages.features._ondemand import add_on_demand

        config = Config.model_validate(spec)
        for batch in batches:
            frame = pl.from_arrow(batch)
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

