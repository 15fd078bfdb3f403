"""Progress of long work (search trials, the online-store write), told to whoever listens.

A stage calls `report(what, done, total)`; the CLI listens (`listening`) and draws a bar on a
terminal only. Without a listener a report costs one function call; stages never draw anything.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["Listener", "listening", "report"]

Listener = Callable[[str, int, "int | None"], None]
"""Called with (what, done, total): `done` steps of `total` (None: not known) of the work `what`."""

_listener: Listener | None = None


@contextmanager
def listening(listener: Listener) -> Iterator[None]:
    """Send the reports made inside the block to `listener` (from any thread)."""
    global _listener
    previous, _listener = _listener, listener
    try:
        yield
    finally:
        _listener = previous


def report(what: str, done: int, total: int | None = None) -> None:
    """`done` of `total` steps of `what` are done; a listener's failure never stops the work."""
    listener = _listener
    if listener is not None:
        try:
            listener(what, done, total)
        except Exception:  # noqa: BLE001 - a progress bar must not break a run
            pass
