"""The one transform from feature values to a model matrix, in training and in serving.

Fitted on the training split (scikit-learn protocol: `fit` returns self, learned state ends
in `_`), pickled with the model, and applied unchanged to every serving request, so a model
never sees features encoded differently from how it learned them.
"""

from __future__ import annotations

import math
import weakref
from collections import Counter
from collections.abc import Mapping, Sequence
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from conveyor.core.cleaning import MissingValues, level

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = ["RANGE_MARGIN", "FeatureEncoder"]

RANGE_MARGIN = 1.0
"""A number further than this share of the training range beyond its minimum or maximum is out of range."""


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

    def clean_columns(self, columns: dict[str, list[Any]]) -> dict[str, list[Any]]:
        """`clean` over whole columns: a ruled column's distinct values are checked once each, and
        the column is copied (with None where a value means missing) only when one does."""
        out = dict(columns)
        missing = self.missing
        decided = _MISSING.setdefault(self, {})
        for name in missing.per_column:
            values = out.get(name)
            if not values:
                continue
            if bool in set(map(type, values)):  # True == 1 in a set; their levels differ
                out[name] = [None if missing.is_missing(name, v) else v for v in values]
                continue
            known = decided.setdefault(name, {})  # raw value -> means missing? (`level` once per value ever)
            found = set()
            for value in set(values):
                hit = known.get(value)
                if hit is None:
                    hit = missing.is_missing(name, value)
                    if len(known) < _SEEN_LIMIT:
                        known[value] = hit
                if hit:
                    found.add(value)
            if found:
                out[name] = [None if v in found else v for v in values]
        return out

    @property
    def columns(self) -> list[str]:
        return [*self.numeric, *self.categorical]

    @property
    def categorical_indices(self) -> list[int]:
        return list(range(len(self.numeric), len(self.columns)))

    def fit(self, frame: pd.DataFrame) -> FeatureEncoder:
        import numpy as np
        import pandas as pd

        self.codes_: dict[str, dict[str, int]] = {}
        for name in self.categorical:
            index, uniques = _factorize(frame[name])
            counts: Counter[str | None] = Counter()
            for value, n in zip(uniques, np.bincount(index[index >= 0], minlength=len(uniques)), strict=True):
                counts[level(value)] += int(n)  # 1, 1.0 and "1" are one level
            counts.pop(None, None)
            ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
            self.codes_[name] = {lvl: code for code, (lvl, _) in enumerate(ordered) if lvl is not None}
        self.ranges_: dict[str, tuple[float, float]] = {}
        for name in self.numeric:
            values = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
            if np.isfinite(values).any():
                self.ranges_[name] = (float(np.nanmin(values)), float(np.nanmax(values)))
        return self

    def screen(self, rows: list[dict[str, Any]]) -> list[dict[str, str]]:
        """Per (cleaned) row, the features whose value the model never saw in training: name -> why.

        A category is unseen when its level is not one of training's. A number is out of range
        when it lies beyond the training minimum or maximum by more than `RANGE_MARGIN` (1.0) of
        the training range: twice as far from the middle of the data as anything training held,
        which is not a value of the same population but a changed unit, a broken sensor or a
        default like 9999. Nearer values are answered as the model extrapolates (a tree model as
        at the extreme): a time split trains on the earlier part of a seasonal or trending feature
        (trained on 2011's bike rows, the fitted split ends before the year does, and held-out rows
        of the last months lie beyond its largest `mnth`); answering those as missing made the
        held-out predictions drift (a margin of 0.1 flagged 152 of 800 held-out rows for `mnth`
        and moved their predictions 0.12 std). Serving answers an out-of-range or
        unseen value as missing, and says so. Models trained before ranges were recorded check
        categories only.
        """
        names = [*getattr(self, "ranges_", {}), *self.categorical]
        if not rows or not names:
            return [{} for _ in rows]
        found = self.screen_columns(dict(zip(names, _screen_columns(rows, names), strict=True)), len(rows))
        return [found.get(index) or {} for index in range(len(rows))]

    def screen_columns(self, columns: Mapping[str, Sequence[Any]], count: int) -> dict[int, dict[str, str]]:
        """`screen` of `count` rows given by column (a column not given is all missing): only the rows
        with a finding, by index (row -> feature -> why); `{}` when none has one."""
        import numpy as np

        ranges: dict[str, tuple[float, float]] = getattr(self, "ranges_", {})
        found: dict[int, dict[str, str]] = {}
        if not count:
            return found
        blank = [None] * count
        columns = {name: columns.get(name, blank) for name in [*ranges, *self.categorical]}
        if ranges:  # every numeric column at once: one matrix, one comparison each way
            numeric = list(ranges)
            low = np.array([ranges[n][0] - RANGE_MARGIN * (ranges[n][1] - ranges[n][0]) for n in numeric])
            high = np.array([ranges[n][1] + RANGE_MARGIN * (ranges[n][1] - ranges[n][0]) for n in numeric])
            try:
                values = np.array([columns[n] for n in numeric], dtype=np.float64)  # None -> NaN: never flagged
            except (TypeError, ValueError):  # not numbers: the model's own conversion decides
                values = np.full((len(numeric), count), np.nan)
            for why, beyond in (("above the training range", values > high[:, None]),
                                ("below the training range", values < low[:, None])):
                if beyond.any():
                    for column, index in zip(*np.nonzero(beyond), strict=True):
                        found.setdefault(int(index), {})[numeric[column]] = why
        seen = _SEEN.setdefault(self, {})
        for name in self.categorical:  # by distinct raw value, remembered: `level` once per value ever
            codes, column, known = self.codes_[name], columns[name], seen.setdefault(name, {})
            distinct = set(column)
            typed = bool in {value.__class__ for value in distinct}  # True == 1 in a set; their levels differ
            if typed:
                distinct = {(value.__class__, value) for value in column}
            unseen = set()
            for key in distinct:  # a raw JSON scalar, or (its type, it) when the column holds a bool
                ok = known.get(key)
                if ok is None:
                    value = key[1] if typed else key
                    ok = value is None or level(value) in codes
                    if len(known) < _SEEN_LIMIT:
                        known[key] = ok
                if not ok:
                    unseen.add(key)
            if unseen:
                for index, value in enumerate(column):
                    if ((value.__class__, value) if typed else value) in unseen:
                        found.setdefault(index, {})[name] = "unseen category"
        return found

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """A frame with the feature columns to a float matrix, columns in `self.columns` order."""
        import numpy as np
        import pandas as pd

        out = np.empty((len(frame), len(self.columns)), dtype=np.float64)
        missing: dict[str, np.ndarray] = {}  # per ruled column: which rows mean missing
        for name in self.missing.per_column if self.missing else ():
            positions, uniques = _factorize(frame[name])
            flags = np.array([self.missing.is_missing(name, v) for v in uniques] + [False], dtype=bool)
            missing[name] = flags[positions]  # index -1 (already missing) picks the last entry: False
        for index, name in enumerate(self.numeric):
            out[:, index] = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
            if name in missing:
                out[missing[name], index] = math.nan
        for offset, name in enumerate(self.categorical):
            # one `level` per distinct value, not per row: the same codes as `transform_records`
            codes = self.codes_[name]
            rows, uniques = _factorize(frame[name])
            table = np.array([codes.get(level(v), math.nan) for v in uniques] + [math.nan], dtype=np.float64)  # type: ignore[arg-type]
            column = table[rows]
            if name in missing:
                column[missing[name]] = math.nan
            out[:, len(self.numeric) + offset] = column
        return out

    def transform_records(self, rows: list[dict[str, Any]], *, cleaned: bool = False) -> np.ndarray:
        """The serving path: plain dicts to the same matrix, column by column, no pandas on the way.

        A numeric column is one NumPy conversion of its values (None becomes NaN, as `float` of
        each value did); a categorical column looks each value up in a table of the raw values
        seen so far (`level` runs once per distinct value, not once per cell). Measured on the
        bike model, 100 rows: 11 ms per cell, 0.3 ms by column, on a loaded 2-core machine.
        """
        if not cleaned:
            rows = [self.clean(row) for row in rows]
        return self.transform_columns(dict(zip(self.columns, _columns(rows, self.columns), strict=True)), len(rows))

    def transform_columns(self, given: Mapping[str, Sequence[Any]], count: int) -> np.ndarray:
        """`transform_records` of `count` (cleaned) rows given by column (a column not given is all missing)."""
        import numpy as np

        out = np.empty((count, len(self.columns)), dtype=np.float64)
        blank = [None] * count
        columns = [given.get(name, blank) for name in self.columns]
        if self.numeric:
            out[:, : len(self.numeric)] = np.array(columns[: len(self.numeric)], dtype=np.float64).T
        tables = self._tables()
        for offset, name in enumerate(self.categorical):
            values = columns[len(self.numeric) + offset]
            table, codes = tables[name], self.codes_[name]
            get = table.get
            column = [get(v, _UNSEEN) for v in values]
            if bool in set(map(type, values)):  # True == 1 as a key: bools go through `level`
                column = [_UNSEEN if v.__class__ is bool else c for v, c in zip(values, column, strict=True)]
            if _UNSEEN in column:  # identity first: a C-level scan
                for r, code in enumerate(column):
                    if code is _UNSEEN:
                        value = values[r]
                        column[r] = code = codes.get(level(value), math.nan)  # type: ignore[arg-type]
                        if value.__class__ is not bool and len(table) < _TABLE_LIMIT:
                            table[value] = code
            out[:, len(self.numeric) + offset] = column
        return out

    def _tables(self) -> dict[str, dict[Any, float]]:
        """Per categorical column, raw value -> code (filled as values arrive; never pickled)."""
        tables: dict[str, dict[Any, float]] | None = self.__dict__.get("_tables_")
        if tables is None:
            tables = self.__dict__["_tables_"] = {name: {} for name in self.categorical}
        return tables

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_tables_", None)
        return state


