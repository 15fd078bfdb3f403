"""The model Conveyor logs to MLflow: the fitted encoder and estimator, as one pyfunc."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import mlflow.pyfunc
import pandas as pd  # imported by mlflow.pyfunc already; `predict`'s hints name it

from conveyor.stages.training._encoder import FeatureEncoder

if TYPE_CHECKING:
    import numpy as np

__all__ = ["Averaged", "ConveyorModel"]


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
        self.__dict__.pop("_threads_", None)
        self.__dict__.pop("_predictor_", None)

    def __getstate__(self) -> dict[str, Any]:
        """Pickled (MLflow logs the model) without the predictor, which holds LightGBM's C handles."""
        state = self.__dict__.copy()
        state.pop("_predictor_", None)
        return state

    def _outputs(self, matrix: np.ndarray) -> dict[str, list[Any]]:
        if self.task == "regression":
            return {"prediction": self._predict(matrix).tolist()}
        probabilities = self._predict_proba(matrix)
        best = probabilities.argmax(axis=1)
        assert self.classes is not None
        labels = [self.classes[i] for i in best.tolist()]
        if len(self.classes) == 2:
            return {"prediction": labels, "probability": probabilities[:, 1].tolist()}
        return {"prediction": labels, "probability": probabilities.max(axis=1).tolist()}

    def _members(self) -> list[Any]:
        return list(self.estimator.members) if isinstance(self.estimator, Averaged) else [self.estimator]

    @staticmethod
    def _booster(estimator: Any) -> Any:
        """The LightGBM Booster behind an estimator, or None: one `Booster.predict` per batch skips
        the scikit-learn wrapper's input checks and parameter copies (about half the time of a
        100-row predict), with the same numbers."""
        inner = getattr(estimator, "regressor", None) if hasattr(estimator, "inverse") else estimator
        return getattr(inner, "booster_", None) if type(inner).__module__.startswith("lightgbm") else None

    def boosters(self) -> list[Any]:
        """The LightGBM boosters the model predicts with (one per averaged member); none for another estimator."""
        found = [self._booster(member) for member in self._members()]
        return [booster for booster in found if booster is not None]

    def use_predictor(self, booster: Any, predictor: Any) -> None:
        """Predict `booster`'s outputs with `predictor` from now on: callable on a matrix, with `accepts(matrix)`
        and a `booster` attribute, as `BoosterPredictor` (serving swaps in compiled trees this way)."""
        if predictor.booster is not booster:
            raise ValueError("the predictor belongs to another booster")
        self.__dict__.setdefault("_predictor_", {})[id(booster)] = predictor  # one assignment: requests see either

    def _predict(self, matrix: np.ndarray) -> np.ndarray:
        import numpy as np

        values = [self._predict_one(member, matrix) for member in self._members()]
        return values[0] if len(values) == 1 else np.asarray(np.mean(values, axis=0), dtype=np.float64)

    def _predict_one(self, estimator: Any, matrix: np.ndarray) -> np.ndarray:
        import numpy as np

        booster = self._booster(estimator)
        if booster is None:
            return np.asarray(estimator.predict(matrix), dtype=np.float64)
        values = self._booster_predict(booster, matrix)
        inverse = getattr(estimator, "inverse", None)  # a model of a transformed target (log1p)
        return np.asarray(inverse(values), dtype=np.float64) if inverse is not None else values

    def _predict_proba(self, matrix: np.ndarray) -> np.ndarray:
        import numpy as np

        values = [self._predict_proba_one(member, matrix) for member in self._members()]
        return values[0] if len(values) == 1 else np.asarray(np.mean(values, axis=0), dtype=np.float64)

    def _predict_proba_one(self, estimator: Any, matrix: np.ndarray) -> np.ndarray:
        import numpy as np

        booster = self._booster(estimator)
        if booster is None:
            return np.asarray(estimator.predict_proba(matrix), dtype=np.float64)
        result = self._booster_predict(booster, matrix)
        if result.ndim == 1:  # binary: the positive class, as LGBMClassifier.predict_proba stacks it
            return np.vstack((1.0 - result, result)).transpose()
        return result

    def _booster_predict(self, booster: Any, matrix: np.ndarray) -> np.ndarray:
        """`booster.predict(matrix, num_threads=...)`, through one `BoosterPredictor` kept per booster (an
        averaged model has several; the same values, without `Booster.predict`'s work per call) when it
        takes the matrix."""
        import numpy as np

        predictors = self.__dict__.setdefault("_predictor_", {})
        predictor = predictors.get(id(booster), False)
        if predictor is False:  # `setdefault`: a predictor `use_predictor` put in meanwhile stays
            from conveyor.stages.training._booster import booster_predictor

            predictor = predictors.setdefault(id(booster), booster_predictor(booster, self._threads()))
        elif predictor is not None and predictor.booster is not booster:  # a gone booster's, by a reused id
            from conveyor.stages.training._booster import booster_predictor

            predictor = predictors[id(booster)] = booster_predictor(booster, self._threads())
        if predictor is not None and predictor.accepts(matrix):
            found: np.ndarray = predictor(matrix)
            return found
        return np.asarray(booster.predict(matrix, num_threads=self._threads()), dtype=np.float64)

    def _threads(self) -> int:
        """`n_jobs` as `set_threads` left it, read once (`get_params` inspects signatures)."""
        threads = self.__dict__.get("_threads_")
        if threads is None:
            found = self.estimator.get_params().get("n_jobs") if hasattr(self.estimator, "get_params") else None
            threads = self.__dict__["_threads_"] = int(found) if isinstance(found, int) and found > 0 else 1
        return int(threads)

    def predict_records(self, rows: list[dict[str, Any]], *, cleaned: bool = False) -> dict[str, list[Any]]:
        """Predict plain dict rows; `cleaned` says `encoder.clean` was applied already."""
        return self._outputs(self.encoder.transform_records(rows, cleaned=cleaned))

    def predict_columns(
        self, columns: dict[str, list[Any]], count: int,
    ) -> tuple[dict[str, list[Any]], dict[int, dict[str, str]], dict[str, list[Any]]]:
        """The serving path of a batch given by column (feature -> values; a feature not given is
        missing): the missing-value rule, the screen and the encoding run on whole columns, then one
        predict. Returns the outputs (as `predict_records`), the screen's findings (row -> feature ->
        why; those values are answered as missing) and the cleaned columns (what the log records)."""
        import numpy as np

        encoder = self.encoder
        cleaned = encoder.clean_columns(columns)
        flags = encoder.screen_columns(cleaned, count)
        matrix = encoder.transform_columns(cleaned, count)
        if flags:  # what training never saw is predicted as missing: the same as None before the encoding
            position = {name: index for index, name in enumerate(encoder.columns)}
            rows = [row for row, flag in flags.items() for _ in flag]
            cells = [position[name] for flag in flags.values() for name in flag]
            matrix[rows, cells] = np.nan
        return self._outputs(matrix), flags, cleaned

    def predict_frame(self, frame: pd.DataFrame) -> dict[str, list[Any]]:
        return self._outputs(self.encoder.transform(frame))

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        """MLflow validates the input against the logged signature, not these hints: a DataFrame
        hint asks for no validation of its own."""
        return pd.DataFrame(self.predict_frame(model_input))


