"""Redis for the online store: the connection (URL from the environment, timeouts, a clear error when
it is down), the generation counter, and `RedisRows`, the reads of serving.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from conveyor.core.errors import FeatureStoreError, ServiceUnavailable

_READ_KEYS = 4_000
"""Keys per read call (Lua's `unpack` takes at most about 8,000 values)."""

CONNECT_TIMEOUT_S = 1.0
READ_TIMEOUT_S = 1.0
"""A down or stuck Redis fails a request within these, never holding a server thread longer (a
100-entity read takes milliseconds, tens on a loaded machine)."""

_READ = """
local gen = redis.call('GET', KEYS[1])
if not gen then return false end
local out = {gen}
local i = 2
local base = KEYS[2] .. gen .. ':'
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  if n > 0 then
    local got = redis.call('HMGET', base .. ARGV[i - 1], unpack(ARGV, i + 1, i + n))
    for j = 1, n do out[#out + 1] = got[j] end
  end
  i = i + n + 2
end
return out
"""
"""ARGV: table, n, key1..keyn, table, n, ... (the first table at ARGV[1]). Returns the
generation then one value (or nil) per key, in order; false when nothing is published."""


def redis_where(url: str) -> str:
    """`host:port` of a Redis URL, without user or password (for messages)."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return parts.path
    return f"{parts.hostname or 'localhost'}:{parts.port or 6379}"


def redis_url(url_env: str) -> str:
    url = os.environ.get(url_env, "")
    if not url:
        raise FeatureStoreError(
            f"stores.online: the environment variable {url_env} is not set; export it as "
            "redis://[:password@]host:port/db (the Redis the project's online store lives in)"
        )
    return url


def redis_client(url_env: str) -> Any:
    """A client on the Redis `url_env` names: short timeouts, one quick retry on a connection
    error (a connection from before a Redis restart fails once, then a new one is made), none
    after a timeout (a stuck Redis is not waited for twice), no backoff."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis.Redis.from_url(
        redis_url(url_env),
        socket_connect_timeout=CONNECT_TIMEOUT_S,
        socket_timeout=READ_TIMEOUT_S,
        retry=Retry(NoBackoff(), 1, supported_errors=(redis.exceptions.ConnectionError,)),
        health_check_interval=0,
    )


def unavailable(url_env: str, exc: Exception) -> ServiceUnavailable:
    """The one line a request gets when Redis is down: what, where, and the cause."""
    import redis

    where = redis_where(os.environ.get(url_env, ""))
    text = str(exc)
    if isinstance(exc, redis.exceptions.TimeoutError):
        why = f"did not answer within {READ_TIMEOUT_S:g} s"
    elif "refused" in text.lower():
        why = "refused the connection"
    elif isinstance(exc, redis.exceptions.AuthenticationError):
        why = f"refused the credentials in {url_env}"
    elif isinstance(exc, redis.exceptions.ConnectionError):
        why = f"dropped the connection ({text.splitlines()[0] if text else type(exc).__name__})"
    else:
        why = f"failed: {type(exc).__name__}: {text.splitlines()[0] if text else ''}"
    return ServiceUnavailable("redis", f"online store unavailable: Redis at {where} {why}")


def next_generation(url_env: str, key_prefix: str) -> str:
    """A fresh generation id: the next number of the project's counter in Redis (`INCR`), so ids
    are ordered the same on every machine, whatever its clock."""
    import redis

    client = redis_client(url_env)
    try:
        return str(client.incr(_sequence(key_prefix)))
    except redis.exceptions.RedisError as exc:
        raise unavailable(url_env, exc) from exc
    finally:
        client.close()


def _sequence(prefix: str) -> str:
    return f"{prefix}:sequence"


def _keys(prefix: str) -> tuple[str, str, str]:
    """The pointer, the hashes' common start, and the set of every hash written."""
    return f"{prefix}:generation", f"{prefix}:g:", f"{prefix}:keys"


class RedisRows:
    """Rows by entity key straight from the layout, without Feast: one round trip per call.

    `read` returns, per key, the decoded JSON object (`""` holds the event time in
    microseconds) or None. A Redis error becomes `ServiceUnavailable` with one line; the next
    call connects again (a restarted Redis is picked up without a restart of the caller).
    """

    def __init__(self, url_env: str, key_prefix: str) -> None:
        self._url_env = url_env
        self._pointer, self._base, _ = _keys(key_prefix)
        self._prefix = key_prefix
        self._client = redis_client(url_env)
        self._script = self._client.register_script(_READ)

    def read(self, requests: Sequence[tuple[str, Sequence[str]]]) -> list[list[dict[str, Any] | None]]:
        """For each (table, keys): one decoded row or None per key, in order."""
        import redis

        out: list[list[dict[str, Any] | None]] = []
        pending: list[tuple[str, Sequence[str]]] = []
        size = 0
        for table, keys in requests:
            for start in range(0, max(len(keys), 1), _READ_KEYS):
                part = keys[start:start + _READ_KEYS]
                if size + len(part) > _READ_KEYS and pending:
                    out.extend(self._call(pending, redis))
                    pending, size = [], 0
                pending.append((table, part))
                size += len(part)
        if pending:
            out.extend(self._call(pending, redis))
        # join the chunks of one table back together
        merged: list[list[dict[str, Any] | None]] = []
        i = 0
        for _, keys in requests:
            rows: list[dict[str, Any] | None] = []
            for _ in range(max(1, -(-len(keys) // _READ_KEYS))):
                rows.extend(out[i])
                i += 1
            merged.append(rows)
        return merged

    def _call(self, pending: list[tuple[str, Sequence[str]]], redis: Any) -> list[list[dict[str, Any] | None]]:
        args: list[Any] = []
        for table, keys in pending:
            args += [table, len(keys), *keys]
        try:
            found = self._script(keys=[self._pointer, self._base], args=args)
        except redis.exceptions.RedisError as exc:
            raise unavailable(self._url_env, exc) from exc
        if not found:  # a Redis restarted empty, or flushed: nothing to serve until a build
            where = redis_where(os.environ.get(self._url_env, ""))
            raise ServiceUnavailable(
                "redis", f"online store unavailable: Redis at {where} holds no features under {self._prefix!r}; "
                "run `conveyor run --from features`"
            )
        loads = json.loads
        result = []
        at = 1
        for _, keys in pending:
            values = found[at:at + len(keys)]
            at += len(keys)
            result.append([None if v is None else loads(v) for v in values])
        return result

    def ping(self) -> str | None:
        """None when Redis answers; else the one-line reason."""
        import redis

        try:
            self._client.ping()
        except redis.exceptions.RedisError as exc:
            return str(unavailable(self._url_env, exc))
        return None

    def published(self) -> bool:
        import redis

        try:
            return bool(self._client.exists(self._pointer))
        except redis.exceptions.RedisError as exc:
            raise unavailable(self._url_env, exc) from exc

    def close(self) -> None:
        self._client.close()
