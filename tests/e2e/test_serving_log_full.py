"""A prediction log that cannot be written: 503 with the reason, /health degraded, recovery, over real HTTP.

The service runs in uvicorn on 127.0.0.1 (a thread of the test process) over the tiny model of
the app's unit tests and the real prediction log. The full disk is a real one: a 64 KiB tmpfs
mounted for the test (root only); without root, a log whose writes fail with ENOSPC stands in.
"""

from __future__ import annotations

import errno
import os
import subprocess
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from conveyor.core.records import PredictionRecord
from conveyor.stages.monitoring import PredictionLog
from conveyor.stages.serving import ServiceParts, create_app
from tests.unit.test_serving_app import TinyModel, TinyStore, row, tiny_config


@contextmanager
def uvicorn_server(app: Any) -> Iterator[str]:
    """`app` served by uvicorn on 127.0.0.1 until the block ends; yields its URL."""
    import socket

    import uvicorn

    port = _free_port(socket)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    ready = threading.Event()
    startup = server.startup

    async def started(*args: Any, **kwargs: Any) -> None:
        await startup(*args, **kwargs)
        ready.set()

    server.startup = started  # type: ignore[method-assign]
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    assert ready.wait(30), "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


def _free_port(socket: Any) -> int:
    """A free port of 127.0.0.1: in CONVEYOR_TEST_PORTS (`31000-31099`) when set, else any."""
    low, _, high = os.environ.get("CONVEYOR_TEST_PORTS", "0-0").partition("-")
    for port in range(int(low), int(high or low) + 1):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(probe.getsockname()[1])
    raise AssertionError(f"no free port in CONVEYOR_TEST_PORTS={os.environ['CONVEYOR_TEST_PORTS']}")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs: a disk that really fills up."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        problem = f"cannot mount a tmpfs here (needs root): {mounted.stderr.decode().strip()}"
        if os.environ.get("CI"):  # CI runs as root: there the real full disk is tested, never skipped
            pytest.fail(problem)
        pytest.skip(problem)
    try:
        yield disk
    finally:
        subprocess.run(["umount", "--lazy", str(disk)], check=True)


def fill(disk: Path) -> Path:
    """Write a file until the disk is full; its path (delete it to free the space)."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        while True:
            os.write(fd, b"x" * 512)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
    return filler


def test_a_full_disk_is_503_with_the_reason_and_health_degraded_until_space_returns(small_disk: Path) -> None:
    log = PredictionLog(small_disk / "predictions")
    app = create_app(tiny_config(), ServiceParts(TinyModel(), TinyStore(), log))
    with uvicorn_server(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        first = client.post("/predict", json={"rows": [row()]})
        assert first.status_code == 200, first.text
        assert client.get("/health").json()["status"] == "ok"

        filler = fill(small_disk)
        batch = {"rows": [row(temp=float(i)) for i in range(100)]}  # more than the space left in the last page
        refused = client.post("/predict", json=batch)
        assert refused.status_code == 503
        assert refused.headers["content-type"] == "application/json" and refused.headers["retry-after"] == "1"
        body = refused.json()
        assert body["service"] == "prediction log"
        assert "prediction log cannot be written" in body["detail"] and "No space left on device" in body["detail"]
        assert "predictions" not in body  # never an answer that was not logged
        health = client.get("/health").json()
        assert health["status"] == "degraded" and "No space left on device" in health["prediction_log"]
        assert client.post("/predict", json=batch).status_code == 503  # still full: still refused
        metrics = client.get("/metrics").text
        assert "conveyor_log_write_failed_rows_total 200.0" in metrics
        assert 'conveyor_requests_total{method="POST",path="/predict",status="503"} 2.0' in metrics

        filler.unlink()
        again = client.post("/predict", json=batch)
        assert again.status_code == 200, again.text
        health = client.get("/health").json()
        assert health["status"] == "ok" and health["prediction_log"] == "ok"

    log.close()
    answered = [first.json()["predictions"][0]["request_id"]] + [p["request_id"] for p in again.json()["predictions"]]
    assert [r.request_id for r in log.records()] == answered  # exactly the answered ones, each on a line of its own


class FailingLog:
    """A log whose writes fail with ENOSPC while `full` is set (a stand-in for a full disk)."""

    def __init__(self, folder: Path) -> None:
        self.log = PredictionLog(folder)
        self.full = False

    def append(self, records: Sequence[PredictionRecord]) -> None:
        if self.full:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.log.append(records)


def test_a_log_that_fails_is_503_and_recovers(tmp_path: Path) -> None:
    log = FailingLog(tmp_path / "predictions")
    app = create_app(tiny_config(), ServiceParts(TinyModel(), TinyStore(), log))
    with uvicorn_server(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        log.full = True
        refused = client.post("/predict", json={"entities": [1, 2]})
        assert refused.status_code == 503 and "No space left on device" in refused.json()["detail"]
        assert client.get("/health").json()["status"] == "degraded"
        log.full = False
        assert client.post("/predict", json={"entities": [1]}).status_code == 200
        assert client.get("/health").json()["status"] == "ok"
    assert len(log.log.records()) == 1


def test_with_several_models_health_names_the_one_whose_log_fails(tmp_path: Path) -> None:
    from conveyor.stages.serving import create_models_app

    failing, fine = FailingLog(tmp_path / "a"), FailingLog(tmp_path / "b")
    apps = {name: create_app(tiny_config(), ServiceParts(TinyModel(), TinyStore(), log))
            for name, log in (("a", failing), ("b", fine))}
    with uvicorn_server(create_models_app(tiny_config(), apps)) as url, httpx.Client(base_url=url, timeout=30) as client:
        failing.full = True
        assert client.post("/models/a/predict", json={"entities": [1]}).status_code == 503
        assert client.post("/models/b/predict", json={"entities": [1]}).status_code == 200
        health = client.get("/health").json()
        assert health["status"] == "degraded"
        assert "No space left on device" in health["models"]["a"]["prediction_log"]
        assert health["models"]["b"]["prediction_log"] == "ok"
        failing.full = False
        assert client.post("/models/a/predict", json={"entities": [1]}).status_code == 200
        assert client.get("/health").json()["status"] == "ok"
