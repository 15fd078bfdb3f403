"""A Feast online store on SQLite that keeps one row per entity.

Feast's own `SqliteOnlineStore` keeps one row per (entity, feature): 1M entities with 15
features are 15M rows, each bound and upserted from Python, which takes minutes. This store
implements Feast's `OnlineStore` interface (so `get_online_features`, `materialize` and
`write_to_online_store` work through it unchanged) with one row per entity key: the key as
Feast serialises it, the event and created times, then one typed SQLite column per feature
(`v0`, `v1`, ... in the order of the view's fields; the names are never SQL text). Values are
stored natively (REAL, INTEGER, TEXT) and turned back into Feast `Value` protos on read.

`write_frame` is the bulk path the features stage uses: a Polars frame of latest rows goes in
with one `executemany` per chunk, no proto per value.

In `feature_store.yaml`:

    online_store:
      type: conveyor.stages.features.sqlite_store.SqliteRowOnlineStore
      path: data/online_store.db
"""

from __future__ import annotations

import sqlite3
import struct
import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from feast import Entity
from feast.feature_view import FeatureView
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.infra.online_stores.helpers import compute_table_id
from feast.infra.online_stores.online_store import OnlineStore
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.repo_config import FeastConfigBaseModel, RepoConfig
from feast.value_type import ValueType
from pydantic import StrictStr

from conveyor.stages.features._repo import ROW_STORE_TYPE

__all__ = ["STORE_TYPE", "SqliteRowOnlineStore", "SqliteRowOnlineStoreConfig"]

STORE_TYPE = ROW_STORE_TYPE

_FIELD_BY_TYPE = {
    ValueType.DOUBLE: "double_val",
    ValueType.FLOAT: "float_val",
    ValueType.INT64: "int64_val",
    ValueType.INT32: "int32_val",
    ValueType.STRING: "string_val",
    ValueType.BOOL: "bool_val",
    ValueType.BYTES: "bytes_val",
    ValueType.UNIX_TIMESTAMP: "unix_timestamp_val",
}
"""Scalar Feast types stored natively; any other type is stored as its serialised proto."""

_CHUNK_ROWS = 100_000
_INT64 = struct.Struct("<q")
_U32 = struct.Struct("<I")
_META = "conveyor_online_columns"


class SqliteRowOnlineStoreConfig(FeastConfigBaseModel):
    """`online_store:` of a repo that uses `SqliteRowOnlineStore`."""

    type: Literal["conveyor.stages.features.sqlite_store.SqliteRowOnlineStore"] = (
        "conveyor.stages.features.sqlite_store.SqliteRowOnlineStore"
    )
    path: StrictStr = "data/online_store.db"
    """The SQLite file, relative to the repo folder unless absolute."""


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class _Layout:
    """How one view's features sit in its table: the value column and proto field of each."""

    def __init__(self, view: FeatureView) -> None:
        self.names = [f.name for f in view.features]
        self.fields: list[str | None] = [_FIELD_BY_TYPE.get(f.dtype.to_value_type()) for f in view.features]
        self.position = {name: i for i, name in enumerate(self.names)}

    def columns(self) -> list[str]:
        return [f"v{i}" for i in range(len(self.names))]

    def to_sql(self, values: dict[str, ValueProto]) -> list[Any]:
        out: list[Any] = [None] * len(self.names)
        for name, value in values.items():
            i = self.position.get(name)
            if i is None:
                continue
            field = self.fields[i]
            which = value.WhichOneof("val")
            if which is None or which == "null_val":
                continue
            out[i] = getattr(value, which) if field is not None else value.SerializeToString()
        return out

    def to_proto(self, i: int, raw: Any) -> ValueProto:
        if raw is None:
            return ValueProto()
        field = self.fields[i]
        if field is None:
            value = ValueProto()
            value.ParseFromString(raw)
            return value
        if field == "bool_val":
            raw = bool(raw)
        return ValueProto(**{field: raw})


