"""Locks that serialise the writers of a project's state, on one machine or across machines.

Two mechanisms, one shape (`hold(target, command)` is a context manager):

- `FileLock`: `fcntl.flock` on a file that is never removed. The kernel releases the lock when
  the holder's process ends, however it ends, so a lock is never stale. The holder writes a
  record (pid, host, user, command, since) into the file, for whoever waits, and blanks it on
  release.
- `PostgresLock`: a session-level `pg_advisory_lock` on a 64-bit key derived from a name. The
  server releases it when the holder's connection ends. The holder's record goes to a small
  table, `conveyor_locks`, read back joined with `pg_locks`, so only the live holder's record
  is ever shown; without that table (no CREATE privilege) the holder's `application_name`
  from `pg_stat_activity` is shown instead.

A second taker says once who holds the lock (`on_wait`, a line on stderr by default) and then
waits on the lock itself, with no polling; with `wait=False` it raises `LockError` with that
line. Locks are re-entrant within a process: code that holds one may call code that takes it.
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import json
import os
import socket
import sys
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from conveyor.core.errors import ConfigError, LockError

__all__ = ["FileLock", "Holder", "PostgresLock", "command_line", "hold", "lock_key"]

_RECORD_SIZE = 1024
"""The holder record is written in one `pwrite` of this many bytes (JSON padded with spaces)."""

_held: dict[str, int] = {}
"""The locks this process holds, by identity, with their depth (re-entrance)."""


@dataclass(frozen=True)
class Holder:
    """Who holds a lock: enough for a person to find the process."""

    pid: int
    host: str
    user: str
    command: str
    since: str
    """ISO 8601, UTC."""

    @classmethod
    def me(cls, command: str) -> Holder:
        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = "unknown"
        return cls(os.getpid(), socket.gethostname(), user, command[:200],
                   datetime.now(UTC).isoformat(timespec="seconds"))

    def describe(self) -> str:
        """`` `conveyor run` (pid 123, user@host) since 02:41:07 ``, in local time."""
        return f"`{self.command}` (pid {self.pid}, {self.user}@{self.host}) since {_clock(self.since)}"


def _clock(iso: str) -> str:
    try:
        when = datetime.fromisoformat(iso).astimezone()
    except ValueError:
        return iso
    today = datetime.now().astimezone().date()
    return when.strftime("%H:%M:%S" if when.date() == today else "%Y-%m-%d %H:%M:%S")


def command_line() -> str:
    """This process's command line, as a person typed it (`conveyor promote -C proj`)."""
    argv = sys.argv or ["?"]
    first = Path(argv[0]).name
    program = "conveyor" if first in ("conveyor", "__main__.py") else first
    return " ".join([program, *argv[1:]])[:200]


def _stderr(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


@dataclass(frozen=True)
class FileLock:
    """A lock file on this machine (`.conveyor/lock`, or one next to a SQLite registry)."""

    path: Path
    what: str = "project lock"

    @property
    def identity(self) -> str:
        return f"file:{self.path.resolve()}"


@dataclass(frozen=True)
class PostgresLock:
    """A PostgreSQL advisory lock on `lock_key(name)`, in the database `$dsn_env` names."""

    dsn_env: str
    name: str
    what: str = "project lock"
    source: str = "stores.lock"
    """The config key that named `dsn_env`, for error messages."""

    @property
    def identity(self) -> str:
        return f"postgres:{self.dsn_env}:{lock_key(self.name)}"


def lock_key(name: str) -> int:
    """A signed 64-bit advisory-lock key from a name (`conveyor project bike-sharing`)."""
    return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "big", signed=True)


@contextlib.contextmanager
def hold(
    target: FileLock | PostgresLock,
    command: str | None = None,
    *,
    wait: bool = True,
    on_wait: Callable[[str], None] | None = None,
) -> Iterator[None]:
    """Hold `target` for the block: at once if it is free (or this process already holds it),
    else after one `on_wait` line, when its holder releases it (`wait=False`: `LockError`)."""
    key = target.identity
    if _held.get(key):
        _held[key] += 1
        try:
            yield
        finally:
            _held[key] -= 1
        return
    me = Holder.me(command or command_line())
    say = on_wait or _stderr
    release = (_take_file(target, me, wait, say) if isinstance(target, FileLock)
               else _take_postgres(target, me, wait, say))
    _held[key] = 1
    try:
        yield
    finally:
        _held.pop(key, None)
        release()


def _busy(what: str, holder: str, wait: bool, say: Callable[[str], None]) -> None:
    if not wait:
        raise LockError(f"the {what} is held by {holder}; run again when it is released, "
                        "or without --no-wait to wait for it")
    say(f"waiting for the {what}: held by {holder}")


# --- lock file -------------------------------------------------------------------------------


