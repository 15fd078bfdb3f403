"""`conveyor schedule`: the stages and `monitor --act` on a scheduler."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from conveyor.cli._app import NoSearchOpt, ProjectOpt

schedule_app = typer.Typer(
    help="Run the stages and `monitor --act` on a scheduler (cron with `conveyor monitor --act` needs none).",
    no_args_is_help=True, rich_markup_mode=None,
)


@schedule_app.command("airflow")
def schedule_airflow(
    output: Annotated[Path, typer.Option("-o", "--output", help="The DAGs folder to write to.")] = Path("dags"),
    every: Annotated[str, typer.Option("--schedule", help="Airflow schedule: a cron expression or @daily, @hourly.")]
    = "@daily",
    retries: Annotated[int, typer.Option(help="Retries of a failed task.", min=0, max=20)] = 2,
    no_search: NoSearchOpt = False,
    project: ProjectOpt = Path("."),
) -> None:
    """Write an Airflow DAG: one task per stage command, then `conveyor monitor --act`."""
    from conveyor.runner import load_project
    from conveyor.runner._schedule import airflow_dag

    config, workspace = load_project(project)
    path = airflow_dag(config, workspace, output, schedule=every, retries=retries, no_search=no_search)
    typer.echo(f"wrote {path}: put it in Airflow's dags folder (its workers need the `conveyor` command)")
