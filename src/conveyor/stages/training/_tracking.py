"""MLflow, in process, on the workspace's SQLite database: no server to start."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from importlib import metadata
from typing import Any

from conveyor.core.workspace import Workspace

__all__ = ["experiment_id", "pip_requirements", "quiet", "use_workspace"]

_REQUIREMENTS = ("mlflow", "lightgbm", "scikit-learn", "pandas", "numpy", "cloudpickle")


@contextlib.contextmanager
def quiet() -> Any:
    """MLflow logs and warns about its own internals; keep the user's terminal for our output."""
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    import mlflow  # noqa: F401  # importing it changes warning filters: do that before ours

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        previous = {name: logging.getLogger(name).level for name in ("mlflow", "alembic")}
        for name in previous:
            logging.getLogger(name).setLevel(logging.ERROR)
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                yield
        finally:
            for name, level in previous.items():
                logging.getLogger(name).setLevel(level)


def use_workspace(workspace: Workspace) -> Any:
    """Point MLflow at the workspace's tracking database and registry."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    with quiet():
        import mlflow

        mlflow.set_tracking_uri(workspace.mlflow_uri)
        mlflow.set_registry_uri(workspace.mlflow_uri)
    return mlflow


def experiment_id(mlflow: Any, workspace: Workspace, name: str) -> str:
    found = mlflow.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    workspace.ensure(workspace.mlartifacts)
    return str(mlflow.create_experiment(name, artifact_location=workspace.mlartifacts.as_uri()))


def pip_requirements() -> list[str]:
    """The installed versions, pinned: MLflow would otherwise spend seconds inferring them."""
    pins = []
    for name in _REQUIREMENTS:
        try:
            pins.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return pins
