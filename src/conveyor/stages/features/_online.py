"""Filling the online store in bulk: what `FeatureStore.materialize` writes, without its prints.

`materialize(start, end)` writes, per entity, the feature values of its latest row with an event
time in the window. Over the whole data that is the latest row per entity key; this module takes
it with Polars and writes it to the store, then records the interval in the registry as
materialize does (`apply_materialization`, which also marks the view servable).

- Conveyor's row store (`sqlite_store.SqliteRowOnlineStore`, the default) takes the frame in
  bulk: one SQLite row per entity, no proto per value.
- Conveyor's Redis store (`redis_store.RedisRowOnlineStore`, with `stores.online`) takes it in
  bulk too, into a new generation that `publish_online` then serves (the old one is unlinked).
- Any other Feast store goes through Feast's own online-write path (`write_to_online_store`, the
  same conversion to protos and the same `online_write_batch` that materialize ends in), in
  bounded chunks.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from conveyor.core.config import EVENT_TIMESTAMP, Config
from conveyor.core.progress import report
from conveyor.stages.features._repo import ONLINE_STORE, REDIS_STORE_TYPE, ROW_STORE_TYPE

__all__ = [
    "CHUNK_ROWS",
    "OnlineWrite",
    "latest_rows",
    "online_files",
    "publish_online",
    "served_generation",
    "write_frame",
    "write_frames",
    "write_online",
]

CHUNK_ROWS = 20_000
"""Entities per write: bounds the memory of the pandas frame and the protos Feast makes of it."""


@dataclass(frozen=True)
class OnlineWrite:
    entities: int
    """Entity keys written (one row each: its latest)."""
    skipped: int
    """Entities not written because a whole chunk held no feature value (Feast refuses those)."""
    start: datetime
    end: datetime
    """Event times of the data written: `end` is how fresh the online values are."""


def latest_rows(source: Path, key: str) -> Any:
    """The latest row per entity key (by event time; on a tie, the later row in the file)."""
    import polars as pl

    return (
        pl.scan_parquet(source)
        .sort([key, EVENT_TIMESTAMP], maintain_order=True)
        .unique(subset=[key], keep="last", maintain_order=True)
        .collect()
    )


def online_files(config: Config) -> tuple[str, ...]:
    """The files of `feature_repo/` the online store keeps (none on Redis)."""
    return () if config.stores.online is not None else (ONLINE_STORE,)


def publish_online(store: Any, generation: str | None) -> None:
    """Serve the generation a build wrote (Redis; nothing to do for a file store)."""
    if generation is not None:
        from conveyor.stages.features.redis_store import RedisRowOnlineStore

        RedisRowOnlineStore().publish(store.config, generation)


def served_generation(store_config: Any) -> str | None:
    """The Redis generation being served (None: nothing published)."""
    from conveyor.stages.features.redis_store import RedisRowOnlineStore

    return RedisRowOnlineStore().generation(store_config)


def write_online(
    store: Any, view: Any, source: Path, key: str, chunk_rows: int = CHUNK_ROWS, generation: str | None = None
) -> OnlineWrite:
    """Write the latest row of every entity of `source` (Feast field names) to the online store."""
    import polars as pl

    events = pl.scan_parquet(source).select(
        pl.col(EVENT_TIMESTAMP).min().alias("start"), pl.col(EVENT_TIMESTAMP).max().alias("end")
    ).collect()
    start, end = events["start"][0], events["end"][0]
    return write_frame(store, view, latest_rows(source, key), start, end, chunk_rows, generation)


def write_frame(
    store: Any, view: Any, latest: Any, start: datetime, end: datetime, chunk_rows: int = CHUNK_ROWS,
    generation: str | None = None,
) -> OnlineWrite:
    """Write one row per entity (`latest`, Feast field names) to the online store; record `[start, end]`.

    On Redis the rows go into `generation` (served once `publish_online` switches to it).
    """
    return write_frames(store, view, [latest], start, end, chunk_rows, generation, total=latest.height)


def write_frames(
    store: Any, view: Any, frames: Iterable[Any], start: datetime, end: datetime, chunk_rows: int = CHUNK_ROWS,
    generation: str | None = None, total: int | None = None,
) -> OnlineWrite:
    """`write_frame` for rows that come in batches (Polars frames, one row per entity, no entity in
    two batches): each batch is written before the next is read, so memory is bounded by a batch.
    The interval is recorded once, after the last batch."""
    import polars as pl

    kind = store.config.online_store.type
    if kind in (REDIS_STORE_TYPE, ROW_STORE_TYPE):
        applied = store.get_feature_view(view.name)  # as applied: its entity columns are inferred
        if len(applied.entity_columns) != 1:
            raise ValueError(f"view {view.name}: the bulk write takes one entity column")
        join_key = applied.entity_columns[0].name
        written = 0
        if kind == REDIS_STORE_TYPE:
            from conveyor.stages.features.redis_store import RedisRowOnlineStore

            redis_store = RedisRowOnlineStore()
            # not part of a build: an upsert into the generation being served
            into = generation if generation is not None else redis_store.ensure_generation(store.config)
            for frame in frames:
                written += redis_store.write_frame(store.config, applied, frame, join_key, EVENT_TIMESTAMP, into)
        else:
            from conveyor.stages.features.sqlite_store import SqliteRowOnlineStore

            sqlite_store = SqliteRowOnlineStore()
            report(f"online store: {view.name}", 0, total)
            for frame in frames:
                written += sqlite_store.write_frame(store.config, applied, frame, join_key, EVENT_TIMESTAMP)
                report(f"online store: {view.name}", written, total)
        store.registry.apply_materialization(view, store.project, start, end)
        return OnlineWrite(entities=written, skipped=0, start=start, end=end)
    features = [f.name for f in view.features]
    empty = pl.all_horizontal([pl.col(name).is_null() for name in features]) if features else pl.lit(True)
    skipped = done = 0
    for latest in frames:
        for offset in range(0, latest.height, chunk_rows):
            chunk = latest.slice(offset, chunk_rows)
            done += chunk.height
            if chunk.select(empty.all()).item():
                skipped += chunk.height  # write_to_online_store would warn and write nothing
                continue
            # Arrow-backed pandas columns: Feast converts them back to Arrow with their exact types
            # (a nullable Int64 stays Int64, as materialize reads it from Parquet, not float64).
            store.write_to_online_store(view.name, df=chunk.to_pandas(use_pyarrow_extension_array=True))
            report(f"online store: {view.name}", done, total)
    store.registry.apply_materialization(view, store.project, start, end)
    return OnlineWrite(entities=done - skipped, skipped=skipped, start=start, end=end)