class Averaged:
    """Fitted models whose outputs are averaged with equal weights: predictions (regression, on the
    target's scale) or class probabilities. Pickled inside the logged model, so it lives here beside
    `ConveyorModel` and needs NumPy only (`_portable.py`)."""

    def __init__(self, members: list[Any]) -> None:
        if not members:
            raise ValueError("Averaged needs at least one fitted model")
        self.members = list(members)

    @property
    def classes_(self) -> Any:
        return self.members[0].classes_

    @property
    def feature_importances_(self) -> np.ndarray | None:
        """Each member's importances as shares of its own total, averaged (members differ in rounds)."""
        import numpy as np

        inner = [getattr(m, "regressor", m) if hasattr(m, "inverse") else m for m in self.members]  # a log target's own model
        found = [np.asarray(i.feature_importances_, dtype=np.float64) for i in inner
                 if getattr(i, "feature_importances_", None) is not None]
        if len(found) != len(self.members):
            return None
        return np.asarray(np.mean([f / f.sum() if f.sum() > 0 else f for f in found], axis=0), dtype=np.float64)

    def predict(self, x: np.ndarray) -> np.ndarray:
        import numpy as np

        return np.asarray(np.mean([np.asarray(m.predict(x), dtype=np.float64) for m in self.members], axis=0))

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        import numpy as np

        return np.asarray(np.mean([np.asarray(m.predict_proba(x), dtype=np.float64) for m in self.members], axis=0))

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The first member's (the one the search chose)."""
        return dict(self.members[0].get_params(deep))

    def set_params(self, **params: Any) -> Averaged:
        for member in self.members:
            member.set_params(**params)
        return self
