"""Alerts where teams look: Prometheus rules (checked by promtool), the Grafana dashboard (checked
against Grafana's dashboard JSON model), monitor gauges on /metrics, and the webhook (a real
HTTP receiver on 127.0.0.1)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
import warnings
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from conveyor.core import load_config
from conveyor.core.config import WebhookConfig
from conveyor.core.workspace import Workspace
from conveyor.stages.monitoring import GAUGES, PredictionLog, monitor_gauges, post_alert, write_alerts
from conveyor.stages.serving import ServiceParts, create_app
from tests.unit.test_serving_app import TinyModel, TinyStore, tiny_config

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "bike-sharing" / "conveyor.yaml"
SCHEMA = ROOT / "tests" / "data" / "grafana-dashboard.schema.json"
promtool = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(  # CI installs it (.ci/run): there a missing promtool fails, never skips
    promtool is None and not os.environ.get("CI"), reason="promtool not installed (apt-get install prometheus)")


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return write_alerts(load_config(EXAMPLE), tmp_path_factory.mktemp("alerts"))


@needs_promtool
def test_rules_pass_promtool_check(written: tuple[Path, Path]) -> None:
    rules, _ = written
    checked = subprocess.run([str(promtool), "check", "rules", str(rules)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 7 rules found" in checked.stdout


@needs_promtool
def test_rules_fire_on_the_monitor_gauges(written: tuple[Path, Path], tmp_path: Path) -> None:
    """promtool's own rule tests: drift and degradation fire on the gauges /metrics exports, and not on zeros."""
    rules, _ = written
    series = 'conveyor_drift_detected{job="conveyor",model="bike-sharing",version="2"}'
    degraded = 'conveyor_performance_degraded{job="conveyor",model="bike-sharing",version="2"}'
    other = 'conveyor_drift_detected{job="conveyor",model="another",version="1"}'
    spec = {
        "rule_files": [str(rules)],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": [{"series": series, "values": "0 0 1 1"}, {"series": degraded, "values": "0 1 1 1"},
                             {"series": other, "values": "1 1 1 1"}],
            "alert_rule_test": [
                {"eval_time": "1m", "alertname": "ConveyorDrift", "exp_alerts": []},
                {"eval_time": "3m", "alertname": "ConveyorDrift", "exp_alerts": [{
                    "exp_labels": {"severity": "warning", "model": "bike-sharing", "version": "2"},
                    "exp_annotations": {
                        "summary": "bike-sharing v2: served traffic drifted from the training data",
                        "description": "The last `conveyor monitor` found dataset drift; see reports/drift.html. "
                                       "Policy: monitoring.on_drift = none."}}]},
                {"eval_time": "2m", "alertname": "ConveyorPerformanceDegraded", "exp_alerts": [{
                    "exp_labels": {"severity": "critical", "model": "bike-sharing", "version": "2"},
                    "exp_annotations": {
                        "summary": "bike-sharing v2: labeled predictions score degraded",
                        "description": "The primary metric on labeled traffic is worse than the test score by more "
                                       "than 10% of it. Policy: monitoring.on_degraded = none."}}]},
            ],
        }],
    }
    test_file = tmp_path / "rules-test.yml"
    test_file.write_text(json.dumps(spec))  # JSON is YAML
    tested = subprocess.run([str(promtool), "test", "rules", str(test_file)], capture_output=True, text=True)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_dashboard_follows_grafanas_json_model(written: tuple[Path, Path]) -> None:
    import jsonschema

    board = json.loads(written[1].read_text())
    jsonschema.validate(board, json.loads(SCHEMA.read_text()))
    assert len({p["id"] for p in board["panels"]}) == len(board["panels"])
    for panel in board["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        assert len({t["refId"] for t in panel["targets"]}) == len(panel["targets"])
    titles = " ".join(p["title"].lower() for p in board["panels"])
    for topic in ("request rate", "latency", "batch", "prediction distribution", "drift", "performance"):
        assert topic in titles


def test_the_schema_refuses_a_broken_dashboard(written: tuple[Path, Path]) -> None:
    import jsonschema

    schema = json.loads(SCHEMA.read_text())
    board = json.loads(written[1].read_text())
    broken = [
        {**board, "panels": [{**board["panels"][0], "gridPos": {"x": 0, "y": 0, "w": 30, "h": 8}}]},
        {**board, "panels": [{k: v for k, v in board["panels"][0].items() if k != "type"}]},
        {**board, "schemaVersion": "39"},
        {k: v for k, v in board.items() if k != "title"},
        {**board, "panels": [{**board["panels"][0], "targets": [{"expr": "up"}]}]},  # no refId
    ]
    for bad in broken:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)


