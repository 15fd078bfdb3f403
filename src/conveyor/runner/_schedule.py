"""`conveyor schedule airflow -o dags/`: the stages and the loop as an Airflow DAG.

The DAG calls the stage commands (`conveyor ingest -C <project>`, ..., `conveyor monitor --act`),
one task each, in the stage order, without a shell: each task runs the command's argument list
with `subprocess.run`, so a project path is never parsed as shell text. The file imports nothing
of Conveyor: the Airflow workers need only the `conveyor` command. Every value is written as a
Python literal (`repr`), never pasted into code.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from conveyor.core.config import Config
from conveyor.core.report import write_text
from conveyor.core.workspace import Workspace

__all__ = ["airflow_dag"]

_TEMPLATE = '''"""Conveyor project {name}: the stages, then `monitor --act`. Written by `conveyor schedule airflow`."""

import subprocess
from datetime import datetime, timedelta

from airflow import DAG

try:  # Airflow 3
    from airflow.providers.standard.operators.python import PythonOperator
except ImportError:  # Airflow 2
    from airflow.operators.python import PythonOperator

CONVEYOR = {conveyor!r}
PROJECT = {project!r}
STEPS = {steps!r}


def run_step(argv):
    """One stage command; a non-zero exit fails the task (Airflow retries it)."""
    subprocess.run([*CONVEYOR, *argv, "-C", PROJECT], check=True)


with DAG(
    dag_id={dag_id!r},
    description={description!r},
    schedule={schedule!r},
    start_date=datetime(2024, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={{"retries": {retries!r}, "retry_delay": timedelta(minutes={retry_minutes!r})}},
    tags=["conveyor"],
) as dag:
    previous = None
    for task_id, argv in STEPS:
        task = PythonOperator(task_id=task_id, python_callable=run_step, op_args=[argv])
        if previous is not None:
            previous >> task
        previous = task
'''


def airflow_dag(config: Config, workspace: Workspace, folder: Path, *, schedule: str, retries: int = 2,
                no_search: bool = False) -> Path:
    """Write `<folder>/conveyor_<name>.py`: one task per stage, then `monitor --act`."""
    from conveyor.runner._pipeline import STAGES

    found = shutil.which("conveyor")
    conveyor = [found] if found else [sys.executable, "-m", "conveyor"]
    steps: list[tuple[str, list[str]]] = []
    for stage in STAGES:  # `conveyor train` runs every model's own train in a project with `models:`
        argv = [stage.name, *(["--no-search"] if stage.name == "train" and no_search else [])]
        steps.append((stage.name, argv))
    steps.append(("monitor", ["monitor", "--act", *(["--no-search"] if no_search else [])]))
    dag_id = "conveyor_" + config.name.replace("-", "_")
    text = _TEMPLATE.format(
        name=config.name, conveyor=conveyor, project=str(workspace.root), steps=steps, dag_id=dag_id,
        description=f"Conveyor {config.name}: stages and monitor --act", schedule=schedule, retries=retries,
        retry_minutes=5,
    )
    return write_text(folder / f"{dag_id}.py", text)
