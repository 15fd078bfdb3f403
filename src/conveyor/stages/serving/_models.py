"""Several models in one service (`models:` in conveyor.yaml): `/models/<name>/...` per model.

Each model is a whole app of its own (`create_app` on the model's Config and parts: its
`/predict`, `/health`, `/metrics`, `/admin/reload`, its batcher, log and hot swap). The
service in front of them routes a request under `/models/<name>` to that model's app with
the prefix taken off the path, so every piece of the model's app (the guard, the metrics,
the routes) sees the paths of a one-model service. The rest (`/health`, an unknown model, the
one-model `/predict`) is answered by a small app of its own, whose lifespan runs every
model's (their reload pollers and shadow drains).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from conveyor.core.config import Config
from conveyor.stages.serving._app import predictor_state, service_health

__all__ = ["MODELS_PREFIX", "ModelsApp", "create_models_app"]

MODELS_PREFIX = "/models"


class ModelsApp:
    """ASGI: `/models/<name>/<rest>` to that model's app as `/<rest>`; everything else to `root`."""

    def __init__(self, apps: dict[str, FastAPI], root: FastAPI) -> None:
        self.apps = apps
        self.root = root

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            path: str = scope["path"]
            parts = path.split("/", 3)  # "", "models", name, rest
            if len(parts) >= 3 and "/" + parts[1] == MODELS_PREFIX and parts[2] in self.apps:
                prefix = f"{MODELS_PREFIX}/{parts[2]}"
                child = dict(scope)
                child["path"] = path[len(prefix):] or "/"
                child["raw_path"] = child["path"].encode()
                child["root_path"] = scope.get("root_path", "") + prefix
                await self.apps[parts[2]](child, receive, send)
                return
        await self.root(scope, receive, send)


def create_models_app(config: Config, apps: dict[str, FastAPI]) -> ModelsApp:
    """The service of a project with `models:`, over each model's app (`create_app` of its Config)."""
    names = ", ".join(apps)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            for model_app in apps.values():
                await stack.enter_async_context(model_app.router.lifespan_context(model_app))
            yield

    root = FastAPI(
        title=f"Conveyor: {config.name}",
        description=f"Models of {config.name}: " + ", ".join(
            f"{name} (POST {MODELS_PREFIX}/{name}/predict)" for name in apps),
        lifespan=lifespan,
    )

    @root.get("/health")
    async def health() -> dict[str, Any]:
        """Every model being served, by name: its registered model and version, and where it answers."""
        served = {}
        for name, model_app in apps.items():
            model = model_app.state.slot.model
            served[name] = {"name": model.name, "version": model.version, "task": model.task,
                            "predict": f"{MODELS_PREFIX}/{name}/predict",
                            "prediction_log": model_app.state.batcher.log_down or "ok", **predictor_state(model)}
        down = any(model["prediction_log"] != "ok" for model in served.values())
        answer: dict[str, Any] = {"status": "degraded" if down else "ok", "models": served}
        services = next((a.state.services for a in apps.values() if a.state.services is not None), None)
        if services is not None:  # the models share one online store: checked once
            answer.update(await service_health(services))
        return answer

    @root.api_route("/predict", methods=["POST"], include_in_schema=False)
    async def one_model_predict() -> JSONResponse:
        return JSONResponse({"detail": f"{config.name} serves several models: POST {MODELS_PREFIX}/<name>/predict "
                                       f"with <name> one of {names}"}, 404)

    @root.api_route(MODELS_PREFIX + "/{name}/{rest:path}", methods=["GET", "POST"], include_in_schema=False)
    async def unknown_model(name: str) -> JSONResponse:
        return JSONResponse({"detail": f"no model {name!r} in {config.name}; the models are {names}"}, 404)

    return ModelsApp(apps, root)
