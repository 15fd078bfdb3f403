"""Prepare on Apache Spark (`engine: spark`): the Polars engine's rules, run by Spark.

The rules (types, missing tokens, non-finite values, integer exactness, required values, the
words of every reason) exist once, as the Polars expressions of `_clean.py`. Spark runs them:
each task hands its rows to Polars through Arrow (`mapInArrow`) and gets them back typed, so a
row is cleaned by the very same code on both engines. What needs every row at once is Spark's:

- the generated entity key (a row's position in the snapshot): a sort, then each sorted
  partition's row count;
- duplicates (the same entity key at the same event time): a window over key and time, in
  line order, exactly as the Polars engine ranks them;
- the quarantine: the rejected rows are joined back to their text and typed again in their
  tasks to say why; only they come to the driver (the Polars engine keeps them in memory too).

The frames read twice are persisted on disk only (`DISK_ONLY`): kept in memory as well, a
partition read back from disk is cached whole in the heap, which ran a 4 GB heap out of memory
at 50M rows.

The workers need what the driver has: Python with Conveyor and Polars (`conveyor[spark]`).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.core.config import EVENT_TIMESTAMP, Config
from conveyor.stages.prep._clean import _DUP, _FLAG, _POSITION, FILE, LINE, REASON, _reasons, _typed
from conveyor.stages.spark import column, positional

if TYPE_CHECKING:
    import polars as pl
    import pyarrow as pa
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import DataType

__all__ = ["clean_on_spark"]

_PID = "__pid"
_MID = "__mid"


def clean_on_spark(config: Config, raw_path: Path, ingested_at: str, out: Path) -> tuple[int, pl.DataFrame, str, str]:
    """Clean rows to the folder `out`; (rows, the quarantine, first and last event time), as the Polars engine."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F
    from pyspark.sql import window as W

    from conveyor.stages.spark import spark_session

    session = spark_session(config.spark, config.name)
    raw = session.read.parquet(raw_path.resolve().as_uri())
    several = FILE in raw.columns
    order = [FILE, LINE] if several else [LINE]
    schema = config.schema
    kept: list[DataFrame] = []  # persisted frames, unpersisted at the end
    if schema.entity.generated:
        raw = _with_position(session, raw, order, kept)
    header = [c for c in raw.columns if c not in (LINE, FILE, _POSITION)]
    spec = config.model_dump(mode="json", by_alias=True)
    columns = list(dict.fromkeys([schema.entity.key, EVENT_TIMESTAMP, *schema.features(), schema.target, LINE]))
    typed_schema = _output_schema(raw, config, ingested_at, columns, several)
    safe, names = positional(raw)
    typed = safe.mapInArrow(_typing(spec, ingested_at, columns, several, names), typed_schema)
    if schema.entity.generated:
        dup = F.lit(False)
    else:  # ranked in line order over every row of a key and time, rejected ones too, as the Polars engine does
        window = W.Window.partitionBy(column(schema.entity.key), F.col(EVENT_TIMESTAMP)).orderBy(*order)
        dup = (F.row_number().over(window) > 1) & ~F.col(_FLAG)
    typed = typed.withColumn(_DUP, dup).persist(StorageLevel.DISK_ONLY)
    kept.append(typed)
    try:
        clean = typed.where(~F.col(_FLAG) & ~F.col(_DUP))
        stats = clean.agg(
            F.count(F.lit(1)).alias("rows"),
            F.unix_micros(F.min(EVENT_TIMESTAMP)).alias("min"),
            F.unix_micros(F.max(EVENT_TIMESTAMP)).alias("max"),
        ).collect()[0]
        # in line order, as the Polars engine writes them (a seeded split then sees the same rows)
        clean.orderBy(*order).select(*[column(c) for c in columns]).write.mode("overwrite").parquet(
            out.resolve().as_uri()
        )
        for crc in out.glob(".*.crc"):  # Hadoop's checksums: not data, and Polars would try to read them
            crc.unlink()
        rejected = typed.where(F.col(_FLAG) | F.col(_DUP)).select(*order, _DUP)
        quarantine = _quarantine(session, raw, rejected, spec, ingested_at, header, order, several)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    finally:
        for frame in kept:
            frame.unpersist()
    return int(stats["rows"]), quarantine, _time(stats["min"]), _time(stats["max"])


def _time(micros: int | None) -> str:
    """An event time as the Polars engine prints it (`2011-01-01 00:00:00+00:00`)."""
    if micros is None:
        return "None"
    return str(datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(micros)))


