"""`conveyor serve` as shipped: hot swap under load, kill -9 under load with two workers, a large log.

Real uvicorn processes on the trained demo (a copy per test), real MLflow registry moves.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Server, bike_rows, feature_row
from tests.e2e.test_serving_http import _copy

pytestmark = pytest.mark.slow

ADMIN = "admin-s3cret"
_ADMIN_ENV = {"CONVEYOR_TEST_ADMIN": ADMIN}
FEATURES = ["season", "yr", "mnth", "hr", "holiday", "weekday", "workingday", "weathersit",
            "temp", "atemp", "hum", "windspeed"]


def rows(count: int) -> list[dict[str, Any]]:
    return [feature_row(raw, FEATURES) for raw in bike_rows()[:count]]


class Answers:
    """The (status, body) of every answer the load got (status 0: no answer), and a wait on them."""

    def __init__(self) -> None:
        self.got: list[tuple[int, dict[str, Any] | None]] = []
        self.changed = threading.Condition()

    def add(self, answer: tuple[int, dict[str, Any] | None]) -> None:
        with self.changed:
            self.got.append(answer)
            self.changed.notify_all()

    def wait_for(self, done: Callable[[list[tuple[int, dict[str, Any] | None]]], bool], what: str) -> None:
        """Until `done(answers so far)`; 60 s without it fails the test (a guard, not a measure)."""
        with self.changed:
            assert self.changed.wait_for(lambda: done(self.got), timeout=60), f"{what}: not within 60 s"


def hammer(
    url: str, stop: threading.Event, clients: int = 4, answers: Answers | None = None
) -> list[tuple[int, dict[str, Any] | None]]:
    """Clients post single rows until `stop`; (status, body) of every answer (status 0: no answer)."""
    answers = answers or Answers()
    sample = rows(50)

    def client(index: int) -> None:
        with httpx.Client(base_url=url, timeout=10) as http:
            n = index
            while not stop.is_set():
                try:
                    answer = http.post("/predict", json={"rows": [sample[n % 50]]})
                    result: tuple[int, dict[str, Any] | None] = (answer.status_code, answer.json())
                except (httpx.TransportError, ValueError):
                    result = (0, None)
                answers.add(result)
                n += clients

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    stop.wait()
    for thread in threads:
        thread.join(timeout=30)
    return answers.got


def register_again(project: Path) -> str:
    """A new registered version of the champion's model, and `@champion` moved to it (what promote does)."""
    import mlflow
    from mlflow import MlflowClient

    from conveyor.core import Workspace

    workspace = Workspace.at(project)
    mlflow.set_tracking_uri(workspace.mlflow_uri)  # the registry resolves `models:/m-...` on the global URI
    client = MlflowClient(tracking_uri=workspace.mlflow_uri, registry_uri=workspace.mlflow_uri)
    current = client.get_model_version_by_alias("bike-sharing", "champion")
    new = client.create_model_version("bike-sharing", source=current.source, run_id=current.run_id)
    client.set_registered_model_alias("bike-sharing", "champion", new.version)
    return str(new.version)


def test_the_server_follows_champion_under_load(bike_project: Path, tmp_path: Path) -> None:
    project = _copy(bike_project, tmp_path / "swap", reload_s=0.5, admin_key_env="CONVEYOR_TEST_ADMIN")
    server = Server(project, env=_ADMIN_ENV).start()
    try:
        before = httpx.get(f"{server.url}/health").json()["model"]["version"]
        stop = threading.Event()
        result: list[Any] = []
        load = Answers()
        loader = threading.Thread(target=lambda: result.append(hammer(server.url, stop, answers=load)), daemon=True)
        loader.start()
        try:
            load.wait_for(lambda got: len(got) >= 50, "50 answers before the move")
            new = register_again(project)

            def by_new(got: list[tuple[int, dict[str, Any] | None]]) -> int:
                return sum(1 for _, body in got if body and body.get("model", {}).get("version") == new)

            load.wait_for(lambda got: by_new(got) >= 50, f"50 answers of v{new} after the move")
        finally:
            stop.set()
            loader.join()
        answers = result[0]
        assert len(answers) > 50 and {status for status, _ in answers} == {200}
        versions = [body["model"]["version"] for _, body in answers if body]
        assert set(versions) == {before, new}
        from conveyor.stages.monitoring import PredictionLog

        logged = {r["request_id"]: r["model_version"] for r in PredictionLog(project / "predictions").read()}
        for _, body in answers:
            assert body is not None
            assert logged[body["predictions"][0]["request_id"]] == body["model"]["version"]
        assert httpx.post(f"{server.url}/admin/reload").status_code == 401
        again = httpx.post(f"{server.url}/admin/reload", headers={"X-API-Key": ADMIN})
        assert again.status_code == 200 and again.json()["model"]["version"] == new
    finally:
        server.stop()


def test_kill_9_under_load_loses_no_answered_prediction(bike_project: Path, tmp_path: Path) -> None:
    project = _copy(bike_project, tmp_path / "kill")
    server = Server(project, "--workers", "2", env=_ADMIN_ENV).start()
    stop = threading.Event()
    result: list[Any] = []
    load = Answers()
    loader = threading.Thread(target=lambda: result.append(hammer(server.url, stop, clients=6, answers=load)),
                              daemon=True)
    loader.start()
    try:
        load.wait_for(lambda got: sum(status == 200 for status, _ in got) >= 100, "100 answers before the kill")
        server.kill()  # SIGKILL to the supervisor and both workers, mid-load
    finally:
        stop.set()
        loader.join()
    answered = [p["request_id"] for status, body in result[0] if status == 200 and body
                for p in body["predictions"]]
    assert len(answered) > 50
    from conveyor.stages.monitoring import PredictionLog

    restarted = Server(project, env=_ADMIN_ENV).start()  # a restart repairs a torn tail, if the kill left one
    try:
        logged = {r["request_id"] for r in PredictionLog(project / "predictions").read()}
        missing = [rid for rid in answered if rid not in logged]
        assert not missing, f"{len(missing)} of {len(answered)} answered predictions are not in the log"
        assert httpx.post(f"{restarted.url}/predict", json={"rows": rows(1)}).status_code == 200
    finally:
        restarted.stop()


def test_a_shadow_version_scores_beside_the_champion(bike_project: Path, tmp_path: Path) -> None:
    from conveyor.stages.monitoring import PredictionLog

    project = _copy(bike_project, tmp_path / "shadow", shadow="champion", reload_s=0)
    server = Server(project, env=_ADMIN_ENV).start()
    try:
        body = httpx.post(f"{server.url}/predict", json={"rows": rows(5)}, timeout=30).json()
        ids = [p["request_id"] for p in body["predictions"]]
        deadline = time.monotonic() + 20
        while len(PredictionLog(project / "predictions" / "shadow").read()) < 5:
            assert time.monotonic() < deadline, "the shadow logged nothing"
            time.sleep(0.2)
        shadow = {r["request_id"]: r for r in PredictionLog(project / "predictions" / "shadow").read()}
        assert sorted(shadow) == sorted(ids)
        for p in body["predictions"]:  # the same model behind another name: the same outputs (the champion's
            # by compiled trees once they are ready, the shadow's by LightGBM: within 1e-9)
            assert shadow[p["request_id"]]["prediction"] == pytest.approx(p["prediction"], rel=1e-9)
        assert len(PredictionLog(project / "predictions").read()) == 5  # the champion's log: no shadow lines
    finally:
        server.stop()
