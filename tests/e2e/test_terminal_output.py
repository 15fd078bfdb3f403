"""The CLI's tables: one line per row when the output is not a terminal, the terminal's width on one."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest
from rich.cells import cell_len

from tests.conftest import conveyor

STAGES = ("ingest", "prepare", "eda", "features", "dataset", "train", "promote")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A small trained project, and what its first `conveyor run` printed to a pipe."""
    folder = tmp_path_factory.mktemp("terminal")
    rows = [f"2024-{1 + i // 28 % 12:02d}-{1 + i % 28:02d} 10:00:00,shop number {i % 5},{i % 13 / 4},"
            f"{i % 13 + 3 * (i % 5) + i * 37 % 11 / 5:.2f}" for i in range(300)]  # learnable, no single-column leak
    (folder / "data.csv").write_text("when,shop,x,y\n" + "\n".join(rows) + "\n", encoding="utf-8")
    conveyor("init", "--csv", "data.csv", "--target", "y", cwd=folder)
    return folder, conveyor("run", "--no-search", cwd=folder).stdout


def _rows(output: str) -> list[str]:
    """The body lines of the tables (rich's default box draws them with │)."""
    return [line for line in output.splitlines() if line.startswith("│")]


def test_the_run_table_keeps_each_stage_on_one_line_in_a_pipe(project: tuple[Path, str]) -> None:
    _, output = project
    rows = _rows(output)
    assert [row.split("│")[1].strip() for row in rows] == list(STAGES), output  # no continuation line
    train = next(row for row in rows if row.split("│")[1].strip() == "train")
    assert "lightgbm" in train and "time 240/60" in train  # the long summary, whole, on the stage's line
    assert max(cell_len(line) for line in output.splitlines()) > 80  # not wrapped to 80 columns


def test_the_models_table_keeps_each_version_on_one_line_in_a_pipe(project: tuple[Path, str]) -> None:
    folder, _ = project
    output = conveyor("models", cwd=folder).stdout
    rows = _rows(output.split("@champion history")[0])
    assert rows, output
    assert all(re.match(r"│ \d+ +│", row) for row in rows), output  # each line starts a version: none wrapped
    assert all(row.rstrip().endswith("│") and row.count("│") == 8 for row in rows), output


def _in_terminal(args: list[str], cwd: Path, columns: int) -> str:
    """The CLI's output on a pseudo-terminal `columns` wide, without its escape sequences."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    env = {**os.environ, "COLUMNS": str(columns), "TERM": "xterm-256color"}
    process = subprocess.Popen([sys.executable, "-m", "conveyor", *args], cwd=cwd, env=env,
                               stdin=subprocess.DEVNULL, stdout=slave, stderr=slave)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 1 << 16)
        except OSError:  # EIO: the process closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    assert process.wait(timeout=600) == 0, b"".join(chunks).decode(errors="replace")
    os.close(master)
    text = b"".join(chunks).decode("utf-8", errors="replace")
    return re.sub(r"\x1b(\[[0-9;?]*[A-Za-z]|\][^\x07]*\x07)", "", text).replace("\r", "")


@pytest.mark.parametrize("command", ["run", "models"])
def test_tables_fit_a_terminal_60_columns_wide(project: tuple[Path, str], command: str) -> None:
    folder, _ = project
    output = _in_terminal([command, "--no-search"] if command == "run" else [command], folder, 60)
    lines = [line for line in output.splitlines() if line.strip()]
    assert any(line.startswith("│") for line in lines), output
    assert max(cell_len(line) for line in lines) <= 60, output


def test_the_search_shows_its_trials_on_a_terminal_only(project: tuple[Path, str]) -> None:
    folder, _ = project
    on_terminal = _in_terminal(["train", "--force"], folder, 100)
    trials = re.findall(r"lightgbm search .* (\d+)/(\d+)", on_terminal)
    assert trials and trials[-1][0] == trials[-1][1] == "4", on_terminal  # the default search.trials, done
    piped = conveyor("train", "--force", cwd=folder)
    bar = re.compile(r"search [━╸╺]+ \d+/\d+")
    assert bar.search(on_terminal) and not bar.search(piped.stdout + piped.stderr)  # a bar on a terminal only
