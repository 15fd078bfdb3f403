"""The `features` stage's tables and online rows on Apache Spark (`engine: spark`).

The same files as the Polars engine (`data/source.parquet`, one `data/by_<entity>.parquet` per
entity, the online store), computed by Spark from the clean rows (one Parquet file or a folder of
parts). The online store is written from Spark's output in bounded batches: Spark writes the
latest row per entity as a folder of parts, and the driver reads it back `BATCH_ROWS` rows at a
time, each batch written before the next is read, so the driver's memory is bounded by the batch
size, not by the number of entities. Both Conveyor online stores (SQLite rows, Redis) take these
batches; any other Feast store goes through Feast's own write path, batch by batch.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from conveyor.core.config import EVENT_TIMESTAMP, Config
from conveyor.core.errors import FeatureStoreError
from conveyor.stages.features._aggregates import EntityPlan
from conveyor.stages.features._names import EntityNames, FieldNames
from conveyor.stages.features._online import OnlineWrite, write_frames
from conveyor.stages.features._repo import key_is_integer
from conveyor.stages.features._spark import (
    BATCH_ROWS,
    ORDER,
    clean_frame,
    entity_table_spark,
    latest_per_key,
    newest,
    online_as_of,
    parquet_batches,
    single_file,
    spark_for,
    write_parts,
)
from conveyor.stages.spark import column

__all__ = ["SparkBuild"]


class SparkBuild:
    """`_build._PolarsBuild` on Spark: the same files, tables and online rows."""

    def __init__(
        self, config: Config, clean: Path, layout: list[tuple[EntityPlan, EntityNames]], batch_rows: int | None = None
    ) -> None:
        self.config, self.clean, self.layout = config, clean, layout
        self.batch_rows = batch_rows or BATCH_ROWS
        self.session = spark_for(config)
        self.tables: dict[str, Any] = {}
        self._scratch: list[Path] = []

    def write_source(self, fields: FieldNames, out: Path) -> int:
        """The Feast source (key, event time, features under Feast names), in file order."""
        from pyspark.sql import functions as F

        frame = clean_frame(self.session, self.clean, [fields.key, EVENT_TIMESTAMP, *fields.features])
        key_type = "long" if key_is_integer(self.config) else "string"
        source = frame.orderBy(ORDER).select(
            column(fields.key).cast(key_type).alias(fields.to_feast[fields.key]),
            F.col(EVENT_TIMESTAMP),
            *[column(name).alias(fields.to_feast[name]) for name in fields.features],
        )
        self._source = out
        return single_file(source, out)

    def write_tables(self, repo: Path) -> tuple[dict[str, int], datetime]:
        """Each entity's feature table (Feast names, sorted by entity then time), and the newest event time."""
        from pyspark import StorageLevel

        if not self.layout:
            return {}, datetime.min
        wanted = [EVENT_TIMESTAMP, *dict.fromkeys(c for plan, _ in self.layout for c in (plan.entity, *plan.columns))]
        events = clean_frame(self.session, self.clean, wanted).persist(StorageLevel.DISK_ONLY)
        try:
            _, as_of = newest(events)
            if as_of is None:
                raise FeatureStoreError(f"{self.clean} has no row with an event time: no entity features to compute")
            rows: dict[str, int] = {}
            for plan, names in self.layout:
                table = entity_table_spark(events, plan)
                out = repo / names.path
                renamed = table.orderBy(column(plan.entity), column(EVENT_TIMESTAMP)).toDF(
                    *[names.join_key if c == plan.entity else names.to_feast.get(c, c) for c in table.columns]
                )
                rows[plan.entity] = single_file(renamed, out)
                self.tables[plan.entity] = (out, names)
        finally:
            events.unpersist()
        return rows, as_of

    def write_online(self, store: Any, view: Any, key: str, generation: str | None) -> OnlineWrite:
        """The latest row of every key of the source (Feast names), in batches."""
        import pyarrow.parquet as pq

        columns = pq.read_schema(self._source).names
        source = clean_frame(self.session, self._source, columns)  # with its file order
        start, end = newest(source)
        if start is None or end is None:
            raise FeatureStoreError(f"{self.clean} has no row with an event time: nothing to put online")
        latest = latest_per_key(source, key).drop(ORDER)
        return self._write(store, view, latest, start, end, generation)

    def write_entity_online(
        self, store: Any, view: Any, plan: EntityPlan, names: EntityNames, start: datetime, as_of: datetime,
        generation: str | None,
    ) -> OnlineWrite:
        path, _ = self.tables[plan.entity]
        table = self.session.read.parquet(path.resolve().as_uri()).withColumnRenamed(names.join_key, plan.entity)
        latest = online_as_of(table, plan, as_of).withColumnRenamed(plan.entity, names.join_key)
        return self._write(store, view, latest, start, as_of, generation)

    def _write(self, store: Any, view: Any, latest: Any, start: datetime, end: datetime,
               generation: str | None) -> OnlineWrite:
        folder = write_parts(latest, Path(store.repo_path) / "data" / f".online_{view.name}.parts")
        try:
            return write_frames(store, view, _frames(folder, self.batch_rows), start, end, generation=generation)
        finally:
            shutil.rmtree(folder, ignore_errors=True)


def _frames(folder: Path, batch_rows: int) -> Iterator[Any]:
    import polars as pl

    for batch in parquet_batches(folder, batch_rows):
        frame = pl.from_arrow(batch)
        assert isinstance(frame, pl.DataFrame)
        yield frame