def _take_file(target: FileLock, me: Holder, wait: bool, say: Callable[[str], None]) -> Callable[[], None]:
    import fcntl

    target.path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(target.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _busy(target.what, _file_holder(fd), wait, say)
            fcntl.flock(fd, fcntl.LOCK_EX)  # the kernel wakes us when the holder releases or dies
        os.pwrite(fd, json.dumps(asdict(me)).encode("utf-8").ljust(_RECORD_SIZE), 0)
    except BaseException:
        os.close(fd)
        raise

    def release() -> None:
        try:
            os.pwrite(fd, b" " * _RECORD_SIZE, 0)
        finally:
            os.close(fd)  # closing the last descriptor releases the flock

    return release


def _file_holder(fd: int) -> str:
    """The holder's record, or a plain description when it has none yet (it just took the lock)."""
    try:
        record = Holder(**json.loads(os.pread(fd, _RECORD_SIZE, 0).decode("utf-8").strip()))
    except (ValueError, TypeError, UnicodeDecodeError):
        return "another process (its record is not written yet)"
    if record.host == socket.gethostname() and not _alive(record.pid):
        return "another process (the last record names a process that has ended)"
    return record.describe()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --- PostgreSQL advisory lock ------------------------------------------------------------------

_TABLE = """
CREATE TABLE IF NOT EXISTS conveyor_locks (
    key bigint PRIMARY KEY,
    name text NOT NULL,
    backend_pid integer NOT NULL,
    pid integer NOT NULL,
    host text NOT NULL,
    user_name text NOT NULL,
    command text NOT NULL,
    since timestamptz NOT NULL
)"""
_SETUP_KEY = lock_key("conveyor_locks table")

_HOLDER = """
SELECT h.pid, h.host, h.user_name, h.command, h.since, l.pid, a.application_name, a.backend_start
FROM pg_locks l
LEFT JOIN {table} h ON h.key = %(key)s AND h.backend_pid = l.pid
LEFT JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
  AND l.classid::bigint = %(hi)s AND l.objid::bigint = %(lo)s
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""


def _take_postgres(target: PostgresLock, me: Holder, wait: bool, say: Callable[[str], None]) -> Callable[[], None]:
    import psycopg

    dsn = os.environ.get(target.dsn_env)
    if not dsn:
        raise ConfigError(f"{target.source}.dsn_env names {target.dsn_env}, which is not set: export "
                          f"{target.dsn_env}=postgresql://user:password@host:5432/db for the {target.what}")
    key = lock_key(target.name)
    try:
        conn = psycopg.connect(
            dsn, autocommit=True, connect_timeout=10, application_name=f"{me.command} pid {me.pid}"[:63],
            keepalives=1, keepalives_idle=30, keepalives_interval=10, keepalives_count=3,
        )
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise LockError(f"cannot reach the PostgreSQL database ${target.dsn_env} ({target.source}) for the "
                        f"{target.what}: {first}") from None
    try:
        for setting in ("SET lock_timeout = 0", "SET statement_timeout = 0", "SET idle_session_timeout = 0"):
            with contextlib.suppress(psycopg.Error):  # idle_session_timeout: PostgreSQL 14+
                conn.execute(setting)  # a waiting or holding session is never cut off
        recorded = _ensure_table(conn)
        if not _one(conn, "SELECT pg_try_advisory_lock(%s)", (key,)):
            _busy(target.what, _postgres_holder(conn, key, recorded), wait, say)
            conn.execute("SELECT pg_advisory_lock(%s)", (key,))  # the server wakes us on release
        if recorded:
            conn.execute(
                "INSERT INTO conveyor_locks (key, name, backend_pid, pid, host, user_name, command, since) "
                "VALUES (%s, %s, pg_backend_pid(), %s, %s, %s, %s, %s) ON CONFLICT (key) DO UPDATE SET "
                "name = EXCLUDED.name, backend_pid = EXCLUDED.backend_pid, pid = EXCLUDED.pid, host = EXCLUDED.host, "
                "user_name = EXCLUDED.user_name, command = EXCLUDED.command, since = EXCLUDED.since",
                (key, target.name, me.pid, me.host, me.user, me.command, me.since),
            )
    except BaseException:
        conn.close()
        raise

    def release() -> None:
        try:
            if recorded:
                conn.execute("DELETE FROM conveyor_locks WHERE key = %s AND backend_pid = pg_backend_pid()", (key,))
            conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
        except psycopg.Error:
            pass  # the connection is gone: so is the lock
        finally:
            conn.close()

    return release


def _one(conn: Any, query: str, params: tuple[Any, ...] = ()) -> Any:
    row = conn.execute(query, params).fetchone()
    return None if row is None else row[0]


def _ensure_table(conn: Any) -> bool:
    """The holder table exists (created once, under a lock of its own); False: it cannot be."""
    import psycopg

    if _one(conn, "SELECT to_regclass('conveyor_locks')") is not None:
        return True
    try:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SETUP_KEY,))
            conn.execute(_TABLE)
    except psycopg.errors.InsufficientPrivilege:
        return False
    return True


def _postgres_holder(conn: Any, key: int, recorded: bool) -> str:
    from psycopg import sql

    unsigned = key & 0xFFFFFFFFFFFFFFFF
    table = sql.Identifier("conveyor_locks") if recorded else sql.SQL("(SELECT NULL::bigint AS key, NULL::integer AS "
        "backend_pid, NULL::integer AS pid, NULL AS host, NULL AS user_name, NULL AS command, NULL::timestamptz AS since)")
    row = conn.execute(sql.SQL(_HOLDER).format(table=table),
                       {"key": key, "hi": unsigned >> 32, "lo": unsigned & 0xFFFFFFFF}).fetchone()
    if row is None:
        return "another session (it has just released the lock)"
    pid, host, user, command, since, backend, application, started = row
    if pid is not None:
        return Holder(pid, host, user, command, since.isoformat()).describe()
    when = f" since {_clock(started.isoformat())}" if started is not None else ""
    return f"`{application or 'a PostgreSQL session'}` (PostgreSQL backend {backend}){when}"
