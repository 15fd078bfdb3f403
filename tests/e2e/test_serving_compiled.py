"""`conveyor serve` on compiled trees: it answers at once with LightGBM, swaps to the compiled trees
when they are ready (`/health`, `/metrics`), answers as LightGBM does within 1e-9, and a restart
loads the cached object code instead of compiling again. `serving.compiled: false` keeps LightGBM."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import Server, bike_rows, conveyor, feature_row, make_bike_project

pytestmark = pytest.mark.slow

COMPILE_WAIT_S = 180  # an upper bound on compiling this small champion on a busy machine, never waited out when it works


@pytest.fixture(scope="module")
def small_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bike demo on 3,000 rows, with one untuned model of 40 trees: a compile of about a second."""
    project = make_bike_project(tmp_path_factory.mktemp("compiled"), bike_rows()[:3000])
    config = yaml.safe_load((project / "conveyor.yaml").read_text())
    config["training"]["search"]["trials"] = 0
    config["training"]["lightgbm"]["n_estimators"] = 40
    (project / "conveyor.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    conveyor("run", "-C", str(project))
    return project


def _health_when(server: Server, done: str) -> dict[str, Any]:
    """/health once its `compile` is `done` (or no longer `compiling`), polled."""
    deadline = time.monotonic() + COMPILE_WAIT_S
    while True:
        health: dict[str, Any] = httpx.get(f"{server.url}/health", timeout=10).json()
        if health.get("compile") != "compiling":
            assert health.get("compile") == done, health
            return health
        assert time.monotonic() < deadline, f"still compiling after {COMPILE_WAIT_S}s: {server.log.read_text()}"
        time.sleep(0.2)


def _lightgbm_answers(project: Path, rows: list[dict[str, Any]]) -> list[float]:
    """The champion's predictions in this process, by LightGBM."""
    from conveyor.core import Workspace
    from conveyor.core.config import load_config
    from conveyor.stages.training import load_champion

    champion = load_champion(load_config(project / "conveyor.yaml"), Workspace.at(project))
    found: list[float] = champion.model.predict_records(rows)["prediction"]
    return found


def test_the_server_swaps_to_compiled_trees_and_a_restart_reuses_them(small_project: Path) -> None:
    server = Server(small_project).start()
    try:
        features = httpx.get(f"{server.url}/health", timeout=10).json()["features"]
        rows = [feature_row(raw, features) for raw in bike_rows()[3000:3100]]
        rows[3]["temp"] = None  # a missing value
        expected = _lightgbm_answers(small_project, rows)
        first = httpx.post(f"{server.url}/predict", json={"rows": rows}, timeout=60)  # answered, compiled or not
        assert first.status_code == 200, first.text
        assert [p["prediction"] for p in first.json()["predictions"]] == pytest.approx(expected, rel=1e-9)
        health = _health_when(server, "compiled")
        assert health["predictor"] == "compiled" and health["status"] == "ok"
        answer = httpx.post(f"{server.url}/predict", json={"rows": rows}, timeout=60)
        assert answer.status_code == 200, answer.text
        served = [p["prediction"] for p in answer.json()["predictions"]]
        assert served == pytest.approx(expected, rel=1e-9, abs=1e-9)
        assert 'conveyor_predictor_info{predictor="compiled"} 1.0' in httpx.get(f"{server.url}/metrics").text
    finally:
        server.stop()
    [cached] = (small_project / ".conveyor" / "compiled").glob("*.o")
    seen = cached.stat()
    assert "1 of 1 compiled here" in server.log.read_text()

    restarted = Server(small_project).start()
    try:
        _health_when(restarted, "compiled")
        again = httpx.post(f"{restarted.url}/predict", json={"rows": rows}, timeout=60).json()
        assert [p["prediction"] for p in again["predictions"]] == served  # the same object code
    finally:
        restarted.stop()
    assert "0 of 1 compiled here" in restarted.log.read_text()  # loaded from the cache
    now = cached.stat()
    assert (now.st_ino, now.st_mtime_ns) == (seen.st_ino, seen.st_mtime_ns)


def test_compiled_false_keeps_lightgbms_numbers(small_project: Path) -> None:
    config = yaml.safe_load((small_project / "conveyor.yaml").read_text())
    config["serving"]["compiled"] = False
    (small_project / "conveyor.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    server = Server(small_project).start()
    try:
        health = httpx.get(f"{server.url}/health", timeout=10).json()
        rows = [feature_row(raw, health["features"]) for raw in bike_rows()[3100:3150]]
        assert (health["predictor"], health["compile"]) == ("lightgbm", "off")
        answer = httpx.post(f"{server.url}/predict", json={"rows": rows}, timeout=60).json()
        assert [p["prediction"] for p in answer["predictions"]] == _lightgbm_answers(small_project, rows)  # bit for bit
    finally:
        server.stop()
        config["serving"].pop("compiled")
        (small_project / "conveyor.yaml").write_text(yaml.safe_dump(config, sort_keys=False))



def test_two_workers_compile_once_and_both_swap(small_project: Path) -> None:
    """Two uvicorn workers on an empty cache: one compiles under the lock, the other waits and loads it."""
    import shutil

    shutil.rmtree(small_project / ".conveyor" / "compiled", ignore_errors=True)
    server = Server(small_project, "--workers", "2").start()
    try:
        deadline = time.monotonic() + COMPILE_WAIT_S
        while server.log.read_text().count(" compiled here") < 2:  # each worker logs its swap
            assert time.monotonic() < deadline, f"still compiling: {server.log.read_text()}"
            assert httpx.get(f"{server.url}/health", timeout=10).json()["compile"] in ("compiling", "compiled")
            time.sleep(0.2)
        for _ in range(10):  # whichever worker answers (a new connection each time)
            assert httpx.get(f"{server.url}/health", timeout=10).json()["predictor"] == "compiled"
    finally:
        server.stop()
    log = server.log.read_text()
    assert log.count("1 of 1 compiled here") == 1 and log.count("0 of 1 compiled here") == 1, log
    assert len(list((small_project / ".conveyor" / "compiled").glob("*.o"))) == 1


def test_a_hot_swap_swaps_the_new_champion_to_compiled_trees(small_project: Path, tmp_path: Path) -> None:
    """`@champion` moves while serving: the new version starts on LightGBM and swaps to compiled trees
    too (the same booster here, so its object code comes from the cache)."""
    from tests.e2e.test_serving_http import _copy
    from tests.e2e.test_serving_ship import register_again

    project = _copy(small_project, tmp_path / "swap", reload_s=0.5)
    server = Server(project).start()
    try:
        assert _health_when(server, "compiled")["model"]["version"] == "1"
        new = register_again(project)
        deadline = time.monotonic() + COMPILE_WAIT_S
        while True:
            health = httpx.get(f"{server.url}/health", timeout=10).json()
            if health["model"]["version"] == new and health["compile"] != "compiling":
                break
            assert time.monotonic() < deadline, f"not on v{new} compiled: {health}\n{server.log.read_text()}"
            time.sleep(0.2)
        assert (health["predictor"], health["compile"]) == ("compiled", "compiled")
    finally:
        server.stop()
    assert f"bike-sharing v{new} predicts with compiled trees (0 of 1 compiled here" in server.log.read_text()
