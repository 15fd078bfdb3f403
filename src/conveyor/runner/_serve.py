"""`conveyor serve`, composed: the champion, the online store and the prediction log, behind serving's Protocols.

Serving imports no other stage; this is where training (`load_champion`), features
(`OnlineFeatures`) and monitoring (`PredictionLog`) meet it. Stage code is imported inside
the functions, so importing the runner (and `conveyor --help`) stays light.

Hot swap: `ChampionReloader` is the `Reloader` serving polls. It looks at the registry
database's size and modification time first (a `stat`, every `serving.reload_s`; on an MLflow
server, where `@champion` points), and only
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

    from conveyor.stages.serving import ModelsApp, ServiceParts
    from conveyor.stages.training import Champion, TreeCompiler

__all__ = [
    "ChampionModel", "ChampionReloader", "build_app", "open_champion", "open_model_service", "open_service", "prediction_buckets", "serve_project", "usable_cores",
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
        self.compiler: TreeCompiler | None = None

    def compile(self, workspace: Workspace) -> ChampionModel:
        """Start compiling the model's trees in the background (`serving.compiled`); LightGBM answers meanwhile."""
        from conveyor.stages.training import TreeCompiler

        self.compiler = TreeCompiler(self._model, workspace.compiled, f"{self.name} v{self.version}").start()
        return self

    @property
    def predictor(self) -> dict[str, str]:
        """What `/health` shows: which predictor answers, and how the compile of the trees stands."""
        compiler = self.compiler
        if compiler is None:
            boosters = getattr(self._model, "boosters", None)
            return {"predictor": "lightgbm" if boosters is not None and boosters() else "estimator", "compile": "off"}
        state = {"predictor": compiler.predictor, "compile": compiler.state}
        if compiler.reason is not None:
            state["compile_error"] = compiler.reason
        return state

    def clean(self, row: dict[str, Any]) -> dict[str, Any]:
        return self._model.encoder.clean(row)

    def predict_records(self, rows: list[dict[str, Any]], *, cleaned: bool) -> dict[str, list[Any]]:
        return self._model.predict_records(rows, cleaned=cleaned)

    def screen(self, rows: list[dict[str, Any]]) -> list[dict[str, str]]:
        return self._model.encoder.screen(rows)

    def predict_columns(
        self, columns: dict[str, list[Any]], count: int,
    ) -> tuple[dict[str, list[Any]], dict[int, dict[str, str]], dict[str, list[Any]]]:
        return self._model.predict_columns(columns, count)


