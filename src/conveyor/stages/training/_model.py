"""The model Conveyor logs to MLflow: the fitted encoder and estimator, as one pyfunc."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import mlflow.pyfunc
import pandas as pd  # imported by mlflow.pyfunc already; `predict`'s hints name it

from conveyor.stages.training._encoder import FeatureEncoder

if TYPE_CHECKING:
    import numpy as np

__all__ = ["ConveyorModel"]


class ConveyorModel(mlflow.pyfunc.PythonModel):  # type: ignore[misc,name-defined]
    """Raw feature rows in, predictions out; the same code path in training and serving.

    `predict` is the MLflow pyfunc entry point (a DataFrame in, a DataFrame out). Serving
    unwraps this object and calls `predict_records` on plain dicts, skipping pandas.
    """

    def __init__(self, encoder: FeatureEncoder, estimator: Any, task: str, classes: list[Any] | None = None) -> None:
        self.encoder = encoder
        self.estimator = estimator
        self.task = task
        self.classes = classes

    @property
    def features(self) -> list[str]:
        return self.encoder.columns

    def set_threads(self, threads: int) -> None:
        """Serving predicts one small batch at a time: one thread avoids OpenMP spinning."""
        if hasattr(self.estimator, "set_params") and "n_jobs" in self.estimator.get_params():
            self.estimator.set_params(n_jobs=threads)

    def _outputs(self, matrix: np.ndarray) -> dict[str, list[Any]]:
        if self.task == "regression":
            return {"prediction": [float(v) for v in self.estimator.predict(matrix)]}
        probabilities = self.estimator.predict_proba(matrix)
        best = probabilities.argmax(axis=1)
        assert self.classes is not None
        labels = [self.classes[i] for i in best]
        if len(self.classes) == 2:
            return {"prediction": labels, "probability": [float(p) for p in probabilities[:, 1]]}
        return {"prediction": labels, "probability": [float(p) for p in probabilities.max(axis=1)]}

    def predict_records(self, rows: list[dict[str, Any]], *, cleaned: bool = False) -> dict[str, list[Any]]:
        """Predict plain dict rows; `cleaned` says `encoder.clean` was applied already."""
        return self._outputs(self.encoder.transform_records(rows, cleaned=cleaned))

    def predict_frame(self, frame: pd.DataFrame) -> dict[str, list[Any]]:
        return self._outputs(self.encoder.transform(frame))

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        """MLflow validates the input against the logged signature, not these hints: a DataFrame
        hint asks for no validation of its own."""
        return pd.DataFrame(self.predict_frame(model_input))
