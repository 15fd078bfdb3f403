"""MLflow, in process, on the workspace's SQLite database (no server to start), or on the
team's tracking server when `stores.mlflow` names the environment variable holding its URI.

On a server, runs, the registry and model files live there (artifacts proxied by the server to
its artifact root); a logged model is downloaded once into `mlartifacts/.server/<model id>/`
(logged models never change), and the train and promote artifacts point at
`.conveyor/mlflow-server`, a file naming the server (without credentials), since there is no
local database whose presence says the runs are there: `still_valid` asks the server.

Nothing here changes process-wide state for longer than a call: the tracking URI is set for
the duration of a `tracking(config, workspace)` block and restored after it; clients are built with
explicit URIs; MLflow's own chatter is lowered on its loggers only while we work.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from conveyor.core.config import Config
from conveyor.core.environment import from_env, redact
from conveyor.core.locking import FileLock, hold
from conveyor.core.workspace import Workspace

__all__ = [
    "client", "experiment_id", "local_model_path", "model_files_exist", "on_server", "pip_requirements", "quiet",
    "quiet_downloads", "registry_db", "store_path", "tracking", "tracking_uri", "where",
]

SERVER_MARKER = "mlflow-server"
"""The file in `.conveyor/` that train and promote artifacts point at when MLflow is a server."""

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


def on_server(config: Config) -> bool:
    """True when the project tracks and registers on an MLflow server (`stores.mlflow`)."""
    return config.stores.mlflow is not None


def tracking_uri(config: Config, workspace: Workspace) -> str:
    """The MLflow tracking (and registry) URI: the server's, read from the environment variable
    `stores.mlflow.tracking_uri_env` names, else the workspace's SQLite database."""
    store = config.stores.mlflow
    if store is None:
        return workspace.mlflow_uri
    return from_env(store.tracking_uri_env, "stores.mlflow.tracking_uri_env", "http://mlflow-host:5000")


def where(config: Config, workspace: Workspace) -> str:
    """Where runs and models are, for a message: `mlflow.db`'s path, or the server without credentials."""
    if not on_server(config):
        return str(workspace.mlflow_db)
    return f"the MLflow server {redact(tracking_uri(config, workspace))}"


def store_path(config: Config, workspace: Workspace) -> Path:
    """The path of the train and promote artifacts: `mlflow.db`, or on a server `.conveyor/mlflow-server`
    (written here, naming the server without credentials)."""
    if not on_server(config):
        return workspace.mlflow_db
    from conveyor.core.report import write_text

    marker = workspace.state / SERVER_MARKER
    text = f"runs and models of this project are on the MLflow server {redact(tracking_uri(config, workspace))}\n"
    if not marker.is_file() or marker.read_text(encoding="utf-8") != text:
        workspace.ensure(workspace.state)
        write_text(marker, text)
    return marker


@contextlib.contextmanager
def tracking(config: Config, workspace: Workspace) -> Iterator[Any]:
    """MLflow's fluent API pointed at this project's tracking store for the block; yields the `mlflow` module."""
    import mlflow
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri

    uri = tracking_uri(config, workspace)
    if _is_server(uri):
        _without_feast_header_provider()
    with _quiet_loggers(), _environment_kept(), _use_tracking_uri(uri):
        os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"  # no "View run at ..." on our stdout
        yield mlflow


@contextlib.contextmanager
def _environment_kept() -> Iterator[None]:
    """MLflow's variables as they were before the block: leaving `_use_tracking_uri` unsets
    `MLFLOW_TRACKING_URI`, which may be the very variable `stores.mlflow` names."""
    names = ("MLFLOW_TRACKING_URI", "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR")
    saved = {name: os.environ.get(name) for name in names}
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _without_feast_header_provider() -> None:
    """Load MLflow's request-header providers without Feast's.

    Feast registers an `mlflow.request_header_provider` entry point; MLflow loads every one before
    its first request to a server, which imports all of Feast (6 s of CPU, 40 s on a busy
    machine) in a process that never uses it: a cached `conveyor run`, `conveyor models`.
    """
    import sys

    if "mlflow.tracking.request_header.registry" in sys.modules:
        return
    import mlflow.utils.plugins as plugins

    original = plugins.get_entry_points

    def filtered(group: str) -> list[Any]:
        points = original(group)
        if group != "mlflow.request_header_provider":
            return points
        return [p for p in points if not str(p.value).startswith("feast.")]

    plugins.get_entry_points = filtered  # the registry binds it when imported, and uses it then only
    try:
        import mlflow.tracking.request_header.registry  # noqa: F401
    finally:
        plugins.get_entry_points = original


def client(config: Config, workspace: Workspace) -> Any:
    """An `MlflowClient` on the project's tracking store and registry."""
    from mlflow import MlflowClient

    uri = tracking_uri(config, workspace)
    if _is_server(uri):
        _without_feast_header_provider()
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


