"""The prediction service: a FastAPI app over a `ServiceParts` (model, feature reader, log).

`create_app` only composes: each piece below adds one concern (errors, health, metrics,
prediction, auth), and knows nothing of MLflow, Feast or the log's files.
"""

# No `from __future__ import annotations`: FastAPI reads the request model from the annotations.

from typing import Any

from fastapi import FastAPI, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from conveyor.core.config import Config
from conveyor.core.errors import ServingError
from conveyor.stages.serving._errors import validation_error
from conveyor.stages.serving._guard import UNAUTHORIZED, Guard, api_key_of, security
from conveyor.stages.serving._metrics import Measure, ServiceMetrics
from conveyor.stages.serving._ports import ServedModel, ServiceParts
from conveyor.stages.serving._predict import answer, rows_by_entity, rows_by_value
from conveyor.stages.serving._schemas import ONE_OF, PredictResponse, request_models

__all__ = ["MAX_BODY_MB", "create_app"]

MAX_BODY_MB = 32
"""Largest POST /predict body; larger is a 413. A default until `serving.max_body_mb` exists in the config."""

PREDICT = "/predict"


def create_app(config: Config, parts: ServiceParts, *, max_body_bytes: int = MAX_BODY_MB * 2**20) -> FastAPI:
    """The app serving `parts`; a ServingError if they do not fit the project (or the API key is unset)."""
    check_model(config, parts.model)
    api_key = api_key_of(config.serving)
    metrics = ServiceMetrics(config.schema.task, parts.value_buckets)
    metrics.model.labels(parts.model.name, parts.model.version).set(1)
    app = FastAPI(
        title=f"Conveyor: {config.name}",
        description=f"Predicts {config.schema.target!r} ({config.schema.task}) with models:/{config.name}@champion.",
    )
    app.add_exception_handler(RequestValidationError, validation_error)
    add_health(app, config, parts.model)
    add_metrics(app, metrics)
    add_predict(app, config, parts, metrics, api_key=api_key, max_body_bytes=max_body_bytes)
    app.add_middleware(Guard, path=PREDICT, api_key=api_key, max_body_bytes=max_body_bytes)  # inside Measure
    app.add_middleware(Measure, metrics=metrics, paths=frozenset({PREDICT, "/health", "/metrics"}))
    return app


def check_model(config: Config, model: ServedModel) -> None:
    """The champion must take the features the request models are built from, for the same task."""
    declared, trained = set(config.schema.features()), set(model.features)
    if declared != trained or model.task != config.schema.task:
        raise ServingError(
            f"the champion {model.name} v{model.version} is a {model.task} model of {sorted(trained)}, but "
            f"conveyor.yaml declares a {config.schema.task} of {sorted(declared)}; run `conveyor run` "
            "so a model of the current schema is promoted, or restore conveyor.yaml"
        )


def add_health(app: FastAPI, config: Config, model: ServedModel) -> None:
    body = {
        "status": "ok",
        "model": {"name": model.name, "version": model.version, "run_id": model.run_id},
        "task": model.task,
        "features": config.schema.features(),
        "entity_key": config.schema.entity.key,
    }

    @app.get("/health")
    async def health() -> dict[str, Any]:
        """The model being served, its features and the entity key."""
        return body


def add_metrics(app: FastAPI, metrics: ServiceMetrics) -> None:
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    @app.get("/metrics")
    async def prometheus() -> Response:
        """Prometheus text: requests, latency, predictions, prediction values, the model."""
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)


def _detail(text: str) -> dict[str, Any]:
    return {"description": text, "content": {"application/json": {"example": {"detail": text}}}}


def add_predict(
    app: FastAPI, config: Config, parts: ServiceParts, metrics: ServiceMetrics, *, api_key: str | None,
    max_body_bytes: int,
) -> None:
    models = request_models(config)
    PredictRequest, RowsRequest = models.request, models.rows
    responses: dict[int | str, dict[str, Any]] = {
        200: {"model": PredictResponse},
        404: _detail(f"an entity key unknown to the online store ({config.schema.entity.key})"),
        413: _detail(f"a body over {max_body_bytes} bytes"),
        415: _detail("a Content-Type that is not JSON"),
        422: _detail(f"not {ONE_OF}, or a field of the wrong type, missing, NaN or out of range (`loc` names it)"),
    }
    if api_key is not None:
        responses[401] = _detail(UNAUTHORIZED)

    def predict(body: PredictRequest) -> JSONResponse:  # type: ignore[valid-type]  # built from the schema at run time
        request: BaseModel = body.root  # type: ignore[attr-defined]  # a RootModel: RowsRequest or EntitiesRequest
        if isinstance(request, RowsRequest):
            return JSONResponse(predict_rows(parts, metrics, request.rows))  # type: ignore[attr-defined]
        return JSONResponse(predict_entities(parts, metrics, request.entities))  # type: ignore[attr-defined]

    predict.__doc__ = f"Predict {config.schema.target!r} for raw feature rows, or for entity keys."
    app.post(
        PREDICT, dependencies=security(api_key), responses=responses, response_class=JSONResponse,
        max_body_size=max_body_bytes,
    )(predict)


def predict_rows(parts: ServiceParts, metrics: ServiceMetrics, rows: list[BaseModel]) -> dict[str, Any]:
    return answer(parts, metrics, rows_by_value(parts.model, rows), "rows")


def predict_entities(parts: ServiceParts, metrics: ServiceMetrics, keys: list[Any]) -> dict[str, Any]:
    return answer(parts, metrics, rows_by_entity(parts.features, keys), "entities", entities=keys)
