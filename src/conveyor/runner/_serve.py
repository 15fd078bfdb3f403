"""`conveyor serve`, composed: the champion, the online store and the prediction log, behind serving's Protocols.

Serving imports no other stage; this is where training (`load_champion`), features
(`OnlineFeatures`) and monitoring (`PredictionLog`) meet it. Stage code is imported inside
the functions, so importing the runner (and `conveyor --help`) stays light.

Hot swap: `ChampionReloader` is the `Reloader` serving polls. It looks at the registry
database's size and modification time first (a `stat`, every `serving.reload_s`), and only
when that changed loads `@champion` with `load_champion`; the new model goes to serving only
when its version differs.

Several workers (`serving.workers`, `--workers`): uvicorn starts the processes, each calls
`worker_app()` (the project folder is passed in `CONVEYOR_PROJECT`) and loads its own model;
the prediction log is safe with several appending processes (`O_APPEND`, one write per batch).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.core.config import Config
from conveyor.core.errors import ServingError
from conveyor.core.records import REFERENCE_PREDICTION
from conveyor.core.workspace import Workspace

if TYPE_CHECKING:
    from fastapi import FastAPI

    from conveyor.stages.serving import ServiceParts
    from conveyor.stages.training import Champion

__all__ = [
    "ChampionModel", "ChampionReloader", "open_service", "prediction_buckets", "serve_project", "usable_cores",
    "worker_app",
]

PROJECT_ENV = "CONVEYOR_PROJECT"


class ChampionModel:
    """training's `Champion` as serving's `ServedModel`."""

    def __init__(self, champion: Champion) -> None:
        self.name = champion.name
        self.version = champion.version
        self.run_id = champion.run_id
        self._model = champion.model
        self.task: str = champion.model.task
        self.features: list[str] = list(champion.model.features)
        self._missing = champion.model.encoder.missing
        self._rules = [name for name in self._missing.per_column if name in self.features]

    def clean(self, row: dict[str, Any]) -> dict[str, Any]:
        """`encoder.clean`, visiting only the columns that have a missing-value rule (the hot path)."""
        cleaned = dict(row)
        for name in self._rules:
            if name in cleaned and self._missing.is_missing(name, cleaned[name]):
                cleaned[name] = None
        return cleaned

    def predict_records(self, rows: list[dict[str, Any]], *, cleaned: bool) -> dict[str, list[Any]]:
        return self._model.predict_records(rows, cleaned=cleaned)


def _stamp(database: Path) -> tuple[int, ...]:
    """Size and mtime of the registry database (and its WAL, if any): a change may have moved the alias."""
    stamp: list[int] = []
    for path in (database, database.with_name(database.name + "-wal")):
        try:
            info = path.stat()
            stamp += [info.st_size, info.st_mtime_ns]
        except FileNotFoundError:
            stamp += [-1, -1]
    return tuple(stamp)


class ChampionReloader:
    """serving's `Reloader`: the champion, loaded again when `@champion` points to another version."""

    def __init__(self, config: Config, workspace: Workspace, version: str) -> None:
        self.config = config
        self.workspace = workspace
        self.version = version
        self._stamp = _stamp(workspace.mlflow_db)

    def __call__(self, *, force: bool = False) -> ChampionModel | None:
        from conveyor.stages.training import load_champion

        stamp = _stamp(self.workspace.mlflow_db)
        if stamp == self._stamp and not force:
            return None
        champion = load_champion(self.config, self.workspace, threads=1)
        self._stamp = stamp  # taken before the load: a promotion during it is seen at the next poll
        if champion.version == self.version:
            return None
        self.version = champion.version
        return ChampionModel(champion)


def open_service(config: Config, workspace: Workspace) -> ServiceParts:
    """Open everything the service needs; raises a ConveyorError naming what is missing."""
    from conveyor.stages.features import OnlineFeatures
    from conveyor.stages.monitoring import PredictionLog
    from conveyor.stages.serving import ServiceParts
    from conveyor.stages.training import load_champion

    champion = load_champion(config, workspace, threads=1)
    shadow = _shadow_model(config, workspace) if config.serving.shadow else None
    return ServiceParts(
        model=ChampionModel(champion),
        features=OnlineFeatures(config, workspace),
        log=PredictionLog(workspace.predictions, fsync=config.serving.fsync),
        value_buckets=prediction_buckets(champion.reference, config.schema.task),
        reload=ChampionReloader(config, workspace, champion.version),
        shadow=shadow,
        shadow_log=PredictionLog(workspace.predictions / "shadow") if shadow is not None else None,
    )


def _shadow_model(config: Config, workspace: Workspace) -> ChampionModel:
    """`serving.shadow`: a registered version number or an alias of the project's model."""
    # training has no public call for "a version other than @champion" yet; these are its own helpers.
    from conveyor.stages.training import Champion
    from conveyor.stages.training._registry import _load, model_id_of
    from conveyor.stages.training._tracking import client

    ref = str(config.serving.shadow)
    mlflow_client = client(workspace)
    try:
        found = (mlflow_client.get_model_version(config.name, ref) if ref.isdigit()
                 else mlflow_client.get_model_version_by_alias(config.name, ref))
        model = _load(mlflow_client, workspace, model_id_of(found))
    except Exception as exc:
        raise ServingError(
            f"serving.shadow is {ref!r}, but models:/{config.name}/{ref} cannot be loaded: {exc}; "
            "name a registered version or alias, or remove serving.shadow"
        ) from exc
    model.set_threads(1)
    return ChampionModel(Champion(config.name, str(found.version), found.run_id, model, None))


def prediction_buckets(reference: str | None, task: str) -> tuple[float, ...] | None:
    """Histogram buckets at the deciles of the champion's predictions on its training data (regression)."""
    if reference is None or task != "regression":
        return None
    import numpy as np
    import pyarrow.parquet as pq

    values = pq.read_table(reference, columns=[REFERENCE_PREDICTION])[REFERENCE_PREDICTION].to_numpy()
    edges = np.unique(np.round(np.quantile(values, np.linspace(0, 1, 11)), 3))
    return (*[float(e) for e in edges], float("inf"))


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def worker_app() -> FastAPI:
    """The app of one uvicorn worker process: the project folder comes in `CONVEYOR_PROJECT`."""
    from conveyor.runner._commands import load_project
    from conveyor.stages.serving import create_app

    config, workspace = load_project(Path(os.environ[PROJECT_ENV]))
    return create_app(config, open_service(config, workspace))


def serve_project(
    config: Config, workspace: Workspace, host: str | None, port: int | None, workers: int | None = None
) -> None:
    """Open the service (a missing piece fails here, before the port is bound), then serve it."""
    from conveyor.stages.serving import create_app, serve

    setting = config.serving.workers
    count = workers or (usable_cores() if setting == "auto" else setting)
    app = create_app(config, open_service(config, workspace))
    if count <= 1:
        serve(app, host or config.serving.host, port or config.serving.port)
        return
    del app  # checked; each worker opens its own
    os.environ[PROJECT_ENV] = str(workspace.root)
    serve(f"{__name__}:worker_app", host or config.serving.host, port or config.serving.port, workers=count)
