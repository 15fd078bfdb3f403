"""Real drift: a model trained on 2011 only, served 2011 hold-out rows, then 2012 rows."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import Server, bike_rows, conveyor, feature_row, make_bike_project

pytestmark = pytest.mark.slow
SERVED = 800


@pytest.fixture(scope="module")
def project_2011(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Server, list[dict], list[dict]]]:
    rows = bike_rows()
    year_2011 = [r for r in rows if r["yr"] == "0"]
    year_2012 = [r for r in rows if r["yr"] == "1"]
    rng = random.Random(7)
    held_out_index = set(rng.sample(range(len(year_2011)), SERVED))
    train_rows = [r for i, r in enumerate(year_2011) if i not in held_out_index]
    held_out = [r for i, r in enumerate(year_2011) if i in held_out_index]
    project = make_bike_project(tmp_path_factory.mktemp("bike2011"), train_rows, name="bike-2011")
    conveyor("run", "-C", str(project))
    server = Server(project).start()
    yield project, server, held_out, rng.sample(year_2012, SERVED)
    server.stop()


def _serve(server: Server, rows: list[dict]) -> None:
    features = httpx.get(f"{server.url}/health").json()["features"]
    for start in range(0, len(rows), 200):
        batch = [feature_row(r, features) for r in rows[start : start + 200]]
        httpx.post(f"{server.url}/predict", json={"rows": batch}, timeout=60).raise_for_status()


def _monitor(project: Path) -> dict:
    result = conveyor("monitor", "-C", str(project), "--window", str(SERVED))
    report = json.loads((project / "reports" / "drift.json").read_text())
    assert report["verdict"] in result.stdout
    return report


def test_held_out_2011_rows_do_not_drift(project_2011: tuple) -> None:
    project, server, held_out, _ = project_2011
    _serve(server, held_out)
    report = _monitor(project)
    assert report["n_current"] == SERVED
    assert report["verdict"] == "no drift", [f for f in report["features"] if f["drifted"]]
    html = (project / "reports" / "drift.html").read_text()
    assert "no drift" in html.lower() and html.count("data:image/png;base64,") >= 1


def test_2012_rows_drift(project_2011: tuple) -> None:
    project, server, _, year_2012 = project_2011
    _serve(server, year_2012)
    report = _monitor(project)
    assert report["verdict"] == "drift"
    drifted = {f["name"] for f in report["features"] if f["drifted"]}
    assert "yr" in drifted  # 2012 is a year the model never saw
    failing = conveyor("monitor", "-C", str(project), "--window", str(SERVED), "--fail-on-drift", check=False)
    assert failing.returncode == 3
