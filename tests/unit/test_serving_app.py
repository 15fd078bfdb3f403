"""The prediction app over real HTTP (TestClient), on tiny in-test implementations of its Protocols.

The seams are serving's own Protocols (ServedModel, FeatureReader, PredictionSink): no Feast,
no MLflow here; the prediction log is the real one, in tmp_path. The e2e tests keep real everything.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from starlette.exceptions import StarletteDeprecationWarning

with warnings.catch_warnings():  # Starlette would have httpx2; httpx is what we have, and it works
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

from conveyor.core.config import Config
from conveyor.core.errors import ServingError
from conveyor.stages.monitoring import PredictionLog
from conveyor.stages.serving import ServiceParts, create_app

FEATURES = ["temp", "wind", "season", "weather"]
KEY = "sk3cret-key"


def tiny_config(task: str = "regression", api_key_env: str | None = None, max_batch: int = 100) -> Config:
    return Config.model_validate({
        "name": "tiny",
        "source": {"path": "tiny.csv"},
        "schema": {
            "target": "y",
            "task": task,
            "entity": {"key": "row_id", "generated": True},
            "event_time": {"kind": "ingest_time"},
            "columns": {
                "temp": {"type": "float", "role": "numeric"},
                "wind": {"type": "float", "role": "numeric"},
                "season": {"type": "integer", "role": "categorical"},
                "weather": {"type": "string", "role": "categorical"},
                "y": {"type": "float" if task == "regression" else "integer", "role": "numeric"},
            },
        },
        "cleaning": {"null_values": {"wind": [0]}},
        "serving": {"api_key_env": api_key_env, "max_batch": max_batch},
    })


@dataclass(frozen=True)
class TinyModel:
    """prediction = 10 * temp + season (a missing value counts 0); wind 0 means missing."""

    task: str = "regression"
    name: str = "tiny"
    version: str = "3"
    run_id: str = "run-3"
    features: list[str] = field(default_factory=lambda: list(FEATURES))
    calls: list[bool] = field(default_factory=list)

    def clean(self, row: dict[str, Any]) -> dict[str, Any]:
        return {k: None if k == "wind" and v == 0 else v for k, v in row.items()}

    def screen(self, rows: list[dict[str, Any]]) -> list[dict[str, str]]:
        """season 1-4 and temp up to 50 were seen in training."""
        flags: list[dict[str, str]] = []
        for r in rows:
            flag = {"season": "unseen category"} if r.get("season") not in (None, 1, 2, 3, 4) else {}
            if r.get("temp") is not None and r["temp"] > 50:
                flag["temp"] = "above the training range"
            flags.append(flag)
        return flags

    def predict_records(self, rows: list[dict[str, Any]], *, cleaned: bool) -> dict[str, list[Any]]:
        self.calls.append(cleaned)
        scores = [10 * (r["temp"] or 0) + (r["season"] or 0) for r in rows]
        if self.task == "regression":
            return {"prediction": scores}
        probability = [min(1.0, s / 100) for s in scores]
        return {"prediction": [int(p >= 0.5) for p in probability], "probability": probability}


@dataclass(frozen=True)
class TinyStore:
    key: str = "row_id"
    table: dict[Any, dict[str, Any]] = field(default_factory=lambda: {
        1: {"temp": 1.0, "wind": 3.0, "season": 2, "weather": "sun"},
        2: {"temp": 2.5, "wind": None, "season": 4, "weather": "rain"},
        3: {"temp": float("nan"), "wind": 1.0, "season": 1, "weather": "fog"},  # a NaN in the store
    })

    def get(self, keys: list[Any]) -> list[dict[str, Any] | None]:
        return [self.table.get(k) for k in keys]


@dataclass
class Served:
    client: TestClient
    app: FastAPI
    log: PredictionLog
    model: TinyModel
    folder: Path


@pytest.fixture
def serve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Served]:
    def make(task: str = "regression", api_key: str | None = None, **options: Any) -> Served:
        if api_key is not None:
            monkeypatch.setenv("TINY_KEY", api_key)
        config = tiny_config(task, api_key_env="TINY_KEY" if api_key is not None else None)
        model = TinyModel(task=task)
        log = PredictionLog(tmp_path / "predictions")
        app = create_app(config, ServiceParts(model, TinyStore(), log), **options)
        return Served(TestClient(app), app, log, model, tmp_path / "predictions")

    return make


def row(**changes: Any) -> dict[str, Any]:
    return {"temp": 1.5, "wind": 2.0, "season": 3, "weather": "sun", **changes}


def lines(folder: Path) -> list[str]:
    return [line for path in sorted(folder.glob("*.jsonl")) for line in path.read_text().splitlines()]


def strict_json(text: str) -> Any:
    def reject(name: str) -> Any:
        raise AssertionError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=reject)


# -- predictions ---------------------------------------------------------------------------------


def test_rows_are_cleaned_predicted_and_logged(serve: Callable[..., Served]) -> None:
    s = serve()
    answer = s.client.post("/predict", json={"rows": [row(), row(temp=2.0, wind=0, season=None)]})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["model"] == {"name": "tiny", "version": "3"}
    assert [p["prediction"] for p in body["predictions"]] == [18.0, 20.0]
    assert all(set(p) == {"request_id", "prediction"} for p in body["predictions"])
    assert s.model.calls == [True]  # rows were cleaned by the app, once
    records = s.log.records()
    assert [r.request_id for r in records] == [p["request_id"] for p in body["predictions"]]
    assert records[1].inputs == {"temp": 2.0, "wind": None, "season": None, "weather": "sun"}  # wind 0 is missing
    assert {(r.source, r.model, r.model_version, r.entity) for r in records} == {("rows", "tiny", "3", None)}


def test_entities_read_the_feature_reader(serve: Callable[..., Served]) -> None:
    s = serve()
    answer = s.client.post("/predict", json={"entities": [2, 1, 3]})
    assert answer.status_code == 200, answer.text
    predictions = answer.json()["predictions"]
    assert [(p["entity"], p["prediction"]) for p in predictions] == [(2, 29.0), (1, 12.0), (3, 1.0)]
    records = s.log.records()
    assert [r.entity for r in records] == [2, 1, 3] and {r.source for r in records} == {"entities"}
    assert records[2].inputs["temp"] is None  # the store's NaN is logged as missing, in standard JSON
    for line in lines(s.folder):
        strict_json(line)


def test_classification_answers_and_logs_the_probability(serve: Callable[..., Served]) -> None:
    s = serve(task="classification")
    predictions = s.client.post("/predict", json={"rows": [row(temp=9.0), row(temp=0.1)]}).json()["predictions"]
    assert [(p["prediction"], p["probability"]) for p in predictions] == [(1, 0.93), (0, 0.04)]
    assert [r.probability for r in s.log.records()] == [0.93, 0.04]


def test_unknown_entity_is_404_naming_it(serve: Callable[..., Served]) -> None:
    s = serve()
    answer = s.client.post("/predict", json={"entities": [1, 404, 9]})
    assert answer.status_code == 404
    assert "row_id" in answer.json()["detail"] and "404" in answer.json()["detail"] and "9" in answer.json()["detail"]
    assert s.log.records() == []


def test_health_and_metrics(serve: Callable[..., Served]) -> None:
    s = serve()
    health = s.client.get("/health").json()
    assert health["model"] == {"name": "tiny", "version": "3", "run_id": "run-3"}
    assert health["features"] == FEATURES and health["entity_key"] == "row_id" and health["task"] == "regression"
    s.client.post("/predict", json={"entities": [1, 2]})
    s.client.post("/predict", json={"rows": "nope"})
    s.client.post("/predict", json={"entities": [3]})  # a label set seen before counts on the same series
    text = s.client.get("/metrics").text
    assert 'conveyor_predictions_total{source="entities"} 3.0' in text
    assert 'conveyor_requests_total{method="POST",path="/predict",status="200"} 2.0' in text
    assert 'conveyor_requests_total{method="POST",path="/predict",status="422"} 1.0' in text
    assert 'conveyor_request_latency_seconds_count{method="POST",path="/predict"} 3.0' in text
    assert 'conveyor_model_info{name="tiny",version="3"} 1.0' in text


@dataclass(frozen=True)
class CompilingModel(TinyModel):
    """A model that tells which predictor answers (as the champion does while its trees compile)."""

    predictor: dict[str, str] = field(default_factory=lambda: {"predictor": "lightgbm", "compile": "compiling"})


def test_health_and_metrics_say_which_predictor_answers(tmp_path: Path) -> None:
    model = CompilingModel()
    client = TestClient(create_app(tiny_config(), ServiceParts(model, TinyStore(), PredictionLog(tmp_path))))
    health = client.get("/health").json()
    assert (health["predictor"], health["compile"]) == ("lightgbm", "compiling")
    assert 'conveyor_predictor_info{predictor="lightgbm"} 1.0' in client.get("/metrics").text
    model.predictor.update(predictor="compiled", compile="compiled")  # the swap, as the compile thread makes it
    health = client.get("/health").json()
    assert (health["status"], health["predictor"], health["compile"]) == ("ok", "compiled", "compiled")
    text = client.get("/metrics").text
    assert 'conveyor_predictor_info{predictor="compiled"} 1.0' in text
    assert 'conveyor_predictor_info{predictor="lightgbm"} 0.0' in text
    assert "predictor" not in TestClient(create_app(tiny_config(), ServiceParts(
        TinyModel(), TinyStore(), PredictionLog(tmp_path / "other")))).get("/health").json()  # a model that does not tell


def test_a_champion_of_other_features_is_refused_at_start(tmp_path: Path) -> None:
    model = TinyModel(features=["temp", "season"])
    with pytest.raises(ServingError, match=r"conveyor.yaml declares a regression of .*weather"):
        create_app(tiny_config(), ServiceParts(model, TinyStore(), PredictionLog(tmp_path)))


# -- 422: names the field, echoes nothing -----------------------------------------------------------


def test_422_names_the_field(serve: Callable[..., Served]) -> None:
    s = serve()
    wrong = s.client.post("/predict", json={"rows": [row(), row(temp="warm")]})
    assert wrong.status_code == 422
    assert wrong.json()["detail"] == [
        {"type": "float_type", "loc": ["body", "rows", 1, "temp"], "msg": "Input should be a valid number"}
    ]
    missing = s.client.post("/predict", json={"rows": [{k: v for k, v in row().items() if k != "season"}]})
    assert missing.json()["detail"][0]["loc"] == ["body", "rows", 0, "season"]
    assert missing.json()["detail"][0]["type"] == "missing"
    extra = s.client.post("/predict", json={"entities": [1], "limit": 3})
    assert extra.status_code == 422 and "exactly one" not in extra.text
    assert extra.json()["detail"][0]["loc"] == ["body", "limit"]
    for body in ({"rows": [row()], "entities": [1]}, {}, [1, 2], "rows"):
        both = s.client.post("/predict", json=body)
        assert both.status_code == 422 and "exactly one of 'rows'" in both.text, body
        assert both.json()["detail"][0]["loc"] == ["body"]
    assert s.client.post("/predict", json={"entities": ["x"]}).json()["detail"][0]["loc"] == ["body", "entities", 0]
    assert s.client.post("/predict", json={"rows": [row(hum=None)]}).status_code == 200  # unknown keys are ignored
    assert s.client.post("/predict", json={"rows": [row(wind=None)]}).status_code == 200  # null: missing


def test_422_never_echoes_the_input(serve: Callable[..., Served]) -> None:
    s = serve()
    secret = "do-not-echo-" + "x" * 1000
    answer = s.client.post("/predict", json={"rows": [row(weather=7, note=secret)] * 60 + [row(temp=secret)]})
    assert answer.status_code == 422
    assert secret not in answer.text and '"input"' not in answer.text and '"ctx"' not in answer.text
    detail = answer.json()["detail"]
    assert len(detail) == 51 and detail[-1] == {"type": "too_many_errors", "loc": ["body"], "msg": "11 more errors"}
    too_many = s.client.post("/predict", json={"rows": [row(weather=secret)] * 101})  # max_batch is 100
    assert too_many.status_code == 422 and len(too_many.content) < 1000
    assert too_many.json()["detail"][0]["loc"] == ["body", "rows"]


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_nan_and_infinity_are_422_naming_the_field(serve: Callable[..., Served], literal: str) -> None:
    s = serve()
    text = json.dumps({"rows": [row(), row(temp=0.0)]}).replace('"temp": 0.0', f'"temp": {literal}')
    answer = s.client.post("/predict", content=text, headers={"content-type": "application/json"})
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"] == [
        {"type": "finite_number", "loc": ["body", "rows", 1, "temp"], "msg": "Input should be a finite number"}
    ]
    assert lines(s.folder) == []


def test_out_of_range_numbers_are_422_naming_the_field(serve: Callable[..., Served]) -> None:
    s = serve()
    for body, loc in [
        ({"entities": [1, 2**63]}, ["body", "entities", 1]),
        ({"entities": [-(2**63) - 1]}, ["body", "entities", 0]),
        ({"rows": [row(season=2**63)]}, ["body", "rows", 0, "season"]),
        ({"rows": [row(temp=10**400)]}, ["body", "rows", 0, "temp"]),
    ]:
        answer = s.client.post("/predict", content=json.dumps(body), headers={"content-type": "application/json"})
        assert answer.status_code == 422, (body, answer.text)
        assert answer.json()["detail"][0]["loc"] == loc
    assert s.client.post("/predict", json={"entities": [2**63 - 1]}).status_code == 404  # in range, unknown


# -- HTTP hygiene: auth first, 415, 413 ------------------------------------------------------------


def test_auth_comes_before_the_body(serve: Callable[..., Served]) -> None:
    s = serve(api_key=KEY)
    for method in ("GET", "POST", "PUT", "DELETE", "PATCH"):
        for headers in ({}, {"X-API-Key": "wrong"}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}):
            answer = s.client.request(method, "/predict", content=b"{not json", headers=headers)
            assert answer.status_code == 401, (method, headers, answer.text)
            assert answer.headers["www-authenticate"] == "Bearer"
            assert "rows" not in answer.text  # nothing about the schema
    assert s.client.post("/predict", json={"rows": [{"temp": "x"}]}).status_code == 401
    big = s.client.post("/predict", content=b"x" * 100, headers={"content-type": "text/plain"})
    assert big.status_code == 401
    for headers in ({"X-API-Key": KEY}, {"Authorization": f"Bearer {KEY}"}, {"Authorization": f"bearer {KEY}"}):
        assert s.client.post("/predict", json={"entities": [1]}, headers=headers).status_code == 200, headers
    assert s.client.get("/predict", headers={"X-API-Key": KEY}).status_code == 405
    assert s.client.post("/predict", json={"rows": []}, headers={"X-API-Key": KEY}).status_code == 422
    assert s.client.get("/health").status_code == 200 and s.client.get("/metrics").status_code == 200
    assert len(s.log.records()) == 3


def test_an_empty_key_variable_refuses_to_start(serve: Callable[..., Served]) -> None:
    with pytest.raises(ServingError, match="TINY_KEY"):
        serve(api_key="")


def test_non_json_content_type_is_415(serve: Callable[..., Served]) -> None:
    s = serve()
    body = json.dumps({"entities": [1]})
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
        answer = s.client.post("/predict", content=body, headers={"content-type": content_type})
        assert answer.status_code == 415, content_type
    for content_type in ("application/json", "application/json; charset=utf-8", "application/vnd.api+json"):
        answer = s.client.post("/predict", content=body, headers={"content-type": content_type})
        assert answer.status_code == 200, content_type
    assert s.client.post("/predict", content=body).status_code == 422  # no Content-Type: not parsed as JSON


def test_a_body_over_the_limit_is_413(serve: Callable[..., Served]) -> None:
    s = serve(max_body_bytes=2000)
    small = {"rows": [row()] * 10}
    assert s.client.post("/predict", json=small).status_code == 200
    big = {"rows": [row()] * 50}
    answer = s.client.post("/predict", json=big)
    assert answer.status_code == 413 and "over the limit of 2000" in answer.json()["detail"]

    def chunks() -> Any:  # no Content-Length: the limit counts the bytes as they come
        text = json.dumps(big).encode()
        for start in range(0, len(text), 500):
            yield text[start : start + 500]

    answer = s.client.post("/predict", content=chunks(), headers={"content-type": "application/json"})
    assert answer.status_code == 413
    assert len(s.log.records()) == 10


# -- OpenAPI --------------------------------------------------------------------------------------


def test_openapi_says_rows_or_entities_and_declares_the_key(serve: Callable[..., Served]) -> None:
    spec = serve(api_key=KEY).client.get("/openapi.json").json()
    post = spec["paths"]["/predict"]["post"]
    body = post["requestBody"]["content"]["application/json"]["schema"]
    request = spec["components"]["schemas"][body["$ref"].rsplit("/", 1)[1]]
    assert {option["$ref"].rsplit("/", 1)[1] for option in request["oneOf"]} == {"RowsRequest", "EntitiesRequest"}
    rows = spec["components"]["schemas"]["RowsRequest"]
    assert rows["required"] == ["rows"] and rows["additionalProperties"] is False
    assert spec["components"]["schemas"]["EntitiesRequest"]["required"] == ["entities"]
    schemes = spec["components"]["securitySchemes"]
    assert {s["type"] for s in schemes.values()} == {"http", "apiKey"}
    assert any(s.get("scheme") == "bearer" for s in schemes.values())
    assert any(s.get("name") == "X-API-Key" and s.get("in") == "header" for s in schemes.values())
    assert len(post["security"]) == 2  # either one
    assert {"200", "401", "404", "413", "415", "422"} <= set(post["responses"])
    open_spec = serve().client.get("/openapi.json").json()
    assert "security" not in open_spec["paths"]["/predict"]["post"]
    assert "securitySchemes" not in open_spec.get("components", {})
