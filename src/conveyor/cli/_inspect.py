"""`conveyor lineage`, `doctor` and `ui`: looking at a project (read-only)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from conveyor.cli._app import ForOpt, ProjectOpt, _console, _project


def lineage(
    request_id: Annotated[Optional[str], typer.Argument(help="A request id from the prediction log.")] = None,
    model: Annotated[Optional[str], typer.Option("--model", help="A registered model version instead.")] = None,
    for_model: ForOpt = None,
    project: ProjectOpt = Path("."),
) -> None:
    """Walk from a served prediction (or a model version) back to the source file's bytes."""
    from rich.tree import Tree

    if (request_id is None) == (model is None):
        raise typer.BadParameter("give a REQUEST_ID or --model VERSION (one of them)")
    opened = _project(project)
    steps = opened.lineage(request_id, version=model, model=for_model)
    root = Tree(f"[bold]{opened.name}[/]: {opened.root}")
    branches: dict[int, Any] = {-1: root}
    for step in steps:
        label = f"[bold]{step.kind}[/] {step.digest[:16]}  {step.path}".rstrip()
        node = branches[step.depth - 1].add(label + (f"\n[dim]{step.summary}[/]" if step.summary else ""))
        branches[step.depth] = node
    _console().print(root)


def doctor(project: ProjectOpt = Path(".")) -> None:
    """Check every service the project uses (source, MLflow, registry, online, offline, lock): one line each."""
    checks = _project(project).doctor()
    for check in checks:
        typer.echo(f"{check.status:<8} {check.role:<15} {check.detail}")
    if not all(check.ok for check in checks):
        raise typer.Exit(1)


def ui(
    project: ProjectOpt = Path("."),
    host: Annotated[str, typer.Option(help="Bind address (loopback unless told otherwise).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port.")] = 8765,
    serving_url: Annotated[Optional[str], typer.Option(
        "--serving-url", help="The running service whose /metrics to show (default: serving.host:serving.port).")] = None,
    mlflow_url: Annotated[Optional[str], typer.Option(
        "--mlflow-url", envvar="CONVEYOR_MLFLOW_UI", help="MLflow's UI, for the run links (default: http://127.0.0.1:5000).",
    )] = None,
) -> None:
    """The project page (read-only): pipeline, data quality, features, models, service, drift, lineage."""
    from conveyor.runner._ui import DEFAULT_MLFLOW_URL, serve_ui

    serve_ui(project, host=host, port=port, serving_url=serving_url, mlflow_url=mlflow_url or DEFAULT_MLFLOW_URL)
