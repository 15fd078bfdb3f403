"""Serving: the FastAPI prediction service (uvicorn) over small Protocols.

Serving imports no other stage. It takes a `ServiceParts`: a `ServedModel` (the champion), a
`FeatureReader` (the online store) and a `PredictionSink` (the prediction log), which the
runner composes from training, features and monitoring (`conveyor.runner._serve`).
"""

from fastapi import FastAPI

from conveyor.stages.serving._app import MAX_BODY_MB, create_app
from conveyor.stages.serving._models import ModelsApp, create_models_app
from conveyor.stages.serving._ports import FeatureReader, PredictionSink, ServedModel, ServiceParts
from conveyor.stages.serving._predict import predict_rows
from conveyor.stages.serving._schemas import RequestModels, request_models

__all__ = [
    "MAX_BODY_MB",
    "FeatureReader",
    "ModelsApp",
    "PredictionSink",
    "RequestModels",
    "ServedModel",
    "ServiceParts",
    "create_app",
    "create_models_app",
    "predict_rows",
    "request_models",
    "serve",
]


def serve(app: FastAPI | ModelsApp | str, host: str, port: int, log_level: str = "info", *, workers: int = 1) -> None:
    """Run the app with uvicorn until interrupted; SIGTERM drains the requests in flight (5 s at most).

    With `workers > 1`, `app` is the import string of a factory (`module:function`) that each
    worker process calls.
    """
    import uvicorn

    if workers > 1:
        if not isinstance(app, str):
            raise TypeError("several workers need the app as the import string of a factory")
        uvicorn.run(app, factory=True, workers=workers, host=host, port=port, log_level=log_level,
                    timeout_graceful_shutdown=5)
        return
    uvicorn.run(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=5)