def _report(drifted: bool, psi: float, missing: float) -> dict[str, Any]:
    feature = {"name": "temp", "kind": "numeric", "drifted": drifted, "psi": psi, "effect": 0.3,
               "current_missing": missing}
    return {"model": "tiny", "model_version": "3", "checked_at": "2026-12-07T03:00:00+00:00", "n_current": 500,
            "verdict": "drift" if drifted else "no drift", "drifted_share": 0.25 if drifted else 0.0,
            "features": [feature, {**feature, "name": "season", "drifted": False, "psi": 0.01, "effect": None}],
            "prediction": {**feature, "name": "__prediction", "drifted": False},
            "performance": {"n_labeled": 80, "metric": "r2", "value": 0.61, "test_value": 0.82, "degraded": True}}


def _metrics_text(client: TestClient) -> str:
    reply = client.get("/metrics")
    assert reply.status_code == 200
    return reply.text


def test_metrics_export_the_last_monitor_run(tmp_path: Path) -> None:
    config = tiny_config()
    workspace = Workspace(tmp_path)
    parts = ServiceParts(TinyModel(), TinyStore(), PredictionLog(tmp_path / "predictions"),
                         monitor_gauges=monitor_gauges(config, workspace), monitor_help=GAUGES)
    client = TestClient(create_app(config, parts))
    assert "conveyor_drift_detected" not in _metrics_text(client)  # no monitor run yet: no figures, not zeros

    report = workspace.reports / "drift.json"
    report.parent.mkdir(parents=True)
    report.write_text(json.dumps(_report(True, 0.42, 0.3)))
    text = _metrics_text(client)
    assert 'conveyor_drift_detected{model="tiny",version="3"} 1.0' in text
    assert 'conveyor_feature_drifted{feature="temp",model="tiny",version="3"} 1.0' in text
    assert 'conveyor_feature_drift_psi{feature="temp",model="tiny",version="3"} 0.42' in text
    assert 'conveyor_feature_missing_share{feature="temp",model="tiny",version="3"} 0.3' in text
    assert 'conveyor_feature_drift_effect{feature="season"' not in text  # no figure: no sample
    assert 'conveyor_performance{metric="r2",model="tiny",version="3"} 0.61' in text
    assert 'conveyor_performance_degraded{model="tiny",version="3"} 1.0' in text
    assert "# HELP conveyor_feature_drift_psi Population stability index" in text

    report.write_text(json.dumps(_report(False, 0.05, 0.0)) + " ")  # a new run: read again on change
    text = _metrics_text(client)
    assert 'conveyor_drift_detected{model="tiny",version="3"} 0.0' in text
    assert 'conveyor_feature_drift_psi{feature="temp",model="tiny",version="3"} 0.05' in text


