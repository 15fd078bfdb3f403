"""Shared fixtures: real projects run once per session, real servers on free loopback ports."""

from __future__ import annotations

import csv
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIKE_DIR = ROOT / "examples" / "bike-sharing"
BIKE_CSV = BIKE_DIR / "bike_sharing_hourly.csv"
CREDIT_CSV = ROOT / "tests" / "data" / "credit_card_default.csv"
BIKE_NUMERIC = {"temp", "atemp", "hum", "windspeed", "mnth", "hr"}


def conveyor(*args: str, cwd: Path | None = None, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run the CLI as a user would, in a fresh process."""
    result = subprocess.run(
        [sys.executable, "-m", "conveyor", *args], cwd=cwd or ROOT, capture_output=True, text=True, timeout=timeout
    )
    if check and result.returncode != 0:
        raise AssertionError(f"conveyor {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def bike_rows() -> list[dict[str, str]]:
    with BIKE_CSV.open(newline="") as handle:
        return list(csv.DictReader(handle))


def feature_row(raw: dict[str, str], features: list[str]) -> dict[str, Any]:
    """A CSV row as a JSON request row: numbers as numbers, codes as ints."""
    return {f: float(raw[f]) if f in BIKE_NUMERIC else int(raw[f]) for f in features}


def write_csv(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def make_bike_project(folder: Path, rows: list[dict[str, str]] | None = None, name: str = "bike-sharing") -> Path:
    """A project folder with the demo's edited conveyor.yaml and the given rows (default: all)."""
    folder.mkdir(parents=True, exist_ok=True)
    if rows is None:
        shutil.copy(BIKE_CSV, folder / BIKE_CSV.name)
    else:
        write_csv(folder / BIKE_CSV.name, rows)
    config = yaml.safe_load((BIKE_DIR / "conveyor.yaml").read_text())
    config["name"] = name
    config["training"]["search"] = {"trials": 4, "timeout_s": 30.0, "folds": 3}  # tests: a tiny search budget
    (folder / "conveyor.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return folder


def stage_result(project: Path, stage: str) -> Any:
    """The typed result the last run of a stage recorded in a project."""
    return stage_artifact(project, stage).result


def stage_artifact(project: Path, stage: str) -> Any:
    from conveyor.core import Workspace
    from conveyor.runner import last_artifact

    artifact = last_artifact(Workspace.at(project), stage)
    assert artifact is not None, f"no record of {stage} in {project}"
    return artifact


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """`conveyor serve` in a session of its own (so signals reach every worker process), on a
    free port of 127.0.0.1; `args` are extra `serve` options (`--workers 2`)."""

    def __init__(self, project: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.project = project
        # one worker unless a test asks for more: /metrics and a reload are per worker, and the
        # default (serving.workers: auto) would spread a test's requests over the cores
        self.args = args if "--workers" in args else ("--workers", "1", *args)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = project / f"server-{self.port}.log"
        self.env = {**os.environ, **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 120) -> Server:
        with self.log.open("ab") as handle:  # the child keeps its own copy of the descriptor
            self.process = subprocess.Popen(
                [sys.executable, "-m", "conveyor", "serve", "-C", str(self.project), "--port", str(self.port), *self.args],
                stdout=handle, stderr=subprocess.STDOUT, env=self.env, start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited ({self.process.returncode}):\n{self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.25)
        self.stop()
        raise AssertionError(f"server not ready in {timeout}s:\n{self.log.read_text()}")

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, as a crash or the OOM killer would."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture(scope="session")
def bike_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo project, trained on the whole file: `conveyor run` once per session."""
    project = make_bike_project(tmp_path_factory.mktemp("bike"))
    conveyor("run", "-C", str(project))
    return project


@pytest.fixture(scope="session")
def bike_server(bike_project: Path) -> Iterator[Server]:
    server = Server(bike_project).start()
    yield server
    server.stop()


TAXI_DIR = ROOT / "examples" / "nyc-taxi"
TIP_FEATURES = ["trip_distance", "payment_type", "PULocationID", "fare_amount", "pu_trips_24h", "pu_mean_fare_7d"]


def two_taxi_models(folder: Path) -> Path:
    """The taxi example with `models:` fare (every input) and tip (a few), no search."""
    import shutil

    import yaml

    folder.mkdir(parents=True)
    shutil.copy(TAXI_DIR / "nyc_taxi_trips.csv", folder / "nyc_taxi_trips.csv")
    config = yaml.safe_load((TAXI_DIR / "conveyor.yaml").read_text())
    config["schema"]["drop"] = ["total_amount"]  # tip_amount is a target now: kept
    config.setdefault("training", {}).setdefault("lightgbm", {})["n_estimators"] = 100  # tests: a small model
    config["models"] = {
        "fare": {"target": "fare_amount", "task": "regression"},
        "tip": {"target": "tip_amount", "task": "regression", "features": TIP_FEATURES},
    }
    (folder / "conveyor.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return folder


@pytest.fixture(scope="session")
def taxi_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The taxi example (zone entities, aggregates, on-demand features) with two models, run once
    for the feature-store and the several-models tests."""
    folder = two_taxi_models(tmp_path_factory.mktemp("taxi-models") / "p")
    conveyor("run", "-C", str(folder), "--no-search")
    return folder


TEAM_ENV = (
    "CONVEYOR_PG_DSN",
    "REDIS_URL",
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_DEFAULT_REGION",
    "CONVEYOR_S3_BUCKET",
    "MLFLOW_TRACKING_URI",
)
"""What `examples/team-stack/up` prints for the team stack's services: PostgreSQL, Redis, an
S3-API server (bucket `CONVEYOR_S3_BUCKET`) and an MLflow tracking server."""


@pytest.fixture(scope="session")
def team_stack() -> dict[str, str]:
    """The running team stack's environment (`make test` starts it). A missing service fails the
    test: tests of the team stack never skip."""
    missing = [name for name in TEAM_ENV if not _ENV_AT_START.get(name)]
    if missing:
        pytest.fail(f"the team stack is not running ({', '.join(missing)} unset): "
                    "start it with examples/team-stack/up and export the lines it prints, or run `make test`")
    return {name: _ENV_AT_START[name] for name in TEAM_ENV}


_ENV_AT_START = dict(os.environ)
"""The environment the tests started with: in-process MLflow calls (`mlflow.set_tracking_uri`) set
and unset `MLFLOW_TRACKING_URI` in `os.environ`, which is also the team stack's variable."""


STACKS = ("embedded", "team")
"""The universal matrix: a test taking the `stack` fixture runs once on each."""


class Stack:
    """Where a project keeps its state: the embedded default (SQLite, local files) or the team
    stack (MLflow server, Feast registry on PostgreSQL, offline data in S3). Each team project
    gets a unique name: registered model names and Feast projects are global on shared services."""

    def __init__(self, name: str, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.env = env or {}

    @property
    def shared(self) -> bool:
        return self.name != "embedded"

    def stores(self) -> dict[str, Any] | None:
        """The project's `stores:` section (None: the embedded default)."""
        if not self.shared:
            return None
        return {
            "mlflow": {"tracking_uri_env": "MLFLOW_TRACKING_URI"},
            "registry": {"kind": "postgres", "dsn_env": "CONVEYOR_PG_DSN"},
            "offline": {"kind": "s3", "uri": f"s3://{self.env['CONVEYOR_S3_BUCKET']}/conveyor-tests"},
            "online": {"kind": "redis", "url_env": "REDIS_URL"},
        }

    def project_name(self, base: str) -> str:
        import uuid

        return f"{base}-{uuid.uuid4().hex[:8]}" if self.shared else base

    def configure(self, project: Path, base: str = "bike-sharing") -> str:
        """Put this stack's `stores:` section and a name into a project's conveyor.yaml; returns the name."""
        config = yaml.safe_load((project / "conveyor.yaml").read_text())
        config["name"] = self.project_name(base)
        stores = self.stores()
        if stores is not None:
            config["stores"] = stores
        (project / "conveyor.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        return str(config["name"])


@pytest.fixture(scope="session", params=STACKS)
def stack(request: pytest.FixtureRequest) -> Stack:
    """Each stack of the matrix in turn; the team stack's services must be running (never skipped)."""
    if request.param == "embedded":
        return Stack("embedded")
    return Stack(request.param, request.getfixturevalue("team_stack"))
