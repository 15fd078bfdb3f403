"""The prediction service: FastAPI on the champion model and the Feast online store."""

# No `from __future__ import annotations`: FastAPI reads the request model from the annotations.

import hmac
import os
import time
import uuid
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.responses import JSONResponse

from conveyor.core.config import Config
from conveyor.core.errors import ServingError
from conveyor.core.workspace import Workspace
from conveyor.stages.serving._metrics import ServiceMetrics
from conveyor.stages.serving._schemas import request_models

__all__ = ["Service", "create_app", "open_service"]


class Service:
    """What a running service holds: the champion, the online store, the prediction log."""

    def __init__(self, config: Config, workspace: Workspace) -> None:
        from conveyor.stages.features import OnlineFeatures
        from conveyor.stages.monitoring import PredictionLog
        from conveyor.stages.training import load_champion

        self.champion = load_champion(config, workspace, threads=1)
        self.online = OnlineFeatures(config, workspace)
        self.log = PredictionLog(workspace.predictions)
        buckets = _prediction_buckets(self.champion.reference, config.schema.task)
        self.metrics = ServiceMetrics(config.schema.task, buckets)
        self.metrics.model.labels(self.champion.name, self.champion.version).set(1)


def open_service(config: Config, workspace: Workspace) -> Service:
    """Load everything the service needs; raises a ConveyorError naming what is missing."""
    return Service(config, workspace)


def _prediction_buckets(reference: str | None, task: str) -> tuple[float, ...] | None:
    """Histogram buckets at the deciles of the champion's predictions on its training data."""
    if reference is None or task != "regression":
        return None
    import numpy as np
    import pyarrow.parquet as pq

    values = pq.read_table(reference, columns=["__prediction"])["__prediction"].to_numpy()
    edges = np.unique(np.round(np.quantile(values, np.linspace(0, 1, 11)), 3))
    return (*[float(e) for e in edges], float("inf"))


def create_app(config: Config, workspace: Workspace, service: Service | None = None) -> FastAPI:
    """The app; without a ready `service`, the champion and stores are opened when it starts."""
    schema = config.schema
    FeatureRow, PredictRequest = request_models(config)
    key = schema.entity.key
    api_key: str | None = None
    if config.serving.api_key_env:
        api_key = os.environ.get(config.serving.api_key_env)
        if not api_key:
            raise ServingError(
                f"serving.api_key_env is {config.serving.api_key_env!r} but that environment variable "
                "is empty; set it, or remove the key to serve without auth"
            )
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        ready = service or open_service(config, workspace)
        state.update(champion=ready.champion, online=ready.online, log=ready.log, metrics=ready.metrics)
        yield

    app = FastAPI(
        title=f"Conveyor: {config.name}",
        description=f"Predicts {schema.target!r} ({schema.task}) with models:/{config.name}@champion.",
        lifespan=lifespan,
    )

    @app.middleware("http")
    async def measure(request: Request, call_next: Any) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        metrics: ServiceMetrics | None = state.get("metrics")
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        if metrics is not None:
            metrics.requests.labels(request.method, path, str(response.status_code)).inc()
            metrics.latency.labels(request.method, path).observe(time.perf_counter() - started)
        return response

    def _check_auth(request: Request) -> None:
        if api_key is None:
            return
        given = request.headers.get("x-api-key") or ""
        bearer = request.headers.get("authorization", "")
        if bearer.lower().startswith("bearer "):
            given = bearer[7:]
        if not hmac.compare_digest(given.encode(), api_key.encode()):
            raise HTTPException(401, "missing or wrong API key (send 'Authorization: Bearer KEY' or 'X-API-Key')")

    @app.get("/health")
    def health() -> dict[str, Any]:
        champion = state["champion"]
        return {
            "status": "ok",
            "model": {"name": champion.name, "version": champion.version, "run_id": champion.run_id},
            "task": schema.task,
            "features": schema.features(),
            "entity_key": key,
        }

    @app.get("/metrics")
    def prometheus() -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(state["metrics"].registry), media_type=CONTENT_TYPE_LATEST)

    @app.post("/predict")
    def predict(body: PredictRequest, request: Request) -> JSONResponse:  # type: ignore[valid-type]
        _check_auth(request)
        champion = state["champion"]
        metrics: ServiceMetrics = state["metrics"]
        entities: list[Any] | None = body.entities  # type: ignore[attr-defined]
        if entities is not None:
            found = state["online"].get(entities)
            unknown = [k for k, row in zip(entities, found, strict=True) if row is None]
            if unknown:
                raise HTTPException(404, f"no features in the online store for {key} = {unknown[:20]}")
            rows: list[dict[str, Any]] = found  # type: ignore[assignment]
            source = "entities"
        else:
            clean = champion.model.encoder.clean
            rows = [clean(r.model_dump(by_alias=True)) for r in body.rows]  # type: ignore[attr-defined]
            source = "rows"
        outputs = champion.model.predict_records(rows, cleaned=True)  # store rows were cleaned in prepare
        now = datetime.now(UTC).isoformat()
        results, records = [], []
        for index, row in enumerate(rows):
            result: dict[str, Any] = {"request_id": uuid.uuid4().hex}
            for name, values in outputs.items():
                result[name] = values[index]
            if entities is not None:
                result["entity"] = entities[index]
            results.append(result)
            records.append(
                {**result, "timestamp": now, "model": champion.name, "model_version": champion.version,
                 "source": source, "inputs": row}
            )
        state["log"].append(records)  # durable before the answer leaves
        metrics.predictions.labels(source).inc(len(rows))
        observed = outputs.get("probability", outputs["prediction"])
        for value in observed:
            metrics.prediction_value.observe(float(value))
        return JSONResponse(
            {"model": {"name": champion.name, "version": champion.version}, "predictions": results}
        )

    return app