def _columns(rows: list[dict[str, Any]], names: list[str]) -> list[tuple[Any, ...]] | list[list[Any]]:
    """The rows' values by column: one C-level pass (`itemgetter`) when every row has every name."""
    if not names:
        return []
    if len(names) == 1:
        return [[row.get(names[0]) for row in rows]]
    try:
        return list(zip(*map(itemgetter(*names), rows), strict=True)) if rows else [[] for _ in names]
    except KeyError:  # a row without some feature: None, as row.get gives
        return [[row.get(name) for row in rows] for name in names]


_UNSEEN: Any = object()
_TABLE_LIMIT = 100_000
"""Distinct raw values remembered per column: a column of ids cannot grow a worker without bound."""


_SEEN: weakref.WeakKeyDictionary[FeatureEncoder, dict[str, dict[Any, bool]]] = weakref.WeakKeyDictionary()
"""Per encoder, per categorical column: raw value -> a level of training? Kept beside it, never pickled with it."""
_MISSING: weakref.WeakKeyDictionary[FeatureEncoder, dict[str, dict[Any, bool]]] = weakref.WeakKeyDictionary()
"""Per encoder, per ruled column: raw value -> means missing? Kept beside it, never pickled with it."""
_SEEN_LIMIT = 100_000
"""Raw values remembered per column: a column of ids cannot grow a worker without bound."""


def _screen_columns(rows: list[dict[str, Any]], names: list[str]) -> list[tuple[Any, ...]] | list[list[Any]]:
    """The rows' values by column: one C-level pass (`itemgetter`) when every row has every name."""
    if len(names) == 1:
        return [[row.get(names[0]) for row in rows]]
    try:
        return list(zip(*map(itemgetter(*names), rows), strict=True))
    except KeyError:  # a row without some feature (an engineered one): None, as row.get gives
        return [[row.get(name) for row in rows] for name in names]


def _factorize(series: pd.Series) -> tuple[np.ndarray, list[Any]]:
    """Each row's index into the column's distinct values (-1 for a missing value), and those values."""
    import pandas as pd
    from pandas.api.types import infer_dtype

    if series.dtype == object and infer_dtype(series, skipna=True) in ("mixed", "mixed-integer"):
        # True == 1 and False == 0 hash alike, so factorize would merge them; their levels differ
        series = series.map(lambda v: level(v) if isinstance(v, bool) else v)
    index, uniques = pd.factorize(series, use_na_sentinel=True)
    return index, list(uniques)
