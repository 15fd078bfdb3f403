"""Terminal output that fits: tables as wide as the terminal on a terminal, and as wide as their
content elsewhere (a pipe, a log file, CI), so that each row stays on one line."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console

__all__ = ["FittingConsole", "progress_line", "showing_progress"]

_WIDEST = 100_000
"""The widest a table is measured at when not on a terminal: each cell on one line."""


class FittingConsole(Console):
    """A rich Console whose tables are never wrapped to 80 columns when the output is not a terminal.

    On a terminal, rich fits a table into the terminal's width (`COLUMNS` when set). Elsewhere the
    console is widened, for one table, to the table's natural width: the widest row, unwrapped.
    """

    def print(self, *objects: Any, **kwargs: Any) -> None:  # noqa: A003 - rich's own name
        need = self._natural_width(objects) if not self.is_terminal else 0
        if need <= self.width:
            super().print(*objects, **kwargs)
            return
        saved = self.width
        self.width = need
        try:
            super().print(*objects, **kwargs)
        finally:
            self.width = saved

    def _natural_width(self, objects: tuple[Any, ...]) -> int:
        from rich.measure import Measurement
        from rich.table import Table

        tables = [o for o in objects if isinstance(o, Table)]
        if not tables:
            return 0
        options = self.options.update_width(_WIDEST)
        return max(Measurement.get(self, options, table).maximum for table in tables)


def progress_line(what: str, done: int, total: int | None) -> Any:
    """A status line with a bar: `lightgbm search  ━━━━━━━━╸━━━━━━  12/30`."""
    from rich.progress_bar import ProgressBar
    from rich.table import Table

    line = Table.grid(padding=(0, 1))
    line.add_row(f"[bold]{what}[/]", ProgressBar(total=float(total) if total else None, completed=done, width=30),
                 f"{done}/{total}" if total else str(done))
    return line


@contextmanager
def showing_progress(console: Console, text: str) -> Iterator[None]:
    """On a terminal: a spinner with `text`, then a bar for what the work inside reports. Elsewhere nothing."""
    if not console.is_terminal:
        yield
        return
    from conveyor.core.progress import listening

    with console.status(text) as status, listening(lambda what, done, total: status.update(
            progress_line(what, done, total))):
        yield
