"""Hot swap, micro-batching, the shadow and the admin endpoint, over real HTTP (uvicorn in a thread).

The champion moves while clients keep sending: every answer is a 200 and names the version
that computed it, and the log says the same version for the same request id.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from conveyor.core.config import BatchingConfig, Config
from conveyor.stages.monitoring import PredictionLog
from conveyor.stages.serving import ServiceParts, create_app
from tests.unit.test_serving_app import TinyModel, TinyStore, row, tiny_config

ADMIN = "adm1n-key"


def config_with(**serving: Any) -> Config:
    base = tiny_config()
    if "batching" in serving:
        serving["batching"] = BatchingConfig.model_validate(serving["batching"])
    return base.model_copy(update={"serving": base.serving.model_copy(update=serving)})


class Versions:
    """A reloader over a list of models: `move()` points `@champion` at the next one."""

    def __init__(self, models: list[TinyModel]) -> None:
        self.models = models
        self.current = 0
        self.calls = 0

    def move(self) -> None:
        self.current += 1

    def __call__(self, *, force: bool = False) -> TinyModel | None:
        self.calls += 1
        time.sleep(0.05)  # loading takes a while, off the request path
        return self.models[self.current]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def running() -> Iterator[Callable[[FastAPI], str]]:
    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(app: FastAPI) -> str:
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while not server.started:
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.02)
        servers.append((server, thread))
        return f"http://127.0.0.1:{port}"

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(timeout=10)


def load(url: str, seconds: float, clients: int = 4, rows: int = 1) -> list[tuple[int, dict[str, Any]]]:
    """`clients` threads send /predict for `seconds`; every (status, body) they got."""
    answers: list[tuple[int, dict[str, Any]]] = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client(index: int) -> None:
        with httpx.Client(base_url=url, timeout=10) as http:
            while time.monotonic() < stop:
                answer = http.post("/predict", json={"rows": [row(temp=float(index))] * rows})
                with lock:
                    answers.append((answer.status_code, answer.json()))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def test_a_swap_under_load_fails_no_request(tmp_path: Path, running: Callable[[FastAPI], str]) -> None:
    versions = Versions([TinyModel(version="3"), TinyModel(version="4")])
    log = PredictionLog(tmp_path)
    app = create_app(config_with(reload_s=0.2), ServiceParts(TinyModel(version="3"), TinyStore(), log, reload=versions))
    url = running(app)
    mover = threading.Timer(0.6, versions.move)
    mover.start()
    answers = load(url, 1.8)
    mover.join()
    assert answers and all(status == 200 for status, _ in answers), {s for s, _ in answers}
    seen = [body["model"]["version"] for _, body in answers]
    assert set(seen) == {"3", "4"}, set(seen)
    by_id = {r.request_id: r.model_version for r in log.records()}
    for _, body in answers:  # the log names the version that made each answer
        for prediction in body["predictions"]:
            assert by_id[prediction["request_id"]] == body["model"]["version"]
    assert httpx.get(f"{url}/health").json()["model"]["version"] == "4"
    assert 'conveyor_model_info{name="tiny",version="4"} 1.0' in httpx.get(f"{url}/metrics").text


def test_admin_reload_needs_its_key(
    tmp_path: Path, running: Callable[[FastAPI], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TINY_ADMIN", ADMIN)
    versions = Versions([TinyModel(version="3"), TinyModel(version="4")])
    app = create_app(config_with(reload_s=0, admin_key_env="TINY_ADMIN"),
                     ServiceParts(TinyModel(version="3"), TinyStore(), PredictionLog(tmp_path), reload=versions))
    url = running(app)
    versions.move()
    assert not any(t.name == "conveyor-reload" for t in threading.enumerate())  # reload_s 0: no poller
    assert httpx.get(f"{url}/health").json()["model"]["version"] == "3"
    for headers in ({}, {"X-API-Key": "wrong"}, {"Authorization": "Bearer wrong"}):
        assert httpx.post(f"{url}/admin/reload", headers=headers).status_code == 401
    assert versions.calls == 0
    answer = httpx.post(f"{url}/admin/reload", headers={"Authorization": f"Bearer {ADMIN}"})
    assert answer.status_code == 200 and answer.json() == {"reloaded": True, "model": {"name": "tiny", "version": "4"}}
    assert httpx.get(f"{url}/health").json()["model"]["version"] == "4"
    again = httpx.post(f"{url}/admin/reload", headers={"X-API-Key": ADMIN}).json()
    assert again["reloaded"] is False


def test_a_broken_new_version_is_refused_and_the_old_one_serves_on(tmp_path: Path) -> None:
    from conveyor.stages.serving._slot import ModelSlot  # the unit under test

    versions = Versions([TinyModel(version="3"), TinyModel(version="5", features=["temp"])])
    app = create_app(config_with(), ServiceParts(TinyModel(version="3"), TinyStore(), PredictionLog(tmp_path),
                                                reload=versions))
    slot: ModelSlot = app.state.slot
    versions.move()
    assert slot.reload_now() is False and slot.model.version == "3"


def test_concurrent_rows_share_one_model_call_and_one_log_write(tmp_path: Path) -> None:
    model = TinyModel()
    log = PredictionLog(tmp_path)
    app = create_app(config_with(batching={"max_batch": 64, "max_wait_ms": 0}), ServiceParts(model, TinyStore(), log))
    batcher = app.state.batcher

    async def burst() -> list[Any]:
        rows = [[model.clean(row(temp=float(i)))] for i in range(20)]
        return await asyncio.gather(*(batcher.submit(r, "rows", None) for r in rows))

    served = asyncio.run(burst())
    assert [s.records[0].prediction for s in served] == [10 * i + 3 for i in range(20)]
    assert len(model.calls) == 1  # one model call for the 20 concurrent requests
    assert len(log.read()) == 20
    metrics = app.state.batcher.metrics
    assert metrics.batch_rows._sum.get() == 20


def test_a_lone_client_never_waits_for_a_batch(tmp_path: Path) -> None:
    """max_wait_ms only applies while other requests are in flight: one client is never delayed by it."""
    app = create_app(config_with(batching={"max_batch": 64, "max_wait_ms": 50}),
                     ServiceParts(TinyModel(), TinyStore(), PredictionLog(tmp_path)))
    batcher = app.state.batcher
    batcher.max_wait_s = 600.0  # were a lone request to wait for a batch, it would wait ten minutes

    async def one() -> None:
        batcher.in_flight += 1  # as the endpoint counts it
        served = await asyncio.wait_for(batcher.submit([row()], "rows", None), timeout=60)  # a guard, not a measure
        batcher.in_flight -= 1
        assert len(served.records) == 1

    for _ in range(5):
        asyncio.run(one())


def test_the_shadow_scores_off_the_request_path_and_logs_beside(tmp_path: Path) -> None:
    shadow_model = replace(TinyModel(version="9"))
    shadow_log = PredictionLog(tmp_path / "shadow")
    log = PredictionLog(tmp_path)
    app = create_app(tiny_config(), ServiceParts(TinyModel(), TinyStore(), log, shadow=shadow_model,
                                                shadow_log=shadow_log))
    from tests.unit.test_serving_app import TestClient

    client = TestClient(app)
    body = client.post("/predict", json={"rows": [row(), row(temp=2.0)]}).json()
    app.state.shadow.drain()
    shadowed = {r.request_id: r for r in shadow_log.records()}
    assert [shadowed[p["request_id"]].model_version for p in body["predictions"]] == ["9", "9"]
    assert [r.model_version for r in log.records()] == ["3", "3"]  # the champion's log has no shadow lines