class EngineeredModel:
    """A model that also reads engineered features (`features.aggregates`, `lags`, `on_demand`).

    A request gives the schema's features; each row gets its entities' online aggregates
    (`OnlineFeatures.entity_features`, which owns the rule for an entity the store has never
    seen) and its on-demand values (`on_demand_values`, the same expressions as the training
    set) before the model sees it.
    """

    def __init__(self, inner: ChampionModel, config: Config, online: Any) -> None:
        from conveyor.stages.features import on_demand_values

        self._inner, self._config, self._online = inner, config, online
        self._on_demand = on_demand_values
        engineered = set(config.features.engineered())
        self.name, self.version, self.run_id, self.task = inner.name, inner.version, inner.run_id, inner.task
        self.features = [f for f in inner.features if f not in engineered]

    @property
    def predictor(self) -> dict[str, str]:
        return self._inner.predictor

    def clean(self, row: dict[str, Any]) -> dict[str, Any]:
        return self._inner.clean(row)

    def screen(self, rows: list[dict[str, Any]]) -> list[dict[str, str]]:
        return self._inner.screen(rows)

    def _entities(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if not self._config.features.entities:
            return [{} for _ in rows]
        found: list[dict[str, Any]] = self._online.entity_features(rows)
        return found

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
    """serving's `Reloader`: the champion, loaded again when `@champion` points to another version.

    On `mlflow.db` the check is a `stat` of the database (a change may have moved the alias); on
    an MLflow server (`stores.mlflow`) there is no file to watch, so each poll asks the registry
    where `@champion` points (one small request). `compiled`: a new champion's trees are compiled in
    the background as the first one's were (`conveyor serve`, with `serving.compiled`)."""

    def __init__(
        self, config: Config, workspace: Workspace, version: str, online: Any = None, *, compiled: bool = False,
    ) -> None:
        self.config = config
        self.workspace = workspace
        self.version = version
        self.online = online
        self.compiled = compiled
        self._stamp = self._now()

    def _now(self) -> tuple[Any, ...]:
        if self.config.stores.mlflow is None:
            return _stamp(self.workspace.mlflow_db)
        from conveyor.stages.training import champion_number

        return (champion_number(self.config, self.workspace),)

    def __call__(self, *, force: bool = False) -> ChampionModel | EngineeredModel | None:
        from conveyor.stages.training import load_champion

        stamp = self._now()
        if stamp == self._stamp and not force:
            return None
        champion = load_champion(self.config, self.workspace, threads=1)
        self._stamp = stamp  # taken before the load: a promotion during it is seen at the next poll
        if champion.version == self.version:
            return None
        self.version = champion.version
        served = ChampionModel(champion)
        return served_model(self.config, served.compile(self.workspace) if self.compiled else served, self.online)


def open_champion(
    config: Config, workspace: Workspace, model: str | None = None,
) -> tuple[ChampionModel | EngineeredModel, ChampionReloader]:
    """The champion as `conveyor serve` answers with it (reading the online store and computing the
    on-demand features when the project engineers features), and the reloader that follows `@champion`.

    `config` is the project's; `model` one of its `models:`, whose champion reads the project's
    online store, as in `build_app`.
    """
    from conveyor.stages.features import OnlineFeatures
    from conveyor.stages.training import load_champion

    own = config if model is None else config.for_model(model)
    champion = load_champion(own, workspace, threads=1)
    # raw rows need the online store only for engineered features: opening it imports Feast
    # (seconds of CPU) for nothing otherwise
    online = OnlineFeatures(config, workspace) if own.features.engineered() else None
    served = served_model(own, ChampionModel(champion), online)
    return served, ChampionReloader(own, workspace, champion.version, online)


def open_model_service(
    config: Config, workspace: Workspace, model: str, online: Any, *, compiled: bool = True,
) -> ServiceParts:
    """One model of `models:`: its champion (`<project>-<model>@champion`) over the shared online
    store, its own prediction log (`predictions/<model>/`) and shadow (`serving.shadow.<model>`, logged in
    `predictions/<model>/shadow/`)."""
    return _service_parts(config.for_model(model), workspace, online, compiled)


def build_app(config: Config, workspace: Workspace, *, compiled: bool = True) -> FastAPI | ModelsApp:
    """The app of a project: one model at `/predict`, or with `models:` each at `/models/<name>/predict`.
    `compiled` False: no compile of the trees starts, whatever `serving.compiled` says (an app built to be checked)."""
    from conveyor.stages.serving import create_app, create_models_app

    if not config.models:
        return create_app(config, open_service(config, workspace, compiled=compiled))
    from conveyor.stages.features import OnlineFeatures

    online = OnlineFeatures(config, workspace)
    return create_models_app(config, {
        model: create_app(config.for_model(model), open_model_service(config, workspace, model, online, compiled=compiled))
        for model in config.models
    })


def open_service(config: Config, workspace: Workspace, *, compiled: bool = True) -> ServiceParts:
    """Open everything the service needs; raises a ConveyorError naming what is missing."""
    return _service_parts(config, workspace, None, compiled)


def _service_parts(own: Config, workspace: Workspace, online: Any | None, compiled: bool = True) -> ServiceParts:
    """A model's champion, log, reloader and shadow (`own`: the project's Config, or a model's own).

    The champion is loaded first, so a project without one says so before anything else; `online`
    None: the project's online store, opened after it.
    """
    from conveyor.stages.features import OnlineFeatures
    from conveyor.stages.monitoring import GAUGES, PredictionLog, monitor_gauges
    from conveyor.stages.serving import ServiceParts
    from conveyor.stages.training import load_champion

    champion = load_champion(own, workspace, threads=1)
    online = OnlineFeatures(own, workspace) if online is None else online
    shadow = served_model(own, _shadow_model(own, workspace), online) if own.serving.shadow else None
    log = workspace.prediction_log(own.model)
    served = ChampionModel(champion)
    compiled = compiled and own.serving.compiled
    if compiled:  # LightGBM answers until the compiled trees are ready; startup does not wait
        served.compile(workspace)
    return ServiceParts(
        model=served_model(own, served, online),
        features=online,
        log=PredictionLog(log, fsync=own.serving.fsync),
        value_buckets=prediction_buckets(champion.reference, own.schema.task),
        reload=ChampionReloader(own, workspace, champion.version, online, compiled=compiled),
        shadow=shadow,
        shadow_log=PredictionLog(log / "shadow") if shadow is not None else None,
        services=online.health,
        labels=LabelRecorder(own, workspace),
        monitor_gauges=monitor_gauges(own, workspace),
        monitor_help=GAUGES,
    )


class LabelRecorder:
    """POST /labels: labels pushed by a system, checked and recorded as `conveyor labels add` does."""

    def __init__(self, config: Config, workspace: Workspace) -> None:
        import threading

        self.config, self.workspace = config, workspace
        self._lock = threading.Lock()  # one push at a time: each checks against the labels before it

    def __call__(self, labels: list[tuple[str, Any]], *, replace: bool) -> dict[str, Any]:
        from conveyor.stages.monitoring import label_text, record_labels

        given = [(item, request_id.strip(), label_text(label), [request_id, label_text(label)])
                 for item, (request_id, label) in enumerate(labels, start=1)]
        with self._lock:
            added = record_labels(self.config, self.workspace, given, header=["request_id", "label"],
                                  source="POST /labels", where="item", replace=replace)
        return added.model_dump()


def _shadow_model(config: Config, workspace: Workspace) -> ChampionModel:
    """`serving.shadow`: a registered version number or an alias of the project's model."""
    from conveyor.stages.training import load_version

    ref = str(config.serving.shadow)
    key = "serving.shadow" if config.model is None else f"serving.shadow.{config.model}"
    try:
        return ChampionModel(load_version(config, workspace, ref, threads=1))
    except ConveyorError as exc:
        raise ServingError(f"{key} is {ref!r}, but it cannot be served: {exc}; "
                           f"name a registered version or alias of {config.name}, or remove {key}") from exc


def prediction_buckets(reference: str | None, task: str) -> tuple[float, ...] | None:
    """Histogram buckets at the deciles of the champion's predictions on its held-out test rows (regression)."""
    if reference is None or task != "regression":
        return None
    import numpy as np
    import pyarrow.parquet as pq

    values = pq.read_table(reference, columns=[REFERENCE_PREDICTION])[REFERENCE_PREDICTION].to_numpy(zero_copy_only=False)
    values = values[~np.isnan(values)]  # null on the rows the model was fitted on
    if values.size == 0:
        return None
    edges = np.unique(np.round(np.quantile(values, np.linspace(0, 1, 11)), 3))
    return (*[float(e) for e in edges], float("inf"))


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def worker_app() -> FastAPI | ModelsApp:
    """The app of one uvicorn worker process: the project folder comes in `CONVEYOR_PROJECT`."""
    from conveyor.runner._load import load_project

    config, workspace = load_project(Path(os.environ[PROJECT_ENV]))
    return build_app(config, workspace)


def serve_project(
    config: Config, workspace: Workspace, host: str | None, port: int | None, workers: int | None = None
) -> None:
    """Open the service (a missing piece fails here, before the port is bound), then serve it."""
    from conveyor.stages.serving import serve

    setting = config.serving.workers
    count = workers or (usable_cores() if setting == "auto" else setting)
    app = build_app(config, workspace, compiled=count <= 1)  # with several workers, each compiles (or loads) its own
    if count <= 1:
        serve(app, host or config.serving.host, port or config.serving.port)
        return
    del app  # checked; each worker opens its own
    os.environ[PROJECT_ENV] = str(workspace.root)
    serve(f"{__name__}:worker_app", host or config.serving.host, port or config.serving.port, workers=count)
