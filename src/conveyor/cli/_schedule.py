"""`conveyor schedule`: the stages and `monitor --act` on a scheduler."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

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


@schedule_app.command("prefect")
def schedule_prefect(
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help="Write the flow file to this folder.")] = None,
    every: Annotated[Optional[str], typer.Option(help="Serve the flow on an interval: 90s, 30m, 1h, 1d.")] = None,
    cron: Annotated[Optional[str], typer.Option(help="Serve the flow on a cron schedule, e.g. '0 3 * * *'.")] = None,
    retries: Annotated[int, typer.Option(help="Retries of a failed task.", min=0, max=20)] = 2,
    retry_delay: Annotated[float, typer.Option(help="Seconds between a task's retries.", min=0)] = 60.0,
    no_search: NoSearchOpt = False,
    project: ProjectOpt = Path("."),
) -> None:
    """Run the stages and `monitor --act` as a Prefect flow now, serve it (--every/--cron), or write it (-o)."""
    from conveyor.runner._prefect import schedule_prefect as run

    run(project, output=output, every=every, cron=cron, retries=retries, retry_delay=retry_delay,
        no_search=no_search, echo=typer.echo)
