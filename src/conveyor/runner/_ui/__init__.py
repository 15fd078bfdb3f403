"""`conveyor ui`: the project page, a read-only local web app over what the runner reads.

The app reads the workspace through the runner and the stages' public functions (the registry
through training, the feature views through features); it writes nothing.
"""

from __future__ import annotations

import sys
from pathlib import Path

from conveyor.core.errors import ConfigError

__all__ = ["DEFAULT_MLFLOW_URL", "serve_ui"]

DEFAULT_MLFLOW_URL = "http://127.0.0.1:5000"
"""Where `mlflow ui --backend-store-uri sqlite:///mlflow.db` listens by default."""


def serve_ui(project: Path, *, host: str, port: int, serving_url: str | None, mlflow_url: str) -> None:
    """Serve the project page until interrupted; the slow reads (registry, feature views) happen first."""
    import uvicorn

    from conveyor.runner._commands import load_project
    from conveyor.runner._ui._app import create_app

    for name, url in (("--serving-url", serving_url), ("--mlflow-url", mlflow_url)):
        if url is not None and not url.startswith(("http://", "https://")):
            raise ConfigError(f"{name} {url!r}: expected an http:// or https:// URL")
    config, workspace = load_project(project)
    if serving_url is None:
        serving_host = "127.0.0.1" if config.serving.host in ("0.0.0.0", "::", "") else config.serving.host
        serving_url = f"http://{serving_host}:{config.serving.port}"
    app = create_app(config, workspace, serving_url=serving_url, mlflow_url=mlflow_url)
    app.state.snapshot.read()  # MLflow and Feast are imported and read now, not on the first page load
    shown = f"[{host}]" if ":" in host else host
    print(f"conveyor ui: {config.name} at http://{shown}:{port}/ (read-only; Ctrl-C stops)", file=sys.stderr, flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
