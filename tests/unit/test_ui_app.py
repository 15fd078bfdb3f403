"""The project page's app on a project that has not run yet: what it refuses, what it escapes,
and the live-service figures parsed from a real `/metrics` over HTTP."""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from starlette.exceptions import StarletteDeprecationWarning

with warnings.catch_warnings():  # starlette's note about httpx, not ours
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

from tests.conftest import conveyor

HOSTILE = "<script>alert(1)</script>"

METRICS = """\
# TYPE conveyor_requests counter
conveyor_requests_total{method="POST",path="/predict",status="200"} 9.0
conveyor_requests_total{method="POST",path="/predict",status="422"} 1.0
conveyor_requests_total{method="GET",path="/health",status="200"} 50.0
# TYPE conveyor_request_latency_seconds histogram
conveyor_request_latency_seconds_bucket{method="POST",path="/predict",le="0.001"} 2.0
conveyor_request_latency_seconds_bucket{method="POST",path="/predict",le="0.005"} 9.0
conveyor_request_latency_seconds_bucket{method="POST",path="/predict",le="+Inf"} 10.0
conveyor_request_latency_seconds_count{method="POST",path="/predict"} 10.0
conveyor_request_latency_seconds_sum{method="POST",path="/predict"} 0.03
# TYPE conveyor_batch_rows histogram
conveyor_batch_rows_bucket{le="1.0"} 4.0
conveyor_batch_rows_bucket{le="8.0"} 8.0
conveyor_batch_rows_bucket{le="+Inf"} 8.0
conveyor_batch_rows_count 8.0
conveyor_batch_rows_sum 20.0
# TYPE conveyor_model_info gauge
conveyor_model_info{name="demo",version="3"} 1.0
"""


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    from conveyor.runner import load_project
    from conveyor.runner._ui._app import create_app

    project = tmp_path_factory.mktemp("ui-unit")
    (project / "data.csv").write_text("x,y\n" + "".join(f"{i},{i * 2}\n" for i in range(40)))
    conveyor("init", "--csv", "data.csv", "--target", "y", cwd=project)
    quarantine = project / "data" / "quarantine"
    quarantine.mkdir(parents=True)
    (quarantine / "prepare-abc.csv").write_text(f'line,reason,"{HOSTILE}"\n7,bad value,"""><img src=x>"\n')
    config, workspace = load_project(project)
    app = create_app(config, workspace, serving_url="http://127.0.0.1:9", mlflow_url="http://127.0.0.1:5000")
    return TestClient(app)


def test_the_page_of_a_project_that_has_not_run(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.text.count(">not run<") == 7  # every stage, none ran
    assert "No feature store yet" in page.text and "No registered model yet" in page.text


def test_quarantine_rows_are_escaped_and_only_listed_files_are_read(client: TestClient) -> None:
    page = client.get("/quarantine/prepare-abc.csv")
    assert page.status_code == 200
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text and HOSTILE not in page.text
    assert "&#34;&gt;&lt;img src=x&gt;" in page.text and "<img" not in page.text
    for name in ("..%2Fconveyor.yaml", "%2Fetc%2Fpasswd", "missing.csv"):
        assert client.get(f"/quarantine/{name}").status_code == 404
    assert client.get("/reports/..%2Fconveyor.yaml").status_code == 404
    assert client.get("/static/..%2F_app.py").status_code == 404


def test_a_service_that_does_not_answer_is_not_running(client: TestClient) -> None:
    assert client.get("/api/service").json() == {"running": False, "url": "http://127.0.0.1:9"}


def test_lineage_of_an_unknown_request_names_it(client: TestClient) -> None:
    answer = client.get("/api/lineage", params={"request_id": HOSTILE}).json()
    assert "no logged prediction has request id" in answer["error"]


@pytest.fixture()
def metrics_url() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the standard library's name
            body = METRICS.encode()
            self.send_response(200 if self.path == "/metrics" else 404)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def test_live_figures_from_metrics(metrics_url: str) -> None:
    from conveyor.runner._ui._data import service

    first = service(metrics_url, None)
    assert first["running"] and first["model"] == "demo v3"
    assert first["requests"] == 10 and first["errors"] == 1 and first["rate"] is None
    assert first["latency_p50_ms"] == pytest.approx(5.0) and first["latency_p99_ms"] is None  # above the last bound
    assert first["batch_mean"] == 2.5 and first["batch_p99"] == 8.0
    again = service(metrics_url, {**first, "requests": 4.0, "at": first["at"] - 2.0})
    assert again["rate"] == pytest.approx(6 / (again["at"] - first["at"] + 2.0))

