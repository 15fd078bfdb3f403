"""HTTP hygiene of `conveyor serve`, in a real uvicorn process over a real socket, on the trained demo.

Auth before the body, 415, 413, 422 without echo, NaN/Infinity/out-of-range numbers, the
OpenAPI contract, and a prediction log that stays standard JSON and survives a torn tail.
"""

from __future__ import annotations

import json
import shutil
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import Server, bike_rows, feature_row

pytestmark = pytest.mark.slow

JSON = {"content-type": "application/json"}


def _copy(bike_project: Path, folder: Path, **serving: Any) -> Path:
    """The trained demo in a folder of its own (no predictions yet), with serving settings changed."""
    shutil.copytree(bike_project, folder, ignore=shutil.ignore_patterns("predictions", "server-*.log"))
    config = yaml.safe_load((folder / "conveyor.yaml").read_text())
    config["serving"].update(serving)
    (folder / "conveyor.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return folder  # Feast and MLflow paths still point at the original, which is still there


def _raw_post(url: str, headers: dict[str, str], body: bytes = b"") -> tuple[int, bytes]:
    """A POST with exactly these headers (a Content-Length that does not match the body, say)."""
    host, port = url.removeprefix("http://").split(":")
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(f"POST /predict HTTP/1.1\r\nHost: {host}\r\n{head}\r\n".encode() + body)
        data = b""
        while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < _length(data):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, data.split(b"\r\n\r\n", 1)[1]


def _length(data: bytes) -> int:
    for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":", 1)[1])
    return 0


def _strict(line: str) -> Any:
    def reject(name: str) -> Any:
        raise AssertionError(f"non-standard JSON: {name} in {line[:200]}")

    return json.loads(line, parse_constant=reject)


@pytest.fixture(scope="module")
def features(bike_server: Server) -> list[str]:
    return list(httpx.get(f"{bike_server.url}/health").json()["features"])


def test_non_json_is_415_and_a_large_body_is_413_before_it_is_read(bike_server: Server, features: list[str]) -> None:
    good = {"rows": [feature_row(bike_rows()[0], features)]}
    for content_type in ("text/plain", "application/x-www-form-urlencoded"):
        answer = httpx.post(f"{bike_server.url}/predict", content=json.dumps(good), headers={"content-type": content_type})
        assert answer.status_code == 415, content_type
    assert httpx.post(f"{bike_server.url}/predict", json=good).status_code == 200
    # 40 MB announced, nothing sent: the answer comes from the headers alone
    status, body = _raw_post(bike_server.url, {**JSON, "Content-Length": str(40 * 2**20)})
    assert status == 413 and b"over the limit" in body


def test_422_names_the_field_and_echoes_nothing(bike_server: Server, features: list[str]) -> None:
    row = feature_row(bike_rows()[0], features)
    marker = "echo-me-not"
    rows = [{**row, "note": marker * 10}] * 10_001  # serving.max_batch is 10000
    answer = httpx.post(f"{bike_server.url}/predict", json={"rows": rows}, timeout=60)
    assert answer.status_code == 422
    assert len(answer.content) < 1000 and marker not in answer.text and '"input"' not in answer.text
    assert answer.json()["detail"][0]["loc"] == ["body", "rows"]
    wrong = httpx.post(f"{bike_server.url}/predict", json={"rows": [row, {**row, "temp": marker}]})
    assert wrong.json()["detail"] == [
        {"type": "float_type", "loc": ["body", "rows", 1, "temp"], "msg": "Input should be a valid number"}
    ]


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_nan_and_infinity_are_422_naming_the_field(bike_server: Server, features: list[str], literal: str) -> None:
    text = json.dumps({"rows": [{**feature_row(bike_rows()[0], features), "hum": 0.123}]})
    answer = httpx.post(f"{bike_server.url}/predict", content=text.replace("0.123", literal), headers=JSON)
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"][0] == {
        "type": "finite_number", "loc": ["body", "rows", 0, "hum"], "msg": "Input should be a finite number"
    }


