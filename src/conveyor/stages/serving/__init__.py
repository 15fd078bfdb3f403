"""Serving: the FastAPI prediction service (uvicorn) over small Protocols.

Serving imports no other stage. It takes a `ServiceParts`: a `ServedModel` (the champion), a
`FeatureReader` (the online store) and a `PredictionSink` (the prediction log), which the
runner composes from training, features and monitoring (`conveyor.runner._serve`).
"""

import os

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
        # the workers share one listening socket; libuv (uvloop) then accepts every pending connection
        # in the worker that wakes first, so a burst of keep-alive clients can all land on one worker
        # while the others idle (8 wrk clients: 85% of the work on one of 2). One accept per wake-up
        # spreads them (measured: 1020 / 1010 ms of CPU on the two workers).
        os.environ.setdefault("UV_TCP_SINGLE_ACCEPT", "1")
        uvicorn.run(app, factory=True, workers=workers, host=host, port=port, log_level=log_level,
                    timeout_graceful_shutdown=5)
        return
    uvicorn.run(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=5)
