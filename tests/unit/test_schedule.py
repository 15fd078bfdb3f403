"""`conveyor schedule airflow`: the DAG file's tasks and order, read back from its syntax tree, and
loaded by Airflow's own DagBag when an Airflow installation is named by CONVEYOR_AIRFLOW_PYTHON."""

from __future__ import annotations

import ast
import json
import os
import subprocess
from pathlib import Path

import pytest

from conveyor.core import load_config
from conveyor.core.workspace import Workspace
from conveyor.runner._schedule import airflow_dag

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "bike-sharing" / "conveyor.yaml"
STAGES = ["ingest", "prepare", "eda", "features", "dataset", "train", "promote"]
AIRFLOW_PYTHON = os.environ.get("CONVEYOR_AIRFLOW_PYTHON")


@pytest.fixture
def dag_file(tmp_path: Path) -> Path:
    project = tmp_path / "it's a \"project\" $(touch pwned)"  # a path that is never shell text or code
    project.mkdir()
    return airflow_dag(load_config(EXAMPLE), Workspace(project), tmp_path / "dags", schedule="0 3 * * *",
                       no_search=True)


def _literals(path: Path) -> dict[str, object]:
    tree = ast.parse(path.read_text())
    return {node.targets[0].id: ast.literal_eval(node.value) for node in tree.body
            if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
            and isinstance(node.value, (ast.Constant, ast.List, ast.Tuple))}


def test_the_dag_runs_each_stage_then_monitor_act(dag_file: Path) -> None:
    assert dag_file.name == "conveyor_bike_sharing.py"
    values = _literals(dag_file)
    steps = values["STEPS"]
    assert [task for task, _ in steps] == [*STAGES, "monitor"]
    assert dict(steps)["train"] == ["train", "--no-search"]
    assert dict(steps)["monitor"] == ["monitor", "--act", "--no-search"]
    assert values["PROJECT"] == str(dag_file.parent.parent / "it's a \"project\" $(touch pwned)")
    text = dag_file.read_text()
    assert "shell=True" not in text and "BashOperator" not in text
    assert "schedule='0 3 * * *'" in text and '"retries": 2' in text and "previous >> task" in text
    compile(text, str(dag_file), "exec")


@pytest.mark.skipif(AIRFLOW_PYTHON is None, reason="set CONVEYOR_AIRFLOW_PYTHON to a Python with apache-airflow")
def test_airflow_dagbag_loads_it(dag_file: Path, tmp_path: Path) -> None:
    script = (
        "import json, sys\n"
        "from airflow.models.dagbag import DagBag\n"
        "bag = DagBag(dag_folder=sys.argv[1])\n"
        "dag = bag.dags['conveyor_bike_sharing']  # no metadata database needed\n"
        "print(json.dumps({'errors': {k: str(v) for k, v in bag.import_errors.items()},\n"
        "  'tasks': sorted(dag.task_ids), 'edges': sorted([t.task_id, d] for t in dag.tasks for d in t.downstream_task_ids),\n"
        "  'retries': dag.default_args['retries']}))\n"
    )
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path / "airflow"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    env.pop("PYTHONPATH", None)
    done = subprocess.run([str(AIRFLOW_PYTHON), "-c", script, str(dag_file.parent)], capture_output=True, text=True,
                          env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert loaded["errors"] == {}
    order = [*STAGES, "monitor"]
    assert loaded["tasks"] == sorted(order)
    assert loaded["edges"] == sorted([a, b] for a, b in zip(order, order[1:]))
    assert loaded["retries"] == 2