def test_every_dashboard_and_rule_metric_is_exported(written: tuple[Path, Path], tmp_path: Path) -> None:
    """The dashboard and the rules query only names a server's /metrics has (service and monitor gauges)."""
    config = tiny_config()
    workspace = Workspace(tmp_path)
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "drift.json").write_text(json.dumps(_report(True, 0.42, 0.3)))
    parts = ServiceParts(TinyModel(), TinyStore(), PredictionLog(tmp_path / "predictions"),
                         monitor_gauges=monitor_gauges(config, workspace), monitor_help=GAUGES)
    client = TestClient(create_app(config, parts))
    client.post("/predict", json={"rows": [{"temp": 1.0, "wind": 2.0, "season": 1, "weather": "sun"}]})
    exported = set(re.findall(r"^([a-z_]+)(?:\{| )", _metrics_text(client), re.MULTILINE))
    queried = set(re.findall(r"\b(conveyor_[a-z_]+)", written[0].read_text() + written[1].read_text()))
    assert queried and queried <= exported, queried - exported


class Receiver:
    """A webhook receiver on 127.0.0.1 answering each POST with the next status of `script`
    (or, for 'hang', answering only after `hang_s`)."""

    def __init__(self, port: int, script: list[Any], hang_s: float = 0.0) -> None:
        self.posts: list[tuple[dict[str, Any], dict[str, str]]] = []
        outer = self
        self.script = list(script)
        self.release = threading.Event()
        self.hangs_over = 0  # 'hang' requests whose wait is over (released, or hang_s passed)

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the stdlib's name)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.posts.append((body, {k.lower(): v for k, v in self.headers.items()}))
                status = outer.script.pop(0) if outer.script else 204
                if status == "hang":
                    outer.release.wait(hang_s)
                    outer.hangs_over += 1
                    status = 204
                try:
                    self.send_response(status)
                    self.end_headers()
                except OSError:  # the client gave up (timeout)
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Any]:
    made: list[Receiver] = []

    def make(script: list[Any], port: int = 30031, hang_s: float = 0.0) -> Receiver:
        made.append(Receiver(port, script, hang_s))
        return made[-1]

    yield make
    for running in made:
        running.close()


def test_webhook_retries_server_errors_then_delivers(receiver: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_SECRET", "t0ken")
    hook = receiver([500, 503, 204])
    config = WebhookConfig(url=hook.url, secret_env="HOOK_SECRET", retries=3)
    delivery = post_alert(config, {"action": "alert", "why": "drift"}, backoff_s=0.01)
    assert delivery.delivered and delivery.attempts == 3 and delivery.status == 204
    assert [body["why"] for body, _ in hook.posts] == ["drift"] * 3
    assert all(headers["x-conveyor-secret"] == "t0ken" for _, headers in hook.posts)


def test_webhook_does_not_retry_a_refusal(receiver: Any) -> None:
    hook = receiver([403])
    delivery = post_alert(WebhookConfig(url=hook.url, retries=3), {"action": "alert"}, backoff_s=0.01)
    assert not delivery.delivered and delivery.attempts == 1 and delivery.status == 403
    assert "HTTP 403" in delivery.summary()


def test_webhook_times_out_and_gives_up(receiver: Any) -> None:
    hook = receiver(["hang", "hang"], hang_s=60)
    delivery = post_alert(WebhookConfig(url=hook.url, timeout_s=0.3, retries=1), {"action": "alert"}, backoff_s=0.01)
    # both attempts were given up while the receiver still held them: bounded by the timeout, not the receiver
    assert len(hook.posts) == 2 and hook.hangs_over == 0
    assert not delivery.delivered and delivery.attempts == 2 and "Timeout" in delivery.error


def test_webhook_unreachable_is_reported_not_raised() -> None:
    delivery = post_alert(WebhookConfig(url="http://127.0.0.1:30099/none", retries=1), {"a": 1}, backoff_s=0.01)
    assert not delivery.delivered and delivery.status is None and "ConnectError" in delivery.error


def test_webhook_secret_env_must_be_set(monkeypatch: pytest.MonkeyPatch) -> None:
    from conveyor.core.errors import ConfigError

    monkeypatch.delenv("HOOK_SECRET_UNSET", raising=False)
    with pytest.raises(ConfigError, match="HOOK_SECRET_UNSET, which is not set"):
        post_alert(WebhookConfig(url="http://127.0.0.1:30099/x", secret_env="HOOK_SECRET_UNSET"), {})
