"""`conveyor serve`, composed: the champion, the online store and the prediction log, behind serving's Protocols.

Serving imports no other stage; this is where training (`load_champion`), features
(`OnlineFeatures`) and monitoring (`PredictionLog`) meet it. Stage code is imported inside
the functions, so importing the runner (and `conveyor --help`) stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from conveyor.core.config import Config
from conveyor.core.records import REFERENCE_PREDICTION
from conveyor.core.workspace import Workspace

if TYPE_CHECKING:
    from conveyor.stages.serving import ServiceParts
    from conveyor.stages.training import Champion

__all__ = ["ChampionModel", "open_service", "prediction_buckets", "serve_project"]


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


def open_service(config: Config, workspace: Workspace) -> ServiceParts:
    """Open everything the service needs; raises a ConveyorError naming what is missing."""
    from conveyor.stages.features import OnlineFeatures
    from conveyor.stages.monitoring import PredictionLog
    from conveyor.stages.serving import ServiceParts
    from conveyor.stages.training import load_champion

    champion = load_champion(config, workspace, threads=1)
    return ServiceParts(
        model=ChampionModel(champion),
        features=OnlineFeatures(config, workspace),
        log=PredictionLog(workspace.predictions),
        value_buckets=prediction_buckets(champion.reference, config.schema.task),
    )


def prediction_buckets(reference: str | None, task: str) -> tuple[float, ...] | None:
    """Histogram buckets at the deciles of the champion's predictions on its training data (regression)."""
    if reference is None or task != "regression":
        return None
    import numpy as np
    import pyarrow.parquet as pq

    values = pq.read_table(reference, columns=[REFERENCE_PREDICTION])[REFERENCE_PREDICTION].to_numpy()
    edges = np.unique(np.round(np.quantile(values, np.linspace(0, 1, 11)), 3))
    return (*[float(e) for e in edges], float("inf"))


def serve_project(config: Config, workspace: Workspace, host: str | None, port: int | None) -> None:
    """Open the service (a missing piece fails here, before the port is bound), then serve it."""
    from conveyor.stages.serving import create_app, serve

    app = create_app(config, open_service(config, workspace))
    serve(app, host or config.serving.host, port or config.serving.port)