class SqliteRowOnlineStore(OnlineStore):
    """Feast online store: SQLite, one row per entity key, one typed column per feature."""

    def __init__(self) -> None:
        self._conn: sqlite3.Connection | None = None
        self._path: str | None = None
        self._lock = threading.Lock()
        self._checked: set[tuple[str, tuple[str, ...]]] = set()

    # -- connection and layout ------------------------------------------------------------
    @staticmethod
    def db_path(config: RepoConfig) -> str:
        path = Path(config.online_store.path)
        if config.repo_path and not path.is_absolute():
            path = Path(config.repo_path) / path
        return str(path)

    def _connect(self, config: RepoConfig) -> sqlite3.Connection:
        path = self.db_path(config)
        with self._lock:
            if self._conn is None or self._path != path:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                # the default rollback journal, not WAL: the features stage moves the file in whole
                self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
                self._conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {_META} (tbl TEXT NOT NULL, position INTEGER NOT NULL, "
                    "feature TEXT NOT NULL, PRIMARY KEY (tbl, position))"
                )
                self._path = path
                self._checked.clear()
            return self._conn

    @staticmethod
    def _table(config: RepoConfig, view: FeatureView) -> str:
        return compute_table_id(config.project, view, config.registry.enable_online_feature_view_versioning)

    def _stored_features(self, conn: sqlite3.Connection, table: str) -> list[str] | None:
        rows = conn.execute(f"SELECT feature FROM {_META} WHERE tbl = ? ORDER BY position", (table,)).fetchall()
        exists = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).fetchone()
        return [r[0] for r in rows] if exists else None

    def _create(self, conn: sqlite3.Connection, table: str, layout: _Layout) -> None:
        values = "".join(f", {c}" for c in layout.columns())
        conn.execute("BEGIN")
        try:
            conn.execute(f"DROP TABLE IF EXISTS {_quote(table)}")
            conn.execute(
                f"CREATE TABLE {_quote(table)} (entity_key BLOB PRIMARY KEY, event_ts INTEGER, created_ts INTEGER"
                f"{values})"
            )
            conn.execute(f"DELETE FROM {_META} WHERE tbl = ?", (table,))
            conn.executemany(
                f"INSERT INTO {_META} (tbl, position, feature) VALUES (?, ?, ?)",
                [(table, i, name) for i, name in enumerate(layout.names)],
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _ready(self, config: RepoConfig, view: FeatureView, *, create: bool) -> tuple[sqlite3.Connection, str, _Layout, bool]:
        """The view's table, checked against its fields once; made (or remade) when `create`.

        The last value is False when the table does not exist yet (reads then find no row).
        """
        conn = self._connect(config)
        table = self._table(config, view)
        layout = _Layout(view)
        key = (table, tuple(layout.names))
        if key not in self._checked:
            stored = self._stored_features(conn, table)
            if stored != layout.names:
                if not create:
                    if stored is None:
                        return conn, table, layout, False
                    raise ValueError(
                        f"online table {table} holds features {stored}, the view asks for {layout.names}: "
                        "apply the feature view again"
                    )
                self._create(conn, table, layout)
            self._checked.add(key)
        return conn, table, layout, True

    # -- Feast's interface ----------------------------------------------------------------
    def online_write_batch(
        self,
        config: RepoConfig,
        table: FeatureView,
        data: list[tuple[EntityKeyProto, dict[str, ValueProto], datetime, datetime | None]],
        progress: Callable[[int], Any] | None,
    ) -> None:
        version = config.entity_key_serialization_version
        conn, name, layout, _ = self._ready(config, table, create=True)
        rows = []
        for entity_key, values, event_ts, created_ts in data:
            rows.append(
                (serialize_entity_key(entity_key, entity_key_serialization_version=version),
                 _micros(event_ts), _micros(created_ts) if created_ts else None, *layout.to_sql(values))
            )
        self._write(conn, name, layout, rows)
        if progress:
            progress(len(data))

    def _write(self, conn: sqlite3.Connection, table: str, layout: _Layout, rows: Iterable[Sequence[Any]]) -> None:
        names = ", ".join(["entity_key", "event_ts", "created_ts", *layout.columns()])
        marks = ", ".join("?" * (3 + len(layout.names)))
        with self._lock:
            conn.execute("BEGIN")
            try:
                conn.executemany(f"INSERT OR REPLACE INTO {_quote(table)} ({names}) VALUES ({marks})", rows)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def online_read(
        self,
        config: RepoConfig,
        table: FeatureView,
        entity_keys: list[EntityKeyProto],
        requested_features: list[str] | None = None,
    ) -> list[tuple[datetime | None, dict[str, ValueProto] | None]]:
        conn, name, layout, exists = self._ready(config, table, create=False)
        version = config.entity_key_serialization_version
        keys = [serialize_entity_key(k, entity_key_serialization_version=version) for k in entity_keys]
        wanted = [f for f in (requested_features or layout.names) if f in layout.position]
        positions = [layout.position[f] for f in wanted]
        columns = "".join(f", v{i}" for i in positions)
        found: dict[bytes, tuple[Any, ...]] = {}
        if exists:
            for start in range(0, len(keys), 500):  # SQLite's bound-parameter limit
                part = keys[start:start + 500]
                marks = ",".join("?" * len(part))
                for row in conn.execute(
                    f"SELECT entity_key, event_ts{columns} FROM {_quote(name)} WHERE entity_key IN ({marks})", part
                ):
                    found[row[0]] = row
        result: list[tuple[datetime | None, dict[str, ValueProto] | None]] = []
        for key in keys:
            row = found.get(key)
            if row is None:
                result.append((None, None))
                continue
            values = {f: layout.to_proto(i, row[2 + j]) for j, (f, i) in enumerate(zip(wanted, positions, strict=True))}
            result.append((datetime.fromtimestamp(row[1] / 1e6, UTC), values))
        return result

    def update(
        self,
        config: RepoConfig,
        tables_to_delete: Sequence[FeatureView],
        tables_to_keep: Sequence[FeatureView],
        entities_to_delete: Sequence[Entity],
        entities_to_keep: Sequence[Entity],
        partial: bool,
    ) -> None:
        for view in tables_to_keep:
            self._ready(config, view, create=True)
        conn = self._connect(config)
        for view in tables_to_delete:
            table = self._table(config, view)
            conn.execute(f"DROP TABLE IF EXISTS {_quote(table)}")
            conn.execute(f"DELETE FROM {_META} WHERE tbl = ?", (table,))
            self._checked = {c for c in self._checked if c[0] != table}

    def teardown(self, config: RepoConfig, tables: Sequence[FeatureView], entities: Sequence[Entity]) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            self._checked.clear()
        Path(self.db_path(config)).unlink(missing_ok=True)

    # -- bulk ------------------------------------------------------------------------------
    def write_frame(self, config: RepoConfig, view: FeatureView, frame: Any, join_key: str, event_column: str) -> int:
        """Write a Polars frame (one row per entity: `join_key`, the view's features, `event_column`).

        Returns the rows written. Keys are serialised as Feast serialises a one-column entity key.
        """
        import polars as pl

        conn, table, layout, _ = self._ready(config, view, create=True)
        created = _micros(datetime.now(UTC))
        micros = frame.get_column(event_column).dt.epoch("us")  # naive times are UTC
        key_type = next(f.dtype.to_value_type() for f in view.entity_columns if f.name == join_key)
        serialise = _key_serialiser(join_key, key_type)
        # rows in key order: SQLite appends to its primary-key B-tree instead of seeking a page
        # per row (1M entities in random key order: 40 s; sorted: a few seconds)
        keys = pl.Series("__key", [serialise(k) for k in frame.get_column(join_key).to_list()], dtype=pl.Binary)
        frame = frame.with_columns(keys, micros.alias("__ts")).sort("__key")
        written = 0
        for start in range(0, frame.height, _CHUNK_ROWS):
            part = frame.slice(start, _CHUNK_ROWS)
            columns = []
            for name, field in zip(layout.names, layout.fields, strict=True):
                series = part.get_column(name) if name in part.columns else pl.Series([None] * part.height)
                if field is None:
                    raise ValueError(f"feature {name} of view {view.name}: only scalar types can be bulk written")
                if series.dtype.is_float():
                    series = series.fill_nan(None)
                elif isinstance(series.dtype, pl.Datetime):
                    series = series.dt.epoch("s")  # Feast's unix_timestamp_val: whole seconds
                columns.append(series.to_list())
            rows = zip(part.get_column("__key").to_list(), part.get_column("__ts").to_list(),
                       [created] * part.height, *columns, strict=True)
            self._write(conn, table, layout, rows)
            written += part.height
        return written


def _micros(when: datetime) -> int:
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp()) * 1_000_000 + when.microsecond


def _key_serialiser(join_key: str, key_type: ValueType) -> Callable[[Any], bytes]:
    """Feast's serialisation (version 3) of a one-column entity key, without a proto per key."""
    name = join_key.encode("utf8")
    head = _U32.pack(1) + _U32.pack(ValueType.STRING.value) + _U32.pack(len(name)) + name
    if key_type == ValueType.INT64:
        prefix = head + _U32.pack(ValueType.INT64.value) + _U32.pack(8)
        pack = _INT64.pack
        return lambda value: prefix + pack(value)
    if key_type != ValueType.STRING:
        raise ValueError(f"entity key {join_key}: bulk writes take INT64 or STRING keys, not {key_type.name}")
    text = head + _U32.pack(ValueType.STRING.value)

    def string(value: Any) -> bytes:
        data = str(value).encode("utf8")
        return text + _U32.pack(len(data)) + data

    return string
