"""A model of a transformed regression target. Pickled inside the logged model, so it lives in a
module of its own that needs NumPy only, copied with the model (`_portable.py`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

__all__ = ["LogTarget"]


class LogTarget:
    """A regressor fitted on log1p(y), its predictions turned back with expm1: scored, gated and served
    on the original scale. Early stopping watches the fold on the log scale it learns on."""

    def __init__(self, regressor: Any) -> None:
        self.regressor = regressor

    def fit(self, x: np.ndarray, y: np.ndarray, **fit_params: Any) -> LogTarget:
        import numpy as np

        if "eval_y" in fit_params:
            fit_params["eval_y"] = tuple(np.log1p(v) for v in fit_params["eval_y"])
        self.regressor.fit(x, np.log1p(y), **fit_params)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        import numpy as np

        return np.asarray(np.expm1(self.regressor.predict(x)), dtype=np.float64)

    def inverse(self, values: np.ndarray) -> np.ndarray:
        """The model's own output back on the target's scale (serving predicts with the booster)."""
        import numpy as np

        return np.asarray(np.expm1(values), dtype=np.float64)

    @property
    def best_iteration_(self) -> int | None:
        return getattr(self.regressor, "best_iteration_", None)

    @property
    def booster_(self) -> Any:
        return self.regressor.booster_

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {**self.regressor.get_params(deep), "target": "log"}

    def set_params(self, **params: Any) -> LogTarget:
        params.pop("target", None)
        self.regressor.set_params(**params)
        return self
