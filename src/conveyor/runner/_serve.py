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
from conveyor.core.errors import ConveyorError, ServingError
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

    def clean(self, row: dict[str, Any]) -> dict[str, Any]:
        return self._model.encoder.clean(row)

    def predict_records(self, rows: list[dict[str, Any]], *, cleaned: bool) -> dict[str, list[Any]]:
        return self._model.predict_records(rows, cleaned=cleaned)


class EngineeredModel:
    """A model that also reads engineered features (`features.aggregates`, `lags`, `on_demand`).

    A request gives the schema's features; each row gets its entities' online aggregates
    (`OnlineFeatures.get_entities`) and its on-demand values (`on_demand_values`, the same
    expressions as the training set) before the model sees it. An entity the store has never
    seen gets what a training row of a new entity gets: counts and sums 0, the rest missing.
    """

    def __init__(self, inner: ChampionModel, config: Config, online: Any) -> None:
        from conveyor.stages.features import on_demand_values

        self._inner, self._config, self._online = inner, config, online
        self._on_demand = on_demand_values
        engineered = set(config.features.engineered())
        self.name, self.version, self.run_id, self.task = inner.name, inner.version, inner.run_id, inner.task
        self.features = [f for f in inner.features if f not in engineered]
        self._empty = {a.output(): (0.0 if a.function in ("count", "sum") else None) for a in config.features.aggregates}
        self._empty |= {lag.output(): None for lag in config.features.lags}

    def clean(self, row: dict[str, Any]) -> dict[str, Any]:
        return self._inner.clean(row)

    def _entities(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        from conveyor.stages.features import UnknownEntityError

        if not self._config.features.entities:
            return [{} for _ in rows]
        try:
            return list(self._online.get_entities(rows))
        except UnknownEntityError:  # one row at a time, so the known ones keep their values
            out = []
            for row in rows:
                try:
                    out.append(self._online.get_entities([row])[0])
                except UnknownEntityError:
                    out.append(dict(self._empty))
            return out

    def predict_records(self, rows: list[dict[str, Any]], *, cleaned: bool) -> dict[str, list[Any]]:
        rows = [self.clean(r) for r in rows] if not cleaned else rows
        enriched = [{**row, **found} for row, found in zip(rows, self._entities(rows), strict=True)]
        derived = self._on_demand(self._config, enriched)
        enriched = [{**row, **extra} for row, extra in zip(enriched, derived, strict=True)]
        return self._inner.predict_records(enriched, cleaned=True)


def served_model(config: Config, champion: ChampionModel, online: Any) -> ChampionModel | EngineeredModel:
    """The champion as serving sees it: wrapped when the project engineers features."""
    return EngineeredModel(champion, config, online) if config.features.engineered() else champion


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

    def __init__(self, config: Config, workspace: Workspace, version: str, online: Any = None) -> None:
        self.config = config
        self.workspace = workspace
        self.version = version
        self.online = online
        self._stamp = _stamp(workspace.mlflow_db)

    def __call__(self, *, force: bool = False) -> ChampionModel | EngineeredModel | None:
        from conveyor.stages.training import load_champion

        stamp = _stamp(self.workspace.mlflow_db)
        if stamp == self._stamp and not force:
            return None
        champion = load_champion(self.config, self.workspace, threads=1)
        self._stamp = stamp  # taken before the load: a promotion during it is seen at the next poll
        if champion.version == self.version:
            return None
        self.version = champion.version
        return served_model(self.config, ChampionModel(champion), self.online)


def open_service(config: Config, workspace: Workspace) -> ServiceParts:
    """Open everything the service needs; raises a ConveyorError naming what is missing."""
    from conveyor.stages.features import OnlineFeatures
    from conveyor.stages.monitoring import PredictionLog
    from conveyor.stages.serving import ServiceParts
    from conveyor.stages.training import load_champion

    champion = load_champion(config, workspace, threads=1)
    online = OnlineFeatures(config, workspace)
    shadow = served_model(config, _shadow_model(config, workspace), online) if config.serving.shadow else None
    return ServiceParts(
        model=served_model(config, ChampionModel(champion), online),
        features=online,
        log=PredictionLog(workspace.predictions, fsync=config.serving.fsync),
        value_buckets=prediction_buckets(champion.reference, config.schema.task),
        reload=ChampionReloader(config, workspace, champion.version, online),
        shadow=shadow,
        shadow_log=PredictionLog(workspace.predictions / "shadow") if shadow is not None else None,
    )


def _shadow_model(config: Config, workspace: Workspace) -> ChampionModel:
    """`serving.shadow`: a registered version number or an alias of the project's model."""
    from conveyor.stages.training import load_version

    ref = str(config.serving.shadow)
    try:
        return ChampionModel(load_version(config, workspace, ref, threads=1))
    except ConveyorError as exc:
        raise ServingError(f"serving.shadow is {ref!r}, but it cannot be served: {exc}; "
                           "name a registered version or alias, or remove serving.shadow") from exc


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
