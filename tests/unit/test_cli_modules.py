"""The command line's shape: one module per command group, `main.py` assembling them, every
module small, and commands that read a project through `conveyor.Project` (no stage import)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import bike_rows, make_bike_project

CLI = Path(__file__).resolve().parents[2] / "src" / "conveyor" / "cli"

COMMANDS = {  # `conveyor --help`'s order: the commands, then the groups
    "init": "_init", "run": "_run", "ingest": "_run", "prepare": "_run", "eda": "_run", "dataset": "_run",
    "train": "_run", "promote": "_run", "lineage": "_inspect", "serve": "_serve", "doctor": "_inspect",
    "ui": "_inspect", "build": "_serve", "monitor": "_monitor", "alerts": "_monitor",
    "feature-views": "_features", "features": "_features", "models": "_models", "schedule": "_schedule",
    "labels": "_monitor",
}


def test_each_command_comes_from_its_group_module() -> None:
    from typer.main import get_command

    from conveyor.cli import app

    group = get_command(app)
    listed = group.list_commands(None)  # type: ignore[arg-type]
    assert listed == list(COMMANDS)
    for name, module in COMMANDS.items():
        command = group.commands[name]
        callbacks = [command.callback, *(c.callback for c in getattr(command, "commands", {}).values())]
        found = {c.__module__ for c in callbacks if c is not None}
        assert found == {f"conveyor.cli.{module}"}, (name, found)


def test_every_cli_module_is_small_and_imports_no_stage() -> None:
    for path in sorted(CLI.glob("*.py")):
        text = path.read_text(encoding="utf-8")
        assert len(text.splitlines()) < 500, path.name
        for node in ast.walk(ast.parse(text)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n.startswith("conveyor.stages") for n in names), (path.name, names)


def test_main_only_assembles_the_app() -> None:
    """main.py defines the entry point and `--version`; each command lives in its group's module."""
    tree = ast.parse((CLI / "main.py").read_text(encoding="utf-8"))
    defined = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    assert defined == {"_version", "main", "_return_freed_memory", "cli"}


def _conveyor(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "conveyor", *args], capture_output=True, text=True, timeout=300)


def test_alerts_and_doctor_through_the_project(tmp_path: Path) -> None:
    """`conveyor alerts` and `doctor` on a project that has not run: the files and the lines the
    Project API gives, printed by the commands."""
    from conveyor import Project

    project = make_bike_project(tmp_path / "p", bike_rows()[:50])
    written = _conveyor("alerts", "-C", str(project), "-o", str(tmp_path / "alerts"))
    assert written.returncode == 0, written.stderr
    rules, board = Project(project).write_alerts(tmp_path / "again")
    assert f"wrote {tmp_path / 'alerts' / rules.name}" in written.stdout
    cli_rules = yaml.safe_load((tmp_path / "alerts" / rules.name).read_text())
    assert cli_rules == yaml.safe_load(rules.read_text()) and cli_rules["groups"]
    assert json.loads((tmp_path / "alerts" / board.name).read_text()) == json.loads(board.read_text())

    checks = Project(project).doctor()
    doctor = _conveyor("doctor", "-C", str(project))
    assert doctor.returncode == (0 if all(c.ok for c in checks) else 1), doctor.stdout + doctor.stderr
    assert doctor.stdout.splitlines() == [f"{c.status:<8} {c.role:<15} {c.detail}" for c in checks]
    assert {c.role for c in checks} >= {"source", "stores.mlflow"}


def test_a_command_on_a_folder_without_a_project_is_one_line(tmp_path: Path) -> None:
    for command in (["models"], ["features", "list"], ["lineage", "abc"], ["alerts"], ["doctor"], ["monitor"]):
        result = _conveyor(*command, "-C", str(tmp_path))
        assert result.returncode != 0 and "Traceback" not in result.stderr, (command, result.stderr)
        assert result.stderr.strip().splitlines() == [
            f"error: {tmp_path / 'conveyor.yaml'}: no project file here; create one with "
            "`conveyor init --csv FILE --target COL`"], (command, result.stderr)