def test_out_of_range_integers_are_4xx_not_500(bike_server: Server, features: list[str]) -> None:
    for key in (2**63, 2**64 + 5, -(2**63) - 1, 10**30):
        answer = httpx.post(f"{bike_server.url}/predict", content=json.dumps({"entities": [key]}), headers=JSON)
        assert answer.status_code == 422 and answer.json()["detail"][0]["loc"] == ["body", "entities", 0], key
    assert httpx.post(f"{bike_server.url}/predict", json={"entities": [2**63 - 1]}).status_code == 404
    row = {**feature_row(bike_rows()[0], features), "season": 2**63}
    answer = httpx.post(f"{bike_server.url}/predict", content=json.dumps({"rows": [row]}), headers=JSON)
    assert answer.status_code == 422 and answer.json()["detail"][0]["loc"] == ["body", "rows", 0, "season"]


def test_openapi_has_one_of_rows_or_entities(bike_server: Server) -> None:
    spec = httpx.get(f"{bike_server.url}/openapi.json").json()
    ref = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    one_of = spec["components"]["schemas"][ref.rsplit("/", 1)[1]]["oneOf"]
    assert [o["$ref"].rsplit("/", 1)[1] for o in one_of] == ["RowsRequest", "EntitiesRequest"]
    assert "security" not in spec["paths"]["/predict"]["post"]  # no key configured for this project


def test_every_logged_line_is_standard_json(bike_server: Server) -> None:
    httpx.post(f"{bike_server.url}/predict", json={"entities": [1, 2, 3]}).raise_for_status()
    lines = [line for path in sorted((bike_server.project / "predictions").glob("*.jsonl"))
             for line in path.read_text().splitlines()]
    assert lines
    for line in lines:
        _strict(line)


def test_auth_is_checked_before_the_body(bike_project: Path, tmp_path: Path) -> None:
    project = _copy(bike_project, tmp_path / "secured", api_key_env="CONVEYOR_TEST_KEY")
    server = Server(project, env={"CONVEYOR_TEST_KEY": "s3cret"}).start()
    try:
        url = f"{server.url}/predict"
        for method in ("GET", "POST", "PUT", "DELETE"):
            answer = httpx.request(method, url, content=b'{"rows": [{"temp": "x"}]}', headers=JSON)
            assert answer.status_code == 401, (method, answer.text)
            assert "rows" not in answer.text and answer.headers["www-authenticate"] == "Bearer"
        assert httpx.post(url, content=b"x", headers={"content-type": "text/plain"}).status_code == 401
        status, _ = _raw_post(server.url, {**JSON, "Content-Length": str(40 * 2**20)})
        assert status == 401  # not a 413: nothing about the request is answered before the key
        key = {"X-API-Key": "s3cret"}
        assert httpx.post(url, json={"rows": [{"temp": "x"}]}, headers=key).status_code == 422
        assert httpx.post(url, json={"entities": [5]}, headers={"Authorization": "Bearer s3cret"}).status_code == 200
        spec = httpx.get(f"{server.url}/openapi.json").json()
        schemes = spec["components"]["securitySchemes"].values()
        assert {s["type"] for s in schemes} == {"http", "apiKey"}
        assert len(spec["paths"]["/predict"]["post"]["security"]) == 2
    finally:
        server.stop()


def test_a_torn_log_tail_is_repaired_after_a_crash(bike_project: Path, tmp_path: Path) -> None:
    from conveyor.stages.monitoring import PredictionLog

    project = _copy(bike_project, tmp_path / "torn")
    log = PredictionLog(project / "predictions")
    server = Server(project).start()
    try:
        served = httpx.post(f"{server.url}/predict", json={"entities": [10, 11, 12]}).json()["predictions"]
        server.kill()
    finally:
        server.stop()
    day = project / "predictions" / f"{datetime.now(UTC).strftime('%Y-%m-%d')}.jsonl"
    with day.open("ab") as handle:
        handle.write(b'{"request_id":"torn","prediction":1')  # power lost mid-write: no newline
    restarted = Server(project).start()
    try:
        again = httpx.post(f"{restarted.url}/predict", json={"entities": [13]}).json()["predictions"]
    finally:
        restarted.stop()
    ids = [p["request_id"] for p in served + again]
    assert [r.request_id for r in log.records()] == ids  # the first record after the restart is readable
    lines = day.read_text().splitlines()
    assert lines[3] == '{"request_id":"torn","prediction":1' and len(lines) == 5
    for line in lines[:3] + lines[4:]:
        _strict(line)
