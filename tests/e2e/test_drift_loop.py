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
    rows = [line.split("│")[1].strip() for line in result.stdout.splitlines() if line.startswith("│")]
    assert rows.count("(model output)") == 1 and "prediction" not in rows  # the output's row, named as such
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


def _serve_answers(server: Server, rows: list[dict]) -> list[tuple[str, float, float]]:
    """(request id, prediction, true cnt) of every row served."""
    features = httpx.get(f"{server.url}/health").json()["features"]
    answers = []
    for start in range(0, len(rows), 200):
        chunk = rows[start : start + 200]
        reply = httpx.post(f"{server.url}/predict", json={"rows": [feature_row(r, features) for r in chunk]}, timeout=60)
        reply.raise_for_status()
        answers += [(p["request_id"], p["prediction"], float(r["cnt"])) for p, r in zip(reply.json()["predictions"], chunk)]
    return answers


def _write_labels(path: Path, answers: list[tuple[str, float, float]], extra: str = "") -> Path:
    path.write_text("request_id,cnt\n" + "".join(f"{rid},{truth:g}\n" for rid, _, truth in answers) + extra)
    return path


def test_labels_score_the_served_predictions(project_2011: tuple, tmp_path: Path) -> None:
    """`conveyor labels add` joins true counts to served predictions by request id; `monitor`
    scores them against the champion's test r2: 2011 hold-out holds, 2012 (a year of growth the
    model never saw) is degraded. Bad label rows are set aside with their line, never dropped silently."""
    from sklearn.metrics import r2_score

    project, server, held_out, year_2012 = project_2011
    answers_2011 = _serve_answers(server, held_out)
    bad = "nope,5\n" + f"{answers_2011[0][0]},lots\n" + f"{answers_2011[1][0]},inf\n" + ",7\n"
    added = conveyor("labels", "add", str(_write_labels(tmp_path / "y2011.csv", answers_2011, bad)), "-C", str(project))
    assert f"{SERVED} of {SERVED + 4} labels added" in added.stdout and "4 rejected" in added.stdout
    assert f"line {SERVED + 2}: no logged prediction has this request id ('nope')" in added.stdout
    rejected = next((project / "labels").glob("rejected-*.csv")).read_text().splitlines()
    assert len(rejected) == 5 and rejected[0].startswith("_line,_reason,request_id,cnt")
    assert any(r.startswith(f"{SERVED + 3},the label is not a number: 'lots'") for r in rejected)

    conveyor("monitor", "-C", str(project))
    perf = json.loads((project / "reports" / "drift.json").read_text())["performance"]
    assert perf["n_labeled"] == SERVED and perf["metric"] == "r2"
    assert perf["value"] == pytest.approx(r2_score([t for *_, t in answers_2011], [p for _, p, _ in answers_2011]))
    assert perf["test_value"] is not None and perf["degraded"] is False, perf
    assert [w["n_labeled"] for w in perf["windows"]] == [SERVED] and perf["window"] == "1d"  # all served today
    again = conveyor("labels", "add", str(tmp_path / "y2011.csv"), "-C", str(project))  # the same file: nothing new
    assert f"0 of {SERVED + 4} labels added" in again.stdout and f"{SERVED} already recorded (skipped)" in again.stdout

    answers_2012 = _serve_answers(server, year_2012)
    conveyor("labels", "add", str(_write_labels(tmp_path / "y2012.csv", answers_2012)), "-C", str(project))
    failing = conveyor("monitor", "-C", str(project), "--fail-on-degraded", check=False)
    perf = json.loads((project / "reports" / "drift.json").read_text())["performance"]
    both = answers_2011 + answers_2012
    assert perf["n_labeled"] == 2 * SERVED
    assert perf["value"] == pytest.approx(r2_score([t for *_, t in both], [p for _, p, _ in both]))
    assert perf["degraded"] is True and failing.returncode == 4, (perf, failing.stdout)
    assert "degraded" in failing.stdout and "Performance on labeled predictions" in (project / "reports" / "drift.html").read_text()


def test_a_value_never_seen_in_training_is_answered_as_missing_and_flagged(project_2011: tuple) -> None:
    """Over `conveyor serve`: season 7 and a temperature ten times the training maximum are answered
    as a missing season and temperature are, with a warning in the answer, /metrics and the log."""
    project, server, held_out, _ = project_2011
    features = httpx.get(f"{server.url}/health").json()["features"]
    row = feature_row(held_out[0], features)
    rows = [row, {**row, "season": 7}, {**row, "season": None}, {**row, "temp": 10.0}, {**row, "temp": None}]
    answer = httpx.post(f"{server.url}/predict", json={"rows": rows}, timeout=60)
    assert answer.status_code == 200, answer.text
    predictions = answer.json()["predictions"]
    assert [p.get("warnings") for p in predictions] == [
        None, {"season": "unseen category"}, None, {"temp": "above the training range"}, None]
    assert predictions[1]["prediction"] == predictions[2]["prediction"]
    assert predictions[3]["prediction"] == predictions[4]["prediction"]
    metrics = httpx.get(f"{server.url}/metrics").text
    assert 'conveyor_unknown_values_total{feature="season",kind="unseen category"} 1.0' in metrics
    logged = [json.loads(line) for path in sorted((project / "predictions").glob("*.jsonl"))
              for line in path.read_text().splitlines()]
    flagged = {d["request_id"]: d.get("warnings") for d in logged}
    assert [flagged[p["request_id"]] for p in predictions] == [p.get("warnings") for p in predictions]
