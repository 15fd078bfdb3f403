"""Serving: the FastAPI prediction service (uvicorn), on the champion and the online store."""

from conveyor.stages.serving._app import Service, create_app, open_service
from conveyor.stages.serving._schemas import request_models

__all__ = ["Service", "create_app", "open_service", "request_models", "serve"]


def serve(app: object, host: str, port: int, log_level: str = "info") -> None:
    """Run the app with uvicorn, one worker, until interrupted."""
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=5)  # type: ignore[arg-type]
