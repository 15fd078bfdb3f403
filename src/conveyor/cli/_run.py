"""`conveyor run` and one command per stage (`conveyor ingest`, `train --force`, ...)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from conveyor.cli._app import NoSearchOpt, NoWaitOpt, ProjectOpt, _console, _locked, app
from conveyor.cli._features import _features_group


def _run(
    project: Path, *, only: str | None = None, start: str | None = None, stop: str | None = None,
    force: bool = False, no_search: bool = False, no_wait: bool = False,
) -> None:
    with _locked(project, f"conveyor {only or 'run'}", no_wait):
        _run_locked(project, only=only, start=start, stop=stop, force=force, no_search=no_search)


def _run_locked(
    project: Path, *, only: str | None, start: str | None, stop: str | None, force: bool, no_search: bool,
) -> None:
    from contextlib import nullcontext

    from rich.table import Table

    from conveyor.cli._output import progress_line
    from conveyor.core.progress import listening
    from conveyor.runner import Event, load_project, run_pipeline, stages_of, without_search

    config, workspace = load_project(project)  # read again under the lock: the file may have changed meanwhile
    if no_search:
        config = without_search(config)
    console = _console()
    rows: list[tuple[str, str, str, str]] = []
    described = {stage.name: stage.describe for stage in stages_of(config)}
    status: Any = None

    def on_progress(what: str, done: int, total: int | None) -> None:
        if status is not None:  # a bar under the running stage's spinner (search trials, the online-store write)
            status.update(progress_line(what, done, total))

    def on_event(event: Event) -> None:
        nonlocal status
        if event.status == "running":
            status = console.status(f"[bold]{event.stage}[/]: {described[event.stage]} ...")
            status.start()
            return
        if status is not None:
            status.stop()
            status = None
        state = event.status if not event.why or event.why == "forced" else f"{event.status} ({event.why})"
        summary = event.artifact.result.summary() if event.artifact is not None else ""
        rows.append((event.stage, state, f"{event.seconds:.1f}s" if event.status == "ran" else "-", summary))

    try:
        with listening(on_progress) if console.is_terminal else nullcontext():
            run_pipeline(config, workspace, only=only, start=start, stop=stop, force=force, on_event=on_event)
    finally:
        if status is not None:
            status.stop()
        if rows:
            table = Table(title=f"{config.name}: {workspace.root}", title_justify="left")
            for column in ("stage", "status", "time", "result"):
                table.add_column(column)
            for row in rows:
                table.add_row(*row)
            console.print(table)


def run(
    project: ProjectOpt = Path("."),
    from_: Annotated[Optional[str], typer.Option("--from", help="Re-run from this stage on.")] = None,
    to: Annotated[Optional[str], typer.Option("--to", help="Stop after this stage (e.g. --to prepare).")] = None,
    no_search: NoSearchOpt = False,
    no_wait: NoWaitOpt = False,
) -> None:
    """Run ingest -> prepare -> eda -> features -> dataset -> train -> promote, skipping unchanged stages."""
    _run(project, start=from_, stop=to, no_search=no_search, no_wait=no_wait)


def _stage_command(stage: str, help_text: str) -> None:
    def command(
        project: ProjectOpt = Path("."),
        force: Annotated[bool, typer.Option("--force", help="Run even if its inputs are unchanged.")] = False,
        no_wait: NoWaitOpt = False,
    ) -> None:
        _run(project, only=stage, force=force, no_wait=no_wait)

    def train_command(
        project: ProjectOpt = Path("."),
        force: Annotated[bool, typer.Option("--force", help="Run even if its inputs are unchanged.")] = False,
        no_wait: NoWaitOpt = False,
        no_search: NoSearchOpt = False,
    ) -> None:
        _run(project, only=stage, force=force, no_search=no_search, no_wait=no_wait)

    if stage == "train":
        command = train_command

    command.__doc__ = help_text
    if stage == "features":
        _features_group(command, help_text)
        return
    app.command(name=stage)(command)


def _register_stage_commands() -> None:
    from conveyor.runner import STAGES

    for stage in STAGES:
        _stage_command(stage.name, stage.help)
