"""MLflow, in process, on the workspace's SQLite database (no server to start), or on the
tracking URI `stores.mlflow.tracking_uri_env` names.

Nothing here changes process-wide state for longer than a call: the tracking URI is set for
the duration of a `tracking(config, workspace)` block and restored after it; clients are built
with explicit URIs; MLflow's own chatter is lowered on its loggers only while we work.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from conveyor.core.config import Config
from conveyor.core.errors import ConfigError
from conveyor.core.locking import FileLock, hold
from conveyor.core.workspace import Workspace

__all__ = [
    "client", "experiment_id", "local_model_path", "pip_requirements", "quiet", "registry_db", "tracking", "tracking_uri",
]

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


def tracking_uri(config: Config, workspace: Workspace) -> str:
    """The tracking and registry URI: the workspace's `mlflow.db`, or with `stores.mlflow` the
    URI in the environment variable it names (a server, or a shared database). The URI itself
    is never written anywhere: it may hold a password."""
    import os

    store = config.stores.mlflow
    if store is None:
        return workspace.mlflow_uri
    uri = os.environ.get(store.tracking_uri_env, "").strip()
    if not uri:
        raise ConfigError(
            f"stores.mlflow.tracking_uri_env names {store.tracking_uri_env}, which is not set: export "
            f"{store.tracking_uri_env}=http://host:5000 (the team's MLflow server), or remove stores.mlflow "
            "to keep MLflow in the project folder"
        )
    return uri


def registry_db(uri: str) -> Path | None:
    """The database file of a `sqlite:///` tracking URI; None for any other kind."""
    if not uri.startswith("sqlite:///"):
        return None
    path = unquote(uri.removeprefix("sqlite:///").split("?", 1)[0])
    return Path(path).resolve() if path and path != ":memory:" else None


@contextlib.contextmanager
def tracking(config: Config, workspace: Workspace) -> Iterator[Any]:
    """MLflow's fluent API pointed at this project's tracking URI for the block; yields the `mlflow` module."""
    import mlflow
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri

    with _quiet_loggers(), _use_tracking_uri(tracking_uri(config, workspace)):
        yield mlflow


def client(config: Config, workspace: Workspace) -> Any:
    """An `MlflowClient` on this project's tracking store and registry."""
    from mlflow import MlflowClient

    uri = tracking_uri(config, workspace)
    db = registry_db(uri) if config.stores.mlflow is not None and uri not in _READY else None
    with _quiet_loggers(), _setting_up(db):
        made = MlflowClient(tracking_uri=uri, registry_uri=uri)
        if db is not None:
            made.search_registered_models(max_results=1)  # the registry store too is opened now
    _READY.add(uri)
    return made


_READY: set[str] = set()
"""The tracking URIs this process has opened (MLflow caches their stores)."""


@contextlib.contextmanager
def _setting_up(db: Path | None) -> Iterator[None]:
    """A shared SQLite registry is opened one process at a time the first time: two projects
    starting on a new one at once would both run MLflow's schema migrations, and one would fail
    half-way (`duplicate column name`)."""
    if db is None:
        yield
        return
    with hold(FileLock(db.parent / f".{db.name}.setup.lock", "registry set-up lock")):
        yield


def experiment_id(mlflow_client: Any, workspace: Workspace, name: str) -> str:
    found = mlflow_client.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    from mlflow.exceptions import MlflowException

    workspace.ensure(workspace.mlartifacts)
    try:
        return str(mlflow_client.create_experiment(
            name, artifact_location=workspace.mlartifacts.as_uri(),
            tags={"mlflow.experimentKind": "custom_model_development"},  # MLflow 3's UI: the runs view, not GenAI
        ))
    except MlflowException:  # another project on a shared registry created it just now
        found = mlflow_client.get_experiment_by_name(name)
        if found is None:
            raise
        return str(found.experiment_id)


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
