"""The prediction service: a FastAPI app over a `ServiceParts` (model, feature reader, log).

`create_app` only composes: each piece below adds one concern (errors, health, metrics,
prediction, auth, hot swap), and knows nothing of MLflow, Feast or the log's files.

POST /predict is a plain Starlette endpoint on the hot path: a body of raw rows is parsed by
orjson and checked by column (`_body.RowColumns`: the validator's rules, on whole columns), and
goes to the batcher as columns (feature -> values): the champion cleans, screens, encodes and
predicts whole columns, the log and the answer are written from them (`_batch.Batcher`). Any
other body (entity keys, or one the column check does not accept whole) is validated from its
bytes in one pydantic-core call (`body_validator`), which also words every 422. Its
OpenAPI description still comes from the request models, through a route that is documented
but never called (`_documented_predict`), so `/docs` and clients see the same schema as before.
"""

# No `from __future__ import annotations`: FastAPI reads the request model from the annotations.

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import ValidationError
from starlette.requests import Request
from starlette.routing import Route

from conveyor.core.config import Config
from conveyor.core.errors import ServiceUnavailable, ServingError
from conveyor.stages.serving._batch import Batcher, LogUnwritable, Served
from conveyor.stages.serving._body import RowColumns
from conveyor.stages.serving._errors import public_errors, validation_error
from conveyor.stages.serving._guard import UNAUTHORIZED, Guard, _bearer_token, api_key_of, authorized, security
from conveyor.stages.serving._labels import LABELS, add_labels_route
from conveyor.stages.serving._metrics import Measure, ServiceMetrics
from conveyor.stages.serving._ports import ServedModel, ServiceCheck, ServiceParts
from conveyor.stages.serving._predict import answer_json, rows_by_entity, rows_by_value
from conveyor.stages.serving._schemas import ONE_OF, PredictResponse, body_validator, request_models
from conveyor.stages.serving._shadow import Shadow
from conveyor.stages.serving._slot import ModelSlot

__all__ = ["MAX_BODY_MB", "create_app"]

MAX_BODY_MB = 32
"""Largest POST /predict body; larger is a 413. A default until `serving.max_body_mb` exists in the config."""

PREDICT = "/predict"
RELOAD = "/admin/reload"
NO_CONTENT_TYPE = "POST /predict takes a JSON body: send 'Content-Type: application/json'"


def create_app(config: Config, parts: ServiceParts, *, max_body_bytes: int = MAX_BODY_MB * 2**20) -> FastAPI:
    """The app serving `parts`; a ServingError if they do not fit the project (or a key is unset)."""
    check_model(config, parts.model)
    api_key = api_key_of(config.serving)
    admin_key = admin_key_of(config)
    metrics = ServiceMetrics(config.schema.task, parts.value_buckets)
    metrics.model.labels(parts.model.name, parts.model.version).set(1)
    if parts.monitor_gauges is not None:
        from conveyor.stages.serving._monitor_metrics import MonitorCollector

        metrics.registry.register(MonitorCollector(parts.monitor_gauges, parts.monitor_help or {}))
    slot = ModelSlot(parts.model, parts.reload, metrics, lambda model: check_model(config, model))
    shadow = None
    if parts.shadow is not None and parts.shadow_log is not None:
        shadow = Shadow(parts.shadow, parts.shadow_log, metrics)
    batching = config.serving.batching
    batcher = Batcher(slot, parts.log, metrics, max_batch=batching.max_batch, max_wait_ms=batching.max_wait_ms,
                      shadow=shadow)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        slot.start(config.serving.reload_s)
        try:
            yield
        finally:
            slot.stop()
            if shadow is not None:
                shadow.drain()

    app = FastAPI(
        title=f"Conveyor: {config.name}",
        description=f"Predicts {config.schema.target!r} ({config.schema.task}) with models:/{config.name}@champion.",
        lifespan=lifespan,
    )
    app.state.slot, app.state.batcher, app.state.shadow = slot, batcher, shadow
    app.state.services = parts.services
    app.add_exception_handler(RequestValidationError, validation_error)
    add_health(app, config, slot, parts.services)
    add_metrics(app, metrics, slot)
    add_reload(app, slot, admin_key)
    add_labels_route(app, parts.labels, admin_key)
    add_predict(app, config, parts, batcher, api_key=api_key, max_body_bytes=max_body_bytes)
    app.add_middleware(Guard, path=PREDICT, api_key=api_key, max_body_bytes=max_body_bytes)  # inside Measure
    app.add_middleware(Measure, metrics=metrics, paths=frozenset({PREDICT, "/health", "/metrics", RELOAD, LABELS}))
    return app


