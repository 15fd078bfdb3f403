"""The one transform from feature values to a model matrix, in training and in serving.

Fitted on the training split (scikit-learn protocol: `fit` returns self, learned state ends
in `_`), pickled with the model, and applied unchanged to every serving request, so a model
never sees features encoded differently from how it learned them.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import TYPE_CHECKING, Any

from conveyor.core.cleaning import MissingValues, level

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = ["FeatureEncoder"]


class FeatureEncoder:
    """Numeric features as floats (missing as NaN); categorical ones as integer codes.

    Codes follow the training frequency of each level; a level unseen in training, or a
    missing value, becomes NaN, which the models treat as missing.
    """

    def __init__(self, numeric: list[str], categorical: list[str], missing: MissingValues | None = None) -> None:
        self.numeric = list(numeric)
        self.categorical = list(categorical)
        self.missing = (missing or MissingValues()).only(self.columns)

    def clean(self, row: dict[str, Any]) -> dict[str, Any]:
        """A row with the project's 'means missing' values (cleaning.null_values) set to None.

        Training data went through the same rule (the same `MissingValues`) in `prepare`;
        serving applies it here, so a raw request and the online store's row for the same
        entity give the same prediction.
        """
        return self.missing.clean(row)

    @property
    def columns(self) -> list[str]:
        return [*self.numeric, *self.categorical]

    @property
    def categorical_indices(self) -> list[int]:
        return list(range(len(self.numeric), len(self.columns)))

    def fit(self, frame: pd.DataFrame) -> FeatureEncoder:
        self.codes_: dict[str, dict[str, int]] = {}
        for name in self.categorical:
            counts = Counter(level(v) for v in frame[name].tolist())
            counts.pop(None, None)
            ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
            self.codes_[name] = {lvl: code for code, (lvl, _) in enumerate(ordered) if lvl is not None}
        return self

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """A frame with the feature columns to a float matrix, columns in `self.columns` order."""
        import numpy as np
        import pandas as pd

        out = np.empty((len(frame), len(self.columns)), dtype=np.float64)
        if self.missing:
            frame = frame.copy()
            for name in self.missing.per_column:
                frame[name] = [None if self.missing.is_missing(name, v) else v for v in frame[name].tolist()]
        for index, name in enumerate(self.numeric):
            out[:, index] = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        for offset, name in enumerate(self.categorical):
            codes = self.codes_[name]
            out[:, len(self.numeric) + offset] = [
                codes.get(level(v), math.nan) for v in frame[name].tolist()  # type: ignore[arg-type]
            ]
        return out

    def transform_records(self, rows: list[dict[str, Any]], *, cleaned: bool = False) -> np.ndarray:
        """The serving path: plain dicts to the same matrix, no pandas on the way."""
        import numpy as np

        out = np.empty((len(rows), len(self.columns)), dtype=np.float64)
        for r, row in enumerate(rows):
            if not cleaned:
                row = self.clean(row)
            for c, name in enumerate(self.numeric):
                value = row.get(name)
                out[r, c] = math.nan if value is None else float(value)
            for offset, name in enumerate(self.categorical):
                out[r, len(self.numeric) + offset] = self.codes_[name].get(level(row.get(name)), math.nan)  # type: ignore[arg-type]
        return out
