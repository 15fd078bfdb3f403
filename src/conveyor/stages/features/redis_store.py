"""A Feast online store on Redis that keeps one JSON value per entity, in one hash per view.

Feast's own `RedisOnlineStore` keeps one Redis hash per entity key, with one field per feature
holding a serialised `Value` proto, and reads them back through `get_online_features`, which
turns every value into a proto and out again. This store implements Feast's `OnlineStore`
interface (so `get_online_features`, `materialize` and `write_to_online_store` work through
it), with a layout that a reader can use without Feast:

    <prefix>:generation           the generation being served (a short id)
    <prefix>:g:<gen>:<table>      a hash per feature view: entity key (as text) -> JSON object
                                  {"": event time in microseconds, "<field>": value, ...}
    <prefix>:keys                 a set of every hash this prefix ever wrote
    <prefix>:sequence             the counter generation ids are drawn from (`INCR`)

`<prefix>` is `conveyor:<project>` by default: two projects share one Redis without touching
each other's keys. `<table>` is Feast's table id (`<project>_<view>`).

A rebuild writes a new generation next to the served one, then switches the pointer (one SET,
never back to an older generation) and unlinks every older generation's hash: no stale key is
left, no reader sees a half-written generation, and two builds at once (two machines) cannot
serve the older one or delete the newer one while it is written. A read is one Lua call (pointer and `HMGET`s in one round trip, so it
never mixes two generations). `RedisRows` is that read without Feast: what serving uses.

`write_frame` is the bulk path the features stage uses: a Polars frame of latest rows, its
values encoded to JSON by Polars (no proto per value), written with pipelined `HSET`s in
bounded batches.

The Redis URL is read from the environment variable `url_env` names when the store connects;
it is never written to `feature_store.yaml`.

In `feature_store.yaml`:

    online_store:
      type: conveyor.stages.features.redis_store.RedisRowOnlineStore
      url_env: REDIS_URL
      key_prefix: conveyor:bike
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from feast import Entity
from feast.feature_view import FeatureView
from feast.infra.online_stores.helpers import compute_table_id
from feast.infra.online_stores.online_store import OnlineStore
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.repo_config import FeastConfigBaseModel, RepoConfig
from feast.value_type import ValueType
from pydantic import StrictStr

from conveyor.core.errors import FeatureStoreError
from conveyor.stages.features._redis_rows import CONNECT_TIMEOUT_S as CONNECT_TIMEOUT_S
from conveyor.stages.features._redis_rows import READ_TIMEOUT_S as READ_TIMEOUT_S
from conveyor.stages.features._redis_rows import RedisRows, _keys, _sequence, next_generation, redis_client, unavailable
from conveyor.stages.features._redis_rows import redis_url as redis_url
from conveyor.stages.features._redis_rows import redis_where as redis_where
from conveyor.stages.features._repo import REDIS_STORE_TYPE

__all__ = [
    "REDIS_STORE_TYPE",
    "RedisRowOnlineStore",
    "RedisRowOnlineStoreConfig",
    "RedisRows",
    "next_generation",
    "redis_client",
]

_FIELD_BY_TYPE = {
    ValueType.DOUBLE: "double_val",
    ValueType.FLOAT: "float_val",
    ValueType.INT64: "int64_val",
    ValueType.INT32: "int32_val",
    ValueType.STRING: "string_val",
    ValueType.BOOL: "bool_val",
    ValueType.UNIX_TIMESTAMP: "unix_timestamp_val",
}
"""The scalar Feast types this store holds (as JSON values)."""

_BATCH_ROWS = 20_000
"""Entities per pipelined batch of `HSET`s: bounds the memory of one write."""
_HSET_FIELDS = 5_000
"""Fields per `HSET` command inside a batch."""
_PUBLISH = """
local current = redis.call('GET', KEYS[1])
local number = tonumber(current or '')
if number and number > tonumber(ARGV[1]) then return current end
redis.call('SET', KEYS[1], ARGV[1])
return false
"""
"""Serve generation ARGV[1] unless a newer one is served (then return that one)."""


class RedisRowOnlineStoreConfig(FeastConfigBaseModel):
    """`online_store:` of a repo that uses `RedisRowOnlineStore`."""

    type: Literal["conveyor.stages.features.redis_store.RedisRowOnlineStore"] = (
        "conveyor.stages.features.redis_store.RedisRowOnlineStore"
    )
    url_env: StrictStr = "REDIS_URL"
    """The environment variable holding `redis://[:password@]host:port/db`; never the URL itself."""
    key_prefix: StrictStr
    """Every key of the project starts with this and a colon (`conveyor:<project>`)."""


def _older(generation: str, than: str) -> bool:
    """Generation ids are numbers; anything else in the prefix is stale."""
    try:
        return int(generation) < int(than)
    except ValueError:
        return True


def key_text(value: Any) -> str:
    """An entity key as a hash field: the text of an integer or the string itself."""
    return value if isinstance(value, str) else str(value)


def _proto_key(entity_key: EntityKeyProto) -> str:
    if len(entity_key.entity_values) != 1:
        raise ValueError("the Redis row store takes entity keys of one column")
    value = entity_key.entity_values[0]
    which = value.WhichOneof("val")
    return key_text(getattr(value, which)) if which else ""


def _from_proto(value: ValueProto) -> Any:
    which = value.WhichOneof("val")
    if which is None or which == "null_val":
        return None
    raw = getattr(value, which)
    if which in ("double_val", "float_val") and raw != raw:  # NaN is missing, as a bulk write stores it
        return None
    return raw


class RedisRowOnlineStore(OnlineStore):
    """Feast online store: Redis, one JSON value per entity in one hash per view and generation."""

    def __init__(self) -> None:
        self._client: Any = None
        self._lock = threading.Lock()

    # -- connection ----------------------------------------------------------------------
    def client(self, config: RepoConfig) -> Any:
        with self._lock:
            if self._client is None:
                self._client = redis_client(config.online_store.url_env)
            return self._client

    @staticmethod
    def table(config: RepoConfig, view: FeatureView) -> str:
        return compute_table_id(config.project, view, config.registry.enable_online_feature_view_versioning)

    def _guard(self, config: RepoConfig, call: Callable[[Any], Any]) -> Any:
        import redis

        try:
            return call(self.client(config))
        except redis.exceptions.RedisError as exc:
            raise unavailable(config.online_store.url_env, exc) from exc

    def generation(self, config: RepoConfig) -> str | None:
        """The generation being served, or None when nothing is published."""
        pointer, _, _ = _keys(config.online_store.key_prefix)
        value = self._guard(config, lambda c: c.get(pointer))
        return value.decode() if value is not None else None

    def _hash(self, config: RepoConfig, generation: str, table: str) -> str:
        _, base, _ = _keys(config.online_store.key_prefix)
        return f"{base}{generation}:{table}"

    # -- generations -----------------------------------------------------------------------
    def publish(self, config: RepoConfig, generation: str) -> int:
        """Serve `generation`: switch the pointer, then unlink every older generation's hash.

        Returns the hashes removed. The switch is atomic (one script): a reader sees the old
        generation or the new one whole. A newer generation already served (a build started
        later, on another machine, finished first) is never replaced by an older one: that is
        an error, and this build's hashes go with the next publish. Newer generations still
        being written are left alone.
        """
        pointer, base, registry = _keys(config.online_store.key_prefix)

        def switch(client: Any) -> int:
            newer = client.eval(_PUBLISH, 1, pointer, generation)
            if newer:
                raise FeatureStoreError(
                    f"the online store in Redis (prefix {config.online_store.key_prefix!r}) already serves a newer "
                    f"build (generation {newer.decode()}, this one {generation}); it was built while this one "
                    "ran: nothing to do, or run again"
                )
            stale = [k for k in client.smembers(registry)
                     if _older(k.decode()[len(base):].split(":", 1)[0], generation)]
            if stale:
                pipe = client.pipeline(transaction=False)
                pipe.unlink(*stale)
                pipe.srem(registry, *stale)
                pipe.execute()
            return len(stale)

        return int(self._guard(config, switch))

    def ensure_generation(self, config: RepoConfig) -> str:
        """The served generation, made (empty, published) when there is none: for Feast's writes."""
        pointer, _, _ = _keys(config.online_store.key_prefix)
        fresh = next_generation(config.online_store.url_env, config.online_store.key_prefix)
        self._guard(config, lambda c: c.set(pointer, fresh, nx=True))
        current = self.generation(config)
        assert current is not None
        return current

    # -- Feast's interface ----------------------------------------------------------------
    def online_write_batch(
        self,
        config: RepoConfig,
        table: FeatureView,
        data: list[tuple[EntityKeyProto, dict[str, ValueProto], datetime, datetime | None]],
        progress: Callable[[int], Any] | None,
    ) -> None:
        """Upsert rows into the served generation (Feast's `materialize`, `write_to_online_store`)."""
        generation = self.ensure_generation(config)
        names = [f.name for f in table.features]
        mapping = {}
        for entity_key, values, event_ts, _ in data:
            row: dict[str, Any] = {"": _micros(event_ts)}
            for name in names:
                row[name] = _from_proto(values[name]) if name in values else None
            mapping[_proto_key(entity_key)] = json.dumps(row, allow_nan=False)
        self._write(config, self._hash(config, generation, self.table(config, table)), mapping.items())
        if progress:
            progress(len(data))

    def _write(self, config: RepoConfig, key: str, items: Any) -> None:
        _, _, registry = _keys(config.online_store.key_prefix)

        def write(client: Any) -> None:
            pipe = client.pipeline(transaction=False)
            pipe.sadd(registry, key)
            batch: dict[Any, Any] = {}
            for field, value in items:
                batch[field] = value
                if len(batch) >= _HSET_FIELDS:
                    pipe.hset(key, mapping=batch)
                    batch = {}
            if batch:
                pipe.hset(key, mapping=batch)
            pipe.execute()

        self._guard(config, write)

    def online_read(
        self,
        config: RepoConfig,
        table: FeatureView,
        entity_keys: list[EntityKeyProto],
        requested_features: list[str] | None = None,
    ) -> list[tuple[datetime | None, dict[str, ValueProto] | None]]:
        generation = self.generation(config)
        if generation is None:
            return [(None, None)] * len(entity_keys)
        key = self._hash(config, generation, self.table(config, table))
        fields = [_proto_key(k) for k in entity_keys]
        values = self._guard(config, lambda c: c.hmget(key, fields)) if fields else []
        types = {f.name: _FIELD_BY_TYPE.get(f.dtype.to_value_type()) for f in table.features}
        wanted = [f for f in (requested_features or list(types)) if f in types]
        result: list[tuple[datetime | None, dict[str, ValueProto] | None]] = []
        for raw in values:
            if raw is None:
                result.append((None, None))
                continue
            row = json.loads(raw)
            protos = {}
            for name in wanted:
                value, field = row.get(name), types[name]
                if value is None or field is None:
                    protos[name] = ValueProto()
                else:
                    kwargs: dict[str, Any] = {field: bool(value) if field == "bool_val" else value}
                    protos[name] = ValueProto(**kwargs)
            result.append((datetime.fromtimestamp(row[""] / 1e6, UTC), protos))
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
        generation = self.generation(config)
        if generation is None or not tables_to_delete:
            return
        _, _, registry = _keys(config.online_store.key_prefix)
        gone = [self._hash(config, generation, self.table(config, view)) for view in tables_to_delete]

        def drop(client: Any) -> None:
            client.unlink(*gone)
            client.srem(registry, *gone)

        self._guard(config, drop)

    def teardown(self, config: RepoConfig, tables: Sequence[FeatureView], entities: Sequence[Entity]) -> None:
        """Remove every key of the prefix: every generation, the pointer, the set."""
        pointer, _, registry = _keys(config.online_store.key_prefix)

        def drop(client: Any) -> None:
            held = list(client.smembers(registry))
            client.unlink(pointer, registry, _sequence(config.online_store.key_prefix), *held)

        self._guard(config, drop)

    # -- bulk ------------------------------------------------------------------------------
    def write_frame(
        self, config: RepoConfig, view: FeatureView, frame: Any, join_key: str, event_column: str, generation: str
    ) -> int:
        """Write a Polars frame (one row per entity: `join_key`, the view's features, `event_column`)
        into `generation` (unpublished until `publish`). Returns the rows written."""
        import polars as pl

        names = [f.name for f in view.features]
        unsupported = [f.name for f in view.features if f.dtype.to_value_type() not in _FIELD_BY_TYPE]
        if unsupported:
            raise ValueError(f"features {unsupported} of view {view.name}: only scalar types can be bulk written")
        columns = [pl.col(event_column).dt.epoch("us").alias("")]
        for name in names:
            if name not in frame.columns:
                columns.append(pl.lit(None).alias(name))
                continue
            dtype = frame.schema[name]
            if isinstance(dtype, pl.Datetime):
                columns.append(pl.col(name).dt.epoch("s"))  # Feast's unix_timestamp_val: whole seconds
            elif dtype.is_float():
                columns.append(pl.col(name).fill_nan(None))
            else:
                columns.append(pl.col(name))
        encoded = frame.select(
            pl.col(join_key).cast(pl.String).alias("key"),
            pl.struct(columns).struct.json_encode().alias("value"),
        )
        key = self._hash(config, generation, self.table(config, view))
        for start in range(0, encoded.height, _BATCH_ROWS):
            part = encoded.slice(start, _BATCH_ROWS)
            self._write(config, key, zip(part.get_column("key").to_list(), part.get_column("value").to_list(),
                                         strict=True))
        return int(encoded.height)


def _micros(when: datetime) -> int:
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp()) * 1_000_000 + when.microsecond
