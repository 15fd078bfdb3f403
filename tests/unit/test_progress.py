"""Progress reports: stages tell, the CLI listens and draws (on a terminal only)."""

from __future__ import annotations

from rich.console import Console

from conveyor.cli._output import FittingConsole, progress_line
from conveyor.core.progress import listening, report


def test_reports_reach_the_listener_only_inside_the_block_and_never_break_the_work() -> None:
    heard: list[tuple[str, int, int | None]] = []
    report("before", 1, 2)
    with listening(lambda what, done, total: heard.append((what, done, total))):
        report("lightgbm search", 3, 30)
        with listening(lambda *_: 1 / 0):  # a broken bar
            report("online store: v", 10, 20)
        report("lightgbm search", 4, 30)
    report("after", 1, 2)
    assert heard == [("lightgbm search", 3, 30), ("lightgbm search", 4, 30)]


def test_the_progress_line_shows_a_bar_and_the_count() -> None:
    console = Console(width=80, record=True, color_system=None)
    console.print(progress_line("lightgbm search", 12, 30))
    text = console.export_text()
    assert "lightgbm search" in text and "12/30" in text and "━" in text


def test_a_table_is_as_wide_as_its_widest_row_when_not_on_a_terminal() -> None:
    from rich.table import Table

    table = Table()
    table.add_column("stage")
    table.add_column("result")
    table.add_row("train", "x" * 150)
    console = FittingConsole(width=80, record=True, force_terminal=False)
    console.print(table)
    lines = console.export_text().splitlines()
    assert len(lines) == 5 and all(len(line) == 162 for line in lines)  # one line per row, nothing wrapped
    assert console.width == 80  # widened for the table only
    terminal = FittingConsole(width=60, record=True, force_terminal=True)
    terminal.print(table)
    assert max(len(line) for line in terminal.export_text().splitlines()) <= 60


def test_progress_is_shown_on_a_terminal_only() -> None:
    import io

    from conveyor.cli._output import showing_progress
    from conveyor.core import progress

    piped = FittingConsole(file=io.StringIO(), force_terminal=False)
    with showing_progress(piped, "reading"):
        assert progress._listener is None  # nothing listens: the reports cost a call
        report("prediction log: days read", 1, 3)
    assert piped.file.getvalue() == ""  # type: ignore[attr-defined]
    screen = io.StringIO()
    terminal = FittingConsole(file=screen, force_terminal=True, width=100)
    with showing_progress(terminal, "reading"):
        assert progress._listener is not None
        report("prediction log: days read", 2, 3)
    assert progress._listener is None
