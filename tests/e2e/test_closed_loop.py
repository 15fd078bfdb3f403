"""The closed loop on the bike data: a model trained on 2011 serves 2012 over HTTP, labels arrive,
drift and degradation are flagged, `monitor --act` retrains on the first half of 2012, and the
new champion, hot-swapped into the running server, beats the old one on the second half."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import Server, bike_rows, conveyor, feature_row, make_bike_project, stage_result

pytestmark = pytest.mark.slow
HALF = 500
"""Labeled served rows of each half of 2012 (the older half trains, the newer is the fresh comparison)."""
EVAL = 400
"""Further rows of the second half of 2012, never labeled: both champions answer them over HTTP."""
SECRET = "s3cret-alert-token"


class Receiver:
    """A real webhook receiver on 127.0.0.1: records every POST (body and headers)."""

    def __init__(self, port: int) -> None:
        self.posts: list[tuple[dict[str, Any], dict[str, str]]] = []
        self.arrived = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the stdlib's name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.posts.append((json.loads(body), dict(self.headers)))
                self.send_response(204)
                self.end_headers()
                outer.arrived.set()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{port}/alerts"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _chronological(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    return sorted(rows, key=lambda r: (r["dteday"], int(r["hr"])))


def _serve(server: Server, rows: list[dict[str, str]]) -> list[tuple[str, float, float]]:
    """(request id, prediction, true cnt) of every row, in order."""
    features = httpx.get(f"{server.url}/health").json()["features"]
    answers = []
    for start in range(0, len(rows), 250):
        chunk = rows[start : start + 250]
        reply = httpx.post(f"{server.url}/predict", json={"rows": [feature_row(r, features) for r in chunk]}, timeout=60)
        reply.raise_for_status()
        answers += [(p["request_id"], p["prediction"], float(r["cnt"])) for p, r in zip(reply.json()["predictions"], chunk)]
    return answers


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with Receiver(30017) as running:
        yield running


def test_act_retrains_on_2012_and_the_new_champion_wins(tmp_path: Path, receiver: Receiver,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from sklearn.metrics import r2_score

    rows = bike_rows()
    rng = random.Random(11)
    first = _chronological(rng.sample([r for r in rows if r["yr"] == "1" and int(r["mnth"]) <= 6], HALF))
    second_all = [r for r in rows if r["yr"] == "1" and int(r["mnth"]) > 6]
    picked = rng.sample(range(len(second_all)), HALF + EVAL)
    second = _chronological([second_all[i] for i in picked[:HALF]])
    held = [second_all[i] for i in picked[HALF:]]

    project = make_bike_project(tmp_path / "bike", [r for r in rows if r["yr"] == "0"], name="bike-loop")
    config = yaml.safe_load((project / "conveyor.yaml").read_text())
    config["serving"]["reload_s"] = 0.5
    config["monitoring"].update(on_drift="retrain", on_degraded="retrain", fresh_share=0.5,
                                webhook={"url": receiver.url, "secret_env": "LOOP_ALERT_SECRET"})
    (project / "conveyor.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    conveyor("run", "-C", str(project), "--no-search")
    monkeypatch.setenv("LOOP_ALERT_SECRET", SECRET)

    server = Server(project).start()
    try:
        old_version = httpx.get(f"{server.url}/health").json()["model"]["version"]
        labeled = _serve(server, first) + _serve(server, second)
        old_answers = _serve(server, held)  # the 2011 champion on unseen rows of the second half
        (tmp_path / "labels.csv").write_text("request_id,cnt\n" + "".join(f"{rid},{t:g}\n" for rid, _, t in labeled))
        conveyor("labels", "add", str(tmp_path / "labels.csv"), "-C", str(project))

        acted = conveyor("monitor", "-C", str(project), "--act", "--no-search", timeout=900)
        report = json.loads((project / "reports" / "drift.json").read_text())
        assert report["verdict"] == "drift" and report["performance"]["degraded"] is True, report["performance"]
        assert "retraining (drift:" in acted.stdout and "the source plus 500 labeled served rows" in acted.stdout

        records = sorted((project / ".conveyor" / "loop").glob("*.json"))
        assert len(records) == 1
        record = json.loads(records[0].read_text())
        retrain, decision = record["retrain"], record["decision"]
        assert record["action"] == "retrain" and record["why"].startswith("drift: ")
        assert retrain["appended_rows"] == HALF and retrain["fresh_rows"] == HALF
        assert retrain["appended"]["first_request_id"] == labeled[0][0]
        assert retrain["appended"]["last_request_id"] == labeled[HALF - 1][0]
        assert retrain["fresh"]["first_request_id"] == labeled[HALF][0]
        assert decision["promoted"] is True and decision["champion_version"] == old_version, decision
        assert decision["challenger_score"] > decision["champion_score"], decision
        new_version = decision["champion"]
        assert new_version != old_version

        # the fresh comparison is what the registry and the server see: the champion's own fresh r2
        fresh = labeled[HALF:]
        assert decision["champion_score"] == pytest.approx(r2_score([t for *_, t in fresh], [p for _, p, _ in fresh]))

        # the snapshot is the source's bytes, then the 500 older labeled rows
        snapshot = project / retrain["snapshot"]
        source = (project / "bike_sharing_hourly.csv").read_bytes()
        assert snapshot.read_bytes().startswith(source)
        assert len(snapshot.read_bytes()[len(source):].splitlines()) == HALF

        # /metrics exports the last monitor run (read at scrape time) for Prometheus to alert on
        scraped = httpx.get(f"{server.url}/metrics").text
        assert f'conveyor_drift_detected{{model="bike-loop",version="{old_version}"}} 1.0' in scraped
        assert f'conveyor_feature_drifted{{feature="yr",model="bike-loop",version="{old_version}"}} 1.0' in scraped
        assert f'conveyor_performance_degraded{{model="bike-loop",version="{old_version}"}} 1.0' in scraped

        # the running server follows @champion on its own (serving.reload_s)
        deadline = time.monotonic() + 60
        while httpx.get(f"{server.url}/health").json()["model"]["version"] != new_version:
            assert time.monotonic() < deadline, "the server did not hot-swap to the new champion"
            time.sleep(0.2)
        new_answers = _serve(server, held)
    finally:
        server.stop()
    truth = [t for *_, t in old_answers]
    old_r2 = r2_score(truth, [p for _, p, _ in old_answers])
    new_r2 = r2_score(truth, [p for _, p, _ in new_answers])
    assert new_r2 > old_r2 + 0.1, (old_r2, new_r2)

    # the alert reached the receiver, with the secret header and the decision
    assert receiver.arrived.wait(10)
    body, headers = receiver.posts[-1]
    assert body["action"] == "retrain" and body["decision"]["promoted"] is True
    assert {k.lower(): v for k, v in headers.items()}["x-conveyor-secret"] == SECRET
    assert SECRET not in records[0].read_text()

    monkeypatch.setenv("COLUMNS", "400")  # the tables unwrapped: one line per row
    models = conveyor("models", "-C", str(project)).stdout
    assert "retrained (drift:" in models and f"v{old_version} -> v{new_version}" in models
    assert "monitor --act" in models and "promoted" in models
    lineage = conveyor("lineage", "--model", new_version, "-C", str(project)).stdout
    assert f"retrain {record['at'][:16]}" in lineage and retrain["snapshot"] in lineage
    assert f"{decision['challenger_score']:.4f} vs v{old_version} {decision['champion_score']:.4f}" in lineage
    assert f"{8645 + HALF} rows" in lineage  # 2011: 8645 rows, and the 500 appended ones

    # a plain `conveyor run` (the 2011 source only) keeps the retrained champion: its candidate
    # meets it on the fresh labeled rows the champion won on, not on a 2011 test split it trained on
    rerun = conveyor("run", "-C", str(project), "--no-search").stdout
    gate = stage_result(project, "promote")
    assert gate.promoted is False and gate.champion == new_version, gate
    assert gate.compared_on == f"the {HALF} fresh labeled rows v{new_version} was promoted on", gate
    assert gate.champion_score == pytest.approx(decision["challenger_score"], abs=1e-9)
    assert gate.candidate_compared_score == pytest.approx(decision["champion_score"], abs=1e-9)  # the 2011 model
    assert gate.candidate_compared_score < gate.champion_score
    assert f"champion stays v{new_version}" in " ".join(rerun.split())
