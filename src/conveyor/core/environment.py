"""Values the project file names by environment variable (connection strings, URIs), and how to
show a URI without its secret.

`conveyor.yaml` never holds a credential: `stores:` names the variable (`dsn_env: CONVEYOR_PG_DSN`),
and the value is read here, at run time, every time it is needed. A URI is only ever shown,
logged or recorded through `redact`, which drops the user, password and query.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit, urlunsplit

from conveyor.core.errors import ConfigError

__all__ = ["from_env", "redact", "sqlalchemy_url"]


def from_env(name: str, key: str, example: str) -> str:
    """The value of the environment variable `name`, which the project key `key` names.

    An unset or empty variable is one line naming both, with an example of what to export.
    """
    value = os.environ.get(name, "").strip()
    if not value:
        raise ConfigError(f"{key}: the environment variable {name} is not set; export {name}={example}")
    return value


def redact(uri: str) -> str:
    """`uri` without user, password, query or fragment: safe to show, log or record."""
    parts = urlsplit(uri)
    if not parts.scheme or not parts.netloc:
        return parts.scheme + ":" if parts.scheme else "(a value)"
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def sqlalchemy_url(dsn: str, driver: str = "psycopg") -> str:
    """A libpq URI (`postgresql://...` or `postgres://...`) as SQLAlchemy's `postgresql+psycopg://...`."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if dsn.startswith(prefix):
            return f"postgresql+{driver}://" + dsn[len(prefix):]
    raise ConfigError(
        f"a PostgreSQL connection string must start with postgresql:// (got {redact(dsn)!r}); "
        "fix the environment variable the project file names"
    )
