"""A PostgreSQL table or read-only query, read with `COPY ... TO STDOUT (FORMAT csv)`.

Why COPY to CSV and the CSV snapshot path: the server formats every row in C, psycopg hands
the bytes on in blocks without making a Python object per value, and the CSV reader's byte
pass and Polars parse them on both cores, so 1M rows cost about the same as reading the
CSV file they came from (benchmarks/sources.py measures it against `pandas.read_sql` and
`polars.read_database`). Values stay the server's text (`0.24`, `2011-01-01 00:00:00`) as
CSV values do; prepare types them. The session is pinned (UTC, ISO dates, shortest exact
floats) so the same rows give the same bytes, and the bytes' SHA-256 is the snapshot's identity.

A table has no cheap, reliable change counter (statistics lag and can be reset; deletes
leave no trace in `xmin`), so the cache key is computed by reading and hashing the rows:
an unchanged table costs one COPY and no stage after ingest runs. The read is kept for
ingest (`data/raw/.pending/`), so a changed table is read once per run, not twice.

Names (table, schema, the watermark column) are only ever `psycopg.sql.Identifier`; a query
runs in a READ ONLY transaction; the watermark is a bound parameter (COPY takes none on the
server, so psycopg binds it client-side as an escaped literal, typed by the server as the
column's type). The connection string is read from the environment variable `dsn_env`
names and is never written anywhere: error messages have it (and its password) removed.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.core.config import SourceConfig
from conveyor.core.errors import ConfigError, DataError

if TYPE_CHECKING:
    import psycopg
    from psycopg import sql

__all__ = ["PgCopy", "copy_rows", "describe", "dsn", "split_name"]

_SESSION = {"TimeZone": "UTC", "DateStyle": "ISO, YMD", "IntervalStyle": "iso_8601", "extra_float_digits": "1",
            "bytea_output": "hex", "client_encoding": "UTF8"}
"""Settings that decide how values are written as text: fixed, so the same rows give the same bytes."""


@dataclass(frozen=True)
class PgCopy:
    """What one COPY read: the CSV file, its SHA-256, its rows and (incremental) the new maximum."""

    path: Path
    sha256: str
    rows: int
    watermark: str | None


def dsn(source: SourceConfig) -> str:
    """The connection string from the environment; one line naming the variable when it is unset."""
    var = source.dsn_env
    value = os.environ.get(var or "")
    if not value:
        raise ConfigError(
            f"source.dsn_env: the environment variable {var} is not set; export it with the connection "
            "string (postgresql://user:password@host:port/db), it is never written in conveyor.yaml"
        )
    return value


def describe(source: SourceConfig) -> str:
    """The source as records and messages name it: never the connection string."""
    if source.table is not None:
        return f"postgres table {'.'.join(split_name(source.table))} (${source.dsn_env})"
    return f"postgres query (${source.dsn_env})"


def split_name(text: str) -> tuple[str, ...]:
    """`schema.table` into its exact names: a dot inside double quotes is part of a name, `""` is a quote."""
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    i = 0
    while i < len(text):
        char = text[i]
        if char == '"':
            if quoted and text[i + 1 : i + 2] == '"':
                current.append('"')
                i += 1
            else:
                quoted = not quoted
        elif char == "." and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
        i += 1
    parts.append("".join(current))
    if quoted or len(parts) > 2 or any(not p for p in parts):
        raise ConfigError(
            f"source.table: {text!r} is not `table` or `schema.table` (double-quote a name that holds a dot or a quote)"
        )
    return tuple(parts)


def _scrub(message: str, secret: str) -> str:
    """A driver message with the connection string and its password removed."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        password = str(conninfo_to_dict(secret).get("password") or "")
    except Exception:  # noqa: BLE001 - an unparsable string: scrub the whole of it only
        password = ""
    for value in (secret, password):
        if value:
            message = message.replace(value, "***")
    return " ".join(message.split())


def _connect(source: SourceConfig) -> psycopg.Connection[Any]:
    import psycopg

    secret = dsn(source)
    try:
        conn = psycopg.connect(secret, connect_timeout=10)
    except psycopg.ProgrammingError:
        raise DataError(
            f"source.dsn_env: ${source.dsn_env} is not a PostgreSQL connection string "
            "(postgresql://user:password@host:port/db or key=value pairs)"
        ) from None
    except psycopg.Error as exc:
        raise DataError(f"{describe(source)}: cannot connect: {_scrub(str(exc), secret)}") from None
    return conn


def _relation(source: SourceConfig, *, escape: bool) -> sql.Composable:
    """What the rows come from: the table by its quoted names, or the query as a subquery
    (`escape`: the statement goes with parameters, so a `%` of the query is written `%%`)."""
    from psycopg import sql

    if source.table is not None:
        return sql.SQL(".").join(sql.Identifier(part) for part in split_name(source.table))
    query = (source.query or "").strip().rstrip(";")
    query = query.replace("%", "%%") if escape else query
    return sql.SQL("({}) AS conveyor_query").format(sql.SQL(query))


def _select(source: SourceConfig, after: str | None) -> tuple[sql.Composable, tuple[str] | None]:
    """The SELECT and its parameters (None: none, so psycopg leaves a `%` of the query alone)."""
    from psycopg import sql

    select = sql.SQL("SELECT * FROM {}").format(_relation(source, escape=after is not None))
    if source.incremental is None:
        return select, None
    column = sql.Identifier(source.incremental.column)
    if after is None:
        return sql.SQL("{} ORDER BY {} NULLS FIRST").format(select, column), None
    return sql.SQL("{} WHERE {} > %s ORDER BY {}").format(select, column, column), (after,)


def copy_rows(source: SourceConfig, out: Path, *, after: str | None = None) -> PgCopy:
    """COPY the source's rows (with `after`: only those whose watermark column is above it) to the
    CSV file `out`, hashing the bytes as they arrive; with `source.incremental`, also the maximum."""
    import psycopg
    from psycopg import sql

    secret = dsn(source)
    where = describe(source)
    digest = hashlib.sha256()
    select, params = _select(source, after)
    with _connect(source) as conn:
        conn.read_only = True
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ  # the COPY and the maximum: one snapshot
        try:
            with conn.cursor() as cur:
                for name, value in _SESSION.items():
                    cur.execute("SELECT set_config(%s, %s, true)", (name, value))
                statement = sql.SQL("COPY ({}) TO STDOUT WITH (FORMAT csv, HEADER)").format(select)
                with out.open("wb") as handle, cur.copy(statement, params) as copy:
                    for block in copy:
                        digest.update(block)
                        handle.write(block)
                rows = max(cur.rowcount, 0)
                watermark = None
                if source.incremental is not None:
                    column = sql.Identifier(source.incremental.column)
                    maximum = sql.SQL("SELECT max({})::text FROM ({}) AS conveyor_rows").format(column, select)
                    found = cur.execute(maximum, params).fetchone()
                    watermark = None if found is None or found[0] is None else str(found[0])
        except psycopg.errors.ReadOnlySqlTransaction:
            raise DataError(f"{where}: source.query must only read (it ran in a READ ONLY transaction)") from None
        except psycopg.errors.UndefinedTable:
            raise DataError(f"{where}: no such table; check source.table (exact names, `schema.table`)") from None
        except psycopg.errors.UndefinedColumn as exc:
            raise DataError(f"{where}: {_scrub(str(exc).splitlines()[0], secret)} (source.incremental.column?)") from None
        except psycopg.Error as exc:
            raise DataError(f"{where}: {_scrub(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, secret)}") from None
    return PgCopy(out, digest.hexdigest(), rows, watermark if watermark is not None else after)
