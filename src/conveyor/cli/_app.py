"""What every command module shares: the Typer app, the common options, the console, the project lock."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

if TYPE_CHECKING:
    from conveyor.runner import Project

__all__ = ["ForOpt", "NoSearchOpt", "NoWaitOpt", "ProjectOpt", "app"]

app = typer.Typer(
    name="conveyor",
    help="Conveyor: a raw CSV to a monitored prediction API, on Feast, MLflow and FastAPI.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)

ProjectOpt = Annotated[
    Path, typer.Option("--project", "-C", help="Folder holding conveyor.yaml.", show_default=False)
]
NoSearchOpt = Annotated[
    bool, typer.Option("--no-search", help="Skip the hyperparameter search (as training.search.trials: 0).")
]
NoWaitOpt = Annotated[
    bool, typer.Option("--no-wait", help="Exit (code 75) instead of waiting when another command holds the project lock.")
]
ForOpt = Annotated[Optional[str], typer.Option(
    "--for", metavar="MODEL", help="One model of `models:` (a project with several models).")]


def _console() -> Any:
    from conveyor.cli._output import FittingConsole

    return FittingConsole(highlight=False)  # tables fit the terminal, or keep their rows on one line


def _project(path: Path) -> Project:
    """The project in `-C PATH` through the public API, `conveyor.Project`: the commands read and
    write a project as a notebook does, and render what it returns."""
    from conveyor.runner import Project, load_project

    load_project(path)  # no or an invalid conveyor.yaml: the one-line error every command gives
    return Project(path)


def _locked(project: Path, command: str, no_wait: bool) -> Any:
    """The project lock for a command that writes project state: a second one waits, saying who
    holds it (one line on stderr), or with --no-wait exits 75 with that line."""
    from conveyor.runner import load_project, project_lock

    config, workspace = load_project(project)
    return project_lock(config, workspace, command, wait=not no_wait,
                        on_wait=lambda line: typer.echo(line, err=True))
