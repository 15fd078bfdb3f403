"""`conveyor schedule prefect` on Prefect's local ephemeral server (PREFECT_HOME in a temporary
folder, no PREFECT_API_URL): every stage task completes, a stage whose source file is missing
on the first attempt is retried and completes, a stage that keeps failing fails the flow with
its one-line error; the written flow file is the same flow, and `--every`/`--cron` deploy it
on that schedule."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, bike_rows, make_bike_project

pytest.importorskip("prefect", reason="conveyor[prefect] is not installed")
pytestmark = pytest.mark.slow

STAGES = ["ingest", "prepare", "eda", "features", "dataset", "train", "promote"]
SOURCE = "bike_sharing_hourly.csv"

# The conveyor CLI in a process of its own, with Prefect's ephemeral server on 127.0.0.1 ports
# 21200-21299. FAULT names a file kept aside as FAULT.later: it is put back only when Prefect
# logs that the first attempt failed and a retry is scheduled (an event, not a timer). Then the
# flow and task runs are read back from Prefect's own API.
SCRIPT = r'''
import json, logging, os, shutil, sys
from pathlib import Path

import prefect.main  # Prefect's logging set up now, so that the handler below stays
from prefect.server.api.server import SubprocessASGIServer

SubprocessASGIServer._port_range = range(21200, 21300)
fault = os.environ.get("FAULT")
if fault:
    class PutBack(logging.Handler):
        def emit(self, record):
            if "Retry 1/" in record.getMessage() and not Path(fault).exists():
                shutil.move(fault + ".later", fault)

    logging.getLogger("prefect.task_runs").addHandler(PutBack())

from conveyor.cli import cli

sys.argv = ["conveyor", *sys.argv[1:]]
try:
    cli()
    code = 0
except SystemExit as exc:
    code = exc.code if isinstance(exc.code, int) else 1

from prefect.client.orchestration import get_client

with get_client(sync_client=True) as client:
    flows = [{"name": f.name, "id": str(f.id), "state": f.state.name, "message": f.state.message}
             for f in client.read_flow_runs()]
    tasks = [{"name": t.name, "key": t.task_key, "state": t.state.name, "runs": t.run_count,
              "flow": str(t.flow_run_id)} for t in client.read_task_runs()]
    deployments = [{"name": d.name, "schedules": [s.schedule.model_dump(mode="json") for s in d.schedules]}
                   for d in client.read_deployments()]
print(json.dumps({"code": code, "flows": flows, "tasks": tasks, "deployments": deployments}))
'''


def _prefect(tmp: Path, *args: str, fault: Path | None = None) -> tuple[dict[str, Any], subprocess.CompletedProcess[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env |= {"PREFECT_HOME": str(tmp / "prefect-home"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "300",  # a loaded 2-core machine
            "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    if fault is not None:
        env["FAULT"] = str(fault)
    done = subprocess.run([sys.executable, "-c", SCRIPT, *args], capture_output=True, text=True, env=env,
                          timeout=900, cwd=tmp)
    assert done.stdout.strip(), done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1]), done


def _errors(done: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in done.stderr.splitlines() if line.startswith("error:")]


def _tasks(found: dict[str, Any]) -> dict[str, dict[str, Any]]:
    assert len(found["flows"]) == 1, found["flows"]
    flow = found["flows"][0]
    return {t["name"].rsplit("-", 1)[0]: t for t in found["tasks"] if t["flow"] == flow["id"]}


@pytest.fixture(scope="module")
def small_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rows = [r for r in bike_rows() if r["yr"] == "0" and int(r["mnth"]) <= 4]
    return make_bike_project(tmp_path_factory.mktemp("prefect") / "bike", rows, name="bike-prefect")


def test_the_flow_runs_every_stage_and_retries_a_missing_file(small_project: Path, tmp_path: Path) -> None:
    source = small_project / SOURCE
    source.rename(source.with_name(SOURCE + ".later"))  # missing on the first attempt of ingest
    try:
        found, done = _prefect(tmp_path, "schedule", "prefect", "-C", str(small_project), "--no-search",
                               "--retries", "2", "--retry-delay", "1", fault=source)
    finally:
        if not source.exists():
            source.with_name(SOURCE + ".later").rename(source)
    assert found["code"] == 0, done.stderr[-4000:]
    flow = found["flows"][0]
    assert flow["name"] and flow["state"] == "Completed", flow
    tasks = _tasks(found)
    assert sorted(tasks) == sorted([*STAGES, "monitor"])
    assert all(t["state"] == "Completed" for t in tasks.values()), tasks
    assert tasks["ingest"]["runs"] == 2  # failed once (no source file), retried, completed
    assert all(tasks[s]["runs"] == 1 for s in [*STAGES[1:], "monitor"]), tasks
    assert "Retry 1/2" in done.stderr and "source file not found" in done.stderr
    assert "flow conveyor-bike-prefect: Completed" in done.stdout
    assert "no served predictions" in done.stdout  # monitor has nothing to check before any traffic
    records = sorted((small_project / ".conveyor" / "stages").glob("*.json"))
    assert {p.stem for p in records} >= set(STAGES)  # the same stage records as `conveyor run`


def test_a_failing_stage_fails_the_flow_with_its_error(small_project: Path, tmp_path: Path) -> None:
    config = small_project / "conveyor.yaml"
    original = config.read_text()
    config.write_text(original.replace(f"path: {SOURCE}", "path: gone.csv"))
    try:
        found, done = _prefect(tmp_path, "schedule", "prefect", "-C", str(small_project), "--retries", "1",
                               "--retry-delay", "0")
    finally:
        config.write_text(original)
    assert found["code"] == 1
    flow = found["flows"][0]
    assert flow["state"] == "Failed"
    assert "ingest: " in flow["message"] and "gone.csv: source file not found" in flow["message"], flow
    tasks = _tasks(found)
    assert list(tasks) == ["ingest"] and tasks["ingest"]["state"] == "Failed" and tasks["ingest"]["runs"] == 2
    [error] = _errors(done)  # one line (Prefect's own log lines around it aside)
    assert error.startswith("error: ingest: ") and error.endswith(f"(source.path in {config})"), error
    assert "flow conveyor-bike-prefect: Failed" in done.stdout


def test_the_flow_file_is_the_flow_and_serves_on_its_schedule(small_project: Path, tmp_path: Path) -> None:
    from conveyor.core import load_config
    from conveyor.core.workspace import Workspace
    from conveyor.runner._prefect import prefect_flow_file

    config = load_config(small_project / "conveyor.yaml")
    path = prefect_flow_file(config, Workspace(small_project), tmp_path / "flows", retries=3, retry_delay=30,
                             cron="15 4 * * *")
    assert path.name == "conveyor_bike_prefect.py"
    text = path.read_text()
    assert f"PROJECT = {str(small_project.resolve())!r}" in text
    assert "conveyor_bike_prefect.serve(name='bike-prefect', cron='15 4 * * *')" in text
    assert "retries: int = 3, retry_delay: float = 30" in text
    # each flow as Prefect loads it by its deployment's entrypoint when a scheduled run starts
    script = (
        "import json, sys\n"
        "from prefect.flows import load_flow_from_entrypoint\n"
        "written = load_flow_from_entrypoint(sys.argv[1] + ':conveyor_bike_prefect')\n"
        "written = written.to_deployment('bike-prefect', cron='15 4 * * *')\n"
        "from conveyor.runner._prefect import prefect_deployment, prefect_flow\n"
        "flow, parameters = prefect_flow(sys.argv[2], retries=1)\n"
        "every = prefect_deployment(flow, parameters, 'bike-prefect', every='90m')\n"
        "cron = prefect_deployment(flow, parameters, 'bike-prefect', cron='15 4 * * *')\n"
        "print(json.dumps({\n"
        "  'written': [load_flow_from_entrypoint(written.entrypoint).name, written.parameters,\n"
        "              [s.schedule.cron for s in written.schedules]],\n"
        "  'served': [load_flow_from_entrypoint(every.entrypoint).fn.__name__, every.parameters,\n"
        "             [s.schedule.interval.total_seconds() for s in every.schedules], [s.schedule.cron for s in cron.schedules]]}))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env |= {"PREFECT_HOME": str(tmp_path / "prefect-home"), "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    done = subprocess.run([sys.executable, "-c", script, str(path), str(small_project)], capture_output=True, text=True,
                          env=env, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert loaded["written"] == ["conveyor-bike-prefect", {}, ["15 4 * * *"]]  # its defaults are the project's
    assert loaded["served"] == ["conveyor_flow", {"project": str(small_project.resolve()), "retries": 1,
                                                  "retry_delay": 60.0, "no_search": False, "act": True},
                                [5400.0], ["15 4 * * *"]]


def test_bad_schedules_are_one_line_errors(small_project: Path, tmp_path: Path) -> None:
    from conveyor.core.errors import ConfigError
    from conveyor.runner._prefect import every_interval

    assert every_interval("90m").total_seconds() == 5400 and every_interval("1d").total_seconds() == 86400
    for bad in ("", "5", "1w", "0h", "-1h"):
        with pytest.raises(ConfigError, match="--every"):
            every_interval(bad)
    found, done = _prefect(tmp_path, "schedule", "prefect", "-C", str(small_project), "--cron", "every day")
    assert found["code"] == 2 and found["flows"] == []
    assert [e[:50] for e in _errors(done)] == ["error: --cron 'every day': not a cron expression; "]