def admin_key_of(config: Config) -> str | None:
    """The key of POST /admin/reload from `serving.admin_key_env`; None disables the endpoint."""
    name = config.serving.admin_key_env
    if not name:
        return None
    key = os.environ.get(name)
    if not key:
        raise ServingError(
            f"serving.admin_key_env is {name!r} but that environment variable is empty; "
            "set it, or remove the key to serve without POST /admin/reload"
        )
    return key


def check_model(config: Config, model: ServedModel) -> None:
    """The champion must take the features the request models are built from, for the same task."""
    declared, trained = set(config.schema.features()), set(model.features)
    if declared != trained or model.task != config.schema.task:
        raise ServingError(
            f"the champion {model.name} v{model.version} is a {model.task} model of {sorted(trained)}, but "
            f"conveyor.yaml declares a {config.schema.task} of {sorted(declared)}; run `conveyor run` "
            "so a model of the current schema is promoted, or restore conveyor.yaml"
        )


def add_health(app: FastAPI, config: Config, slot: ModelSlot, services: ServiceCheck | None = None) -> None:
    features, key = config.schema.features(), config.schema.entity.key

    @app.get("/health")
    async def health() -> dict[str, Any]:
        """The model being served (it changes when `@champion` moves), its features and the entity key;
        with shared stores, each service's state: `status` is `degraded` while one is down, and while
        the prediction log cannot be written (with the reason)."""
        model = slot.model
        log_down = app.state.batcher.log_down
        answer: dict[str, Any] = {
            "status": "ok" if log_down is None else "degraded",
            "model": {"name": model.name, "version": model.version, "run_id": model.run_id},
            "task": model.task,
            "features": features,
            "entity_key": key,
            "prediction_log": log_down or "ok",
            **predictor_state(model),
        }
        if services is not None:
            answer.update(await service_health(services))
        return answer


def predictor_state(model: ServedModel) -> dict[str, str]:
    """`predictor` (which one answers: `compiled` or `lightgbm`) and `compile` (`compiling`, `compiled`,
    `lightgbm` when it failed, with `compile_error`, or `off`), from a model that tells (the champion does)."""
    state = getattr(model, "predictor", None)
    return dict(state) if isinstance(state, dict) else {}


async def service_health(services: ServiceCheck) -> dict[str, Any]:
    """`services` (name -> "ok" or the reason it is down) and, when one is down, `status: degraded`
    and `down` (the names); nothing when no service is shared. Checked in a worker thread: a slow
    service never blocks the event loop."""
    states = await run_in_threadpool(services)
    if not states:  # nothing shared (the embedded default): /health as it always was
        return {}
    down = [name for name, reason in states.items() if reason is not None]
    answer: dict[str, Any] = {"services": {name: reason or "ok" for name, reason in states.items()}}
    if down:
        answer.update(status="degraded", down=down)
    return answer


def unavailable(exc: ServiceUnavailable) -> JSONResponse:
    """503: a shared service is down; the answer names it and why, and asks to retry."""
    return JSONResponse({"detail": str(exc), "service": exc.service}, 503, headers={"Retry-After": "1"})


def add_metrics(app: FastAPI, metrics: ServiceMetrics, slot: ModelSlot) -> None:
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    @app.get("/metrics", response_class=PlainTextResponse)
    async def prometheus() -> Response:
        """Prometheus text: requests, latency, predictions, prediction values, the model and its predictor."""
        metrics.set_predictor(predictor_state(slot.model).get("predictor"))
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)


def _detail(text: str) -> dict[str, Any]:
    return {"description": text, "content": {"application/json": {"example": {"detail": text}}}}


def add_reload(app: FastAPI, slot: ModelSlot, admin_key: str | None) -> None:
    @app.post(RELOAD, responses={401: _detail(UNAUTHORIZED), 404: _detail("no admin key is configured")})
    async def reload(request: Request) -> JSONResponse:
        """Load `@champion` now and swap to it if it moved (needs `serving.admin_key_env`'s key)."""
        if admin_key is None:
            return JSONResponse({"detail": "POST /admin/reload is off: set serving.admin_key_env"}, 404)
        headers = request.headers
        if not authorized(_bearer_token(headers.get("authorization")), headers.get("x-api-key"), admin_key):
            return JSONResponse({"detail": UNAUTHORIZED}, 401, headers={"WWW-Authenticate": "Bearer"})
        changed = await run_in_threadpool(slot.reload_now, force=True)
        model = slot.model
        return JSONResponse({"reloaded": changed, "model": {"name": model.name, "version": model.version}})


