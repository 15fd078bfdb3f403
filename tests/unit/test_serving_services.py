"""Serving while a shared store is down, on tiny in-test implementations of serving's Protocols:
the 503 and its one line, `/health` degraded naming the service (one model and `models:`), and
the next request answering once the store is back. tests/e2e/test_online_redis.py does the same
with a real Redis killed under a real server."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conveyor.core.errors import ServiceUnavailable
from conveyor.stages.monitoring import PredictionLog
from conveyor.stages.serving import ServiceParts, create_app, create_models_app
from tests.unit.test_serving_app import TestClient, TinyModel, TinyStore, row, tiny_config

REASON = "online store unavailable: Redis at 127.0.0.1:6390 refused the connection"


@dataclass
class Switch:
    """A store that is down while `down` is set: reads raise, the check says why."""

    down: bool = False
    store: TinyStore = field(default_factory=TinyStore)
    key: str = "row_id"

    def get(self, keys: list[Any]) -> list[dict[str, Any] | None]:
        if self.down:
            raise ServiceUnavailable("redis", REASON)
        return self.store.get(keys)

    def __call__(self) -> dict[str, str | None]:
        return {"redis": REASON if self.down else None}


def _app(tmp_path: Path, switch: Switch, name: str = "p") -> Any:
    parts = ServiceParts(TinyModel(), switch, PredictionLog(tmp_path / name), services=switch)
    return create_app(tiny_config(), parts)


def test_a_store_down_is_a_503_and_degraded_health_then_answers_again(tmp_path: Path) -> None:
    switch = Switch()
    client = TestClient(_app(tmp_path, switch))
    assert client.get("/health").json()["services"] == {"redis": "ok"}
    switch.down = True
    answer = client.post("/predict", json={"entities": [1, 2]})
    assert answer.status_code == 503 and answer.headers["retry-after"] == "1"
    assert answer.json() == {"detail": REASON, "service": "redis"}
    health = client.get("/health").json()
    assert (health["status"], health["down"], health["services"]) == ("degraded", ["redis"], {"redis": REASON})
    assert client.post("/predict", json={"rows": [row()]}).status_code == 200  # raw rows read no store
    switch.down = False
    assert [p["entity"] for p in client.post("/predict", json={"entities": [1, 2]}).json()["predictions"]] == [1, 2]
    health = client.get("/health").json()
    assert health["status"] == "ok" and "down" not in health
    assert "503" in client.get("/openapi.json").json()["paths"]["/predict"]["post"]["responses"]


def test_without_shared_stores_health_is_as_before(tmp_path: Path) -> None:
    parts = ServiceParts(TinyModel(), TinyStore(), PredictionLog(tmp_path / "p"), services=lambda: {})
    health = TestClient(create_app(tiny_config(), parts)).get("/health").json()
    assert health["status"] == "ok" and "services" not in health and "down" not in health


def test_several_models_health_names_the_service_down(tmp_path: Path) -> None:
    switch = Switch()
    apps = {name: _app(tmp_path, switch, name) for name in ("a", "b")}
    client = TestClient(create_models_app(tiny_config(), apps))
    assert client.get("/health").json()["status"] == "ok"
    switch.down = True
    health = client.get("/health").json()
    assert health["status"] == "degraded" and health["down"] == ["redis"] and set(health["models"]) == {"a", "b"}
    assert client.post("/models/a/predict", json={"entities": [1]}).status_code == 503
