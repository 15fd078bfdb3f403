"""MLflow, in process, on the workspace's SQLite database: no server to start.

Nothing here changes process-wide state for longer than a call: the tracking URI is set for
the duration of a `tracking(workspace)` block and restored after it; clients are built with
explicit URIs; MLflow's own chatter is lowered on its loggers only while we work.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from conveyor.core.workspace import Workspace

__all__ = ["client", "experiment_id", "local_model_path", "pip_requirements", "quiet", "tracking"]

_REQUIREMENTS = ("mlflow", "lightgbm", "scikit-learn", "pandas", "numpy", "cloudpickle")
_NOISY = ("mlflow", "alembic")


@contextlib.contextmanager
def _quiet_loggers() -> Iterator[None]:
    """MLflow's loggers lowered, and its warnings for its own developers (a deprecated SQLAlchemy
    loader inside its store) not shown."""
    import warnings

    loggers = [logging.getLogger(name) for name in _NOISY]
    previous = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"mlflow(\..*)?$|sqlalchemy(\..*)?$")
            yield
    finally:
        for logger, level in zip(loggers, previous, strict=True):
            logger.setLevel(level)


quiet = _quiet_loggers
"""For a whole stage: MLflow's chatter lowered while it works."""


@contextlib.contextmanager
def tracking(workspace: Workspace) -> Iterator[Any]:
    """MLflow's fluent API pointed at this workspace for the block; yields the `mlflow` module."""
    import mlflow
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri

    with _quiet_loggers(), _use_tracking_uri(workspace.mlflow_uri):
        yield mlflow


def client(workspace: Workspace) -> Any:
    """An `MlflowClient` on the workspace's tracking database and registry."""
    from mlflow import MlflowClient

    with _quiet_loggers():
        return MlflowClient(tracking_uri=workspace.mlflow_uri, registry_uri=workspace.mlflow_uri)


def experiment_id(mlflow_client: Any, workspace: Workspace, name: str) -> str:
    found = mlflow_client.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    workspace.ensure(workspace.mlartifacts)
    return str(mlflow_client.create_experiment(
        name, artifact_location=workspace.mlartifacts.as_uri(),
        tags={"mlflow.experimentKind": "custom_model_development"},  # MLflow 3's UI: the runs view, not GenAI
    ))


def _file_path(uri: str) -> Path:
    parsed = urlparse(uri)
    return Path(unquote(parsed.path)) if parsed.scheme in ("file", "") else Path(uri)


def local_model_path(mlflow_client: Any, workspace: Workspace, model_id: str) -> Path:
    """Where a logged model's files are in *this* workspace, even after the folder moved.

    MLflow stores absolute artifact locations. Experiments are created with the workspace's
    `mlartifacts/` as their root, so a location under the root it had when recorded is
    re-rooted under the current `mlartifacts/`.
    """
    model = mlflow_client.get_logged_model(model_id)
    path = _file_path(model.artifact_location)
    if path.exists():
        return path
    experiment = mlflow_client.get_experiment(model.experiment_id)
    old_root = _file_path(experiment.artifact_location)
    try:
        return workspace.mlartifacts / path.relative_to(old_root)
    except ValueError:
        return path  # not under the recorded root: report the path as MLflow has it


def pip_requirements() -> list[str]:
    """The installed versions, pinned: MLflow would otherwise spend seconds inferring them."""
    pins = []
    for name in _REQUIREMENTS:
        try:
            pins.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return pins