def _with_position(session: SparkSession, raw: DataFrame, order: list[str], kept: list[DataFrame]) -> DataFrame:
    """`__position`: each row's 1-based position in the snapshot in line order (the generated key)."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    ranked = raw.orderBy(*order).select(
        "*", F.spark_partition_id().alias(_PID), F.monotonically_increasing_id().alias(_MID)
    ).persist(StorageLevel.DISK_ONLY)
    kept.append(ranked)
    counts = ranked.groupBy(_PID).agg(F.count(F.lit(1)).alias("n"), F.min(_MID).alias("first")).collect()
    table, before = [], 0
    for row in sorted(counts, key=lambda r: r[_PID]):
        table.append((int(row[_PID]), int(row["first"]), before))
        before += int(row["n"])
    offsets = session.createDataFrame(table, T.StructType([
        T.StructField(_PID, T.IntegerType()), T.StructField("first", T.LongType()), T.StructField("base", T.LongType()),
    ]))
    position = F.col(_MID) - F.col("first") + F.col("base") + 1
    return ranked.join(F.broadcast(offsets), _PID).select(*[column(c) for c in raw.columns], position.alias(_POSITION))


def _spark_type(dtype: Any) -> DataType:
    import polars as pl
    from pyspark.sql import types as T

    if dtype == pl.Int64:
        return T.LongType()
    if dtype == pl.Float64:
        return T.DoubleType()
    if dtype == pl.Boolean:
        return T.BooleanType()
    if dtype == pl.Date:
        return T.DateType()
    if isinstance(dtype, pl.Datetime):
        return T.TimestampType() if dtype.time_zone else T.TimestampNTZType()
    if dtype == pl.String:
        return T.StringType()
    raise TypeError(f"no Spark type for the Polars type {dtype}")


def _polars_frame(raw: DataFrame) -> pl.DataFrame:
    """An empty Polars frame with the snapshot's columns (text, `_line`, `_file`, `__position`)."""
    import polars as pl

    kinds = {LINE: pl.Int64, _POSITION: pl.Int64}
    return pl.DataFrame(schema={c: kinds.get(c, pl.String) for c in raw.columns})


def _output_schema(raw: DataFrame, config: Config, ingested_at: str, columns: list[str], several: bool) -> Any:
    """The typed rows' Spark schema, read from the Polars plan on no rows."""
    from pyspark.sql import types as T

    typed = _typed_part(_polars_frame(raw), config, ingested_at, columns, several)
    return T.StructType([T.StructField(n, _spark_type(t)) for n, t in typed.schema.items()])


def _typed_part(frame: pl.DataFrame, config: Config, ingested_at: str, columns: list[str], several: bool) -> pl.DataFrame:
    """One task's rows typed by the Polars engine's rules; duplicates are looked for over all rows, later."""
    keep = [*columns, *([FILE] if several else []), _FLAG]
    return _typed(frame.lazy(), config, ingested_at, subset=False, duplicates=False).select(keep).collect()


def _typing(spec: dict[str, Any], ingested_at: str, columns: list[str], several: bool,
            names: list[str]) -> Callable[..., Any]:
    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import polars as pl

        config = Config.model_validate(spec)
        for batch in batches:
            frame = pl.from_arrow(batch.rename_columns(names))
            assert isinstance(frame, pl.DataFrame)
            yield from _typed_part(frame, config, ingested_at, columns, several).to_arrow().to_batches()

    return run


def _quarantine(
    session: SparkSession, raw: DataFrame, rejected: DataFrame, spec: dict[str, Any], ingested_at: str,
    header: list[str], order: list[str], several: bool,
) -> pl.DataFrame:
    """The rejected rows with `_line`, `_reason` and their text, in line order (the Polars engine's file)."""
    import polars as pl
    from pyspark.sql import types as T

    del session
    text = raw.select(*[column(c) for c in [*header, *order]])
    rows = text.join(rejected, order, "inner")
    out = [LINE, REASON, *header, *([FILE] if several else [])]
    kinds = {f.name: f.dataType for f in raw.schema.fields}  # text, but an S3 snapshot's `_object_line` is a number
    schema = T.StructType([
        T.StructField(c, T.LongType() if c == LINE else kinds.get(c, T.StringType())) for c in out
    ])
    safe, names = positional(rows)
    found = safe.mapInArrow(_explaining(spec, ingested_at, out, several, names), schema).toArrow()
    frame = pl.from_arrow(found)
    assert isinstance(frame, pl.DataFrame)
    return frame.sort(order)


def _explaining(spec: dict[str, Any], ingested_at: str, out: list[str], several: bool,
                names: list[str]) -> Callable[..., Any]:
    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import polars as pl

        config = Config.model_validate(spec)
        for batch in batches:
            frame = pl.from_arrow(batch.rename_columns(names))
            assert isinstance(frame, pl.DataFrame)
            groups = frame.partition_by(FILE, maintain_order=True) if several else [frame]
            for group in groups:
                rejected = group.select(LINE, _DUP)
                text = group.drop(_DUP, *([FILE] if several else []))
                why = _reasons(rejected, text.lazy(), config, ingested_at)
                if several:
                    why = why.with_columns(pl.lit(group[FILE][0], dtype=pl.String).alias(FILE))
                yield from why.select(out).to_arrow().to_batches()

    return run