def registry_db(uri: str) -> Path | None:
    """The database file of a `sqlite:///` tracking URI; None for any other kind."""
    if not uri.startswith("sqlite:///"):
        return None
    path = unquote(uri.removeprefix("sqlite:///").split("?", 1)[0])
    return Path(path).resolve() if path and path != ":memory:" else None


def experiment_id(mlflow_client: Any, config: Config, workspace: Workspace, name: str) -> str:
    found = mlflow_client.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    if _is_server(tracking_uri(config, workspace)):  # the server's artifact root (proxied): nothing local
        return _create_experiment(mlflow_client, name, None)
    workspace.ensure(workspace.mlartifacts)
    return _create_experiment(mlflow_client, name, workspace.mlartifacts.as_uri())


def _is_server(uri: str) -> bool:
    """A tracking server (artifacts where it keeps them), not a database this process opens."""
    return urlparse(uri).scheme in ("http", "https")


def _create_experiment(mlflow_client: Any, name: str, location: str | None) -> str:
    """Create the experiment; when another process created it first, take theirs."""
    from mlflow.exceptions import MlflowException

    try:
        return str(mlflow_client.create_experiment(
            name, artifact_location=location,
            tags={"mlflow.experimentKind": "custom_model_development"},  # MLflow 3's UI: the runs view, not GenAI
        ))
    except MlflowException:
        found = mlflow_client.get_experiment_by_name(name)
        if found is None:
            raise
        return str(found.experiment_id)


def _file_path(uri: str) -> Path:
    parsed = urlparse(uri)
    return Path(unquote(parsed.path)) if parsed.scheme in ("file", "") else Path(uri)


def local_model_path(mlflow_client: Any, config: Config, workspace: Workspace, model_id: str) -> Path:
    """Where a logged model's files are in *this* workspace, even after the folder moved.

    MLflow stores absolute artifact locations. Experiments are created with the workspace's
    `mlartifacts/` as their root, so a location under the root it had when recorded is
    re-rooted under the current `mlartifacts/`. On a server, the model's files are downloaded
    once into `mlartifacts/.server/<model id>/`.
    """
    model = mlflow_client.get_logged_model(model_id)
    if not _is_local(model.artifact_location):
        return _downloaded(mlflow_client, config, workspace, model)
    path = _file_path(model.artifact_location)
    if path.exists():
        return path
    experiment = mlflow_client.get_experiment(model.experiment_id)
    old_root = _file_path(experiment.artifact_location)
    try:
        return workspace.mlartifacts / path.relative_to(old_root)
    except ValueError:
        return path  # not under the recorded root: report the path as MLflow has it


@contextlib.contextmanager
def quiet_downloads() -> Iterator[None]:
    """Artifact downloads without MLflow's progress bar on our stderr."""
    with _quiet_loggers(), _environment_kept():
        os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
        yield


def _is_local(location: str) -> bool:
    return urlparse(location).scheme in ("file", "")


def _downloaded(mlflow_client: Any, config: Config, workspace: Workspace, model: Any) -> Path:
    """A logged model's files from the server, in a local cache (a logged model never changes)."""
    import shutil
    import tempfile

    from mlflow.artifacts import download_artifacts

    model_id = str(model.model_id)
    target = workspace.mlartifacts / ".server" / model_id
    if (target / "MLmodel").is_file():
        return target
    workspace.ensure(target.parent)
    staging = Path(tempfile.mkdtemp(prefix=f".{model_id}.", dir=target.parent))
    try:
        with quiet_downloads():
            download_artifacts(artifact_uri=model.artifact_location, dst_path=str(staging),
                               tracking_uri=tracking_uri(config, workspace))
        found = next(staging.rglob("MLmodel"), None)
        if found is None:
            return target  # no model files on the server: callers check for MLmodel
        try:
            found.parent.replace(target)
        except OSError:
            if not (target / "MLmodel").is_file():  # not another process's download landing first
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def model_files_exist(mlflow_client: Any, config: Config, workspace: Workspace, model_id: str) -> str | None:
    """None when a logged model's files are there (on the server: listed by it), else where they are missing."""
    if not _is_local(mlflow_client.get_logged_model(model_id).artifact_location):
        names = {Path(str(f.path)).name for f in mlflow_client.list_logged_model_artifacts(model_id)}
        return None if "MLmodel" in names else f"{where(config, workspace)} (model {model_id})"
    path = local_model_path(mlflow_client, config, workspace, model_id)
    return None if (path / "MLmodel").exists() else str(path)


def pip_requirements() -> list[str]:
    """The installed versions, pinned: MLflow would otherwise spend seconds inferring them."""
    pins = []
    for name in _REQUIREMENTS:
        try:
            pins.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return pins
