"""The project lock: one writer of a project's state at a time.

`conveyor run` and every command that writes project state (each stage command, `labels add`,
`build`) holds it for its whole run. The lock lives in `.conveyor/lock` (this machine), or, when
`stores.lock` (else `stores.registry`) names a PostgreSQL database, in a PostgreSQL advisory
lock keyed by the project name, so the same project on two machines serialises too.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

from conveyor.core.config import Config
from conveyor.core.locking import FileLock, PostgresLock, hold
from conveyor.core.workspace import Workspace

__all__ = ["project_lock", "project_lock_target"]


def project_lock_target(config: Config, workspace: Workspace) -> FileLock | PostgresLock:
    """Where this project's lock lives."""
    stores = config.stores
    store, source = (stores.lock, "stores.lock") if stores.lock is not None else (stores.registry, "stores.registry")
    if store is not None:
        return PostgresLock(store.dsn_env, f"conveyor project {config.name}", "project lock", source)
    return FileLock(workspace.state / "lock", "project lock")


def project_lock(
    config: Config, workspace: Workspace, command: str, *, wait: bool = True,
    on_wait: Callable[[str], None] | None = None,
) -> AbstractContextManager[None]:
    """Hold the project lock for a block; a second taker waits (saying who holds it) or, with
    `wait=False`, gets a `LockError` naming the holder."""
    return hold(project_lock_target(config, workspace), command, wait=wait, on_wait=on_wait)