def add_predict(
    app: FastAPI, config: Config, parts: ServiceParts, batcher: Batcher, *, api_key: str | None,
    max_body_bytes: int,
) -> None:
    validator = body_validator(config)
    by_column = RowColumns(config)
    slot, features = batcher.slot, parts.features

    async def predict(request: Request) -> Response:
        batcher.in_flight += 1
        try:
            headers = request.headers
            if api_key is not None and not authorized(  # the Guard checked already; this is the belt to its braces
                _bearer_token(headers.get("authorization")), headers.get("x-api-key"), api_key
            ):
                return JSONResponse({"detail": UNAUTHORIZED}, 401, headers={"WWW-Authenticate": "Bearer"})
            if "content-type" not in headers:
                return _unprocessable([{"type": "missing", "loc": ("body",), "msg": NO_CONTENT_TYPE}])
            body = await _read(request, max_body_bytes)
            if body is None:
                detail = f"the body is over the limit of {max_body_bytes} bytes; send smaller batches"
                return JSONResponse({"detail": detail}, 413)
            fast = by_column(body)  # raw rows, read by column; anything else (or an error) goes to the validator
            if fast is not None:
                return _answer(await batcher.submit_columns(*fast))
            try:
                data = validator.validate_json(body)
            except ValidationError as exc:
                return _unprocessable([{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)])
            try:
                if "rows" in data:
                    served = await batcher.submit(rows_by_value(slot.model, data["rows"]), "rows", None)
                else:
                    keys = data["entities"]
                    rows = await run_in_threadpool(rows_by_entity, features, keys)
                    served = await batcher.submit(rows, "entities", keys)
            except ServiceUnavailable as exc:  # Redis or PostgreSQL down: the next request tries again
                return unavailable(exc)
            return _answer(served)
        except LogUnwritable as exc:  # never an answer without its record; the first write that succeeds recovers
            return JSONResponse({"detail": f"{exc.reason}; retry later", "service": "prediction log"}, 503,
                                headers={"Retry-After": "1"})
        finally:
            batcher.in_flight -= 1

    # first in the table: the router tries the routes in order, and /predict is the hot path
    app.router.routes.insert(0, Route(PREDICT, predict, methods=["POST"], include_in_schema=False))
    documented = _documented_predict(config, api_key=api_key, max_body_bytes=max_body_bytes)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = get_openapi(
                title=app.title, version=app.version, description=app.description,
                routes=[*app.routes, *documented.routes],
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _answer(served: Served) -> Response:
    return Response(answer_json(served), media_type="application/json")


def _unprocessable(errors: list[Any]) -> JSONResponse:
    return JSONResponse({"detail": public_errors(errors)}, 422)


async def _read(request: Request, limit: int) -> bytes | None:
    """The body, or None once it passes `limit` bytes (a chunked body has no Content-Length to check first)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _documented_predict(config: Config, *, api_key: str | None, max_body_bytes: int) -> APIRouter:
    """POST /predict as OpenAPI describes it: the request models, the key, the answers. Never called."""
    models = request_models(config)
    PredictRequest = models.request
    responses: dict[int | str, dict[str, Any]] = {
        200: {"model": PredictResponse},
        404: _detail(f"an entity key unknown to the online store ({config.schema.entity.key})"),
        413: _detail(f"a body over {max_body_bytes} bytes"),
        415: _detail("a Content-Type that is not JSON"),
        503: _detail("a shared store the answer needs is down (online store unavailable: Redis at ...), or the "
                     "prediction log cannot be written (a full disk): nothing is answered unlogged"),
        422: _detail(f"not {ONE_OF}, or a field of the wrong type, missing, NaN or out of range (`loc` names it)"),
    }
    if api_key is not None:
        responses[401] = _detail(UNAUTHORIZED)

    def predict(body: PredictRequest) -> PredictResponse:  # type: ignore[valid-type]  # built from the schema at run time
        raise NotImplementedError("documentation only: the app serves POST /predict itself")

    predict.__doc__ = f"Predict {config.schema.target!r} for raw feature rows, or for entity keys."
    router = APIRouter()
    router.post(PREDICT, dependencies=security(api_key), responses=responses, response_model=PredictResponse)(predict)
    return router
