"""The fast path of POST /predict's body: raw feature rows parsed by orjson and checked by column.

`RowColumns` reads `{"rows": [...]}` into one list per feature and checks each column's types
at once (a set of the types it holds, NumPy for the numbers), with the rules of the request
models (`_schemas.body_validator`): strict types, null for a missing value, finite numbers (a
number column takes integers, as floats), 64-bit integers, whole numbers in `integer` columns
(a float there is whole and below 2^53: checked with NumPy on the whole column), extra keys of a
row ignored, 1 to `serving.max_batch` rows. It never answers an error itself: any body it cannot accept whole
(an error, entity keys, a row without a feature) returns None, and the request goes through
the validator, which gives the same 422 as always. So the two paths cannot disagree on what is
valid, only on how fast a valid body is read.
"""

from __future__ import annotations

from operator import itemgetter
from typing import Any

from conveyor.core.cleaning import MAX_EXACT_INTEGER
from conveyor.core.config import Config

__all__ = ["RowColumns"]

_NONE = type(None)
_ALLOWED: dict[str, frozenset[type]] = {
    "number": frozenset({float, int, _NONE}),  # bool is not an int here: type(True) is bool
    "whole": frozenset({float, int, _NONE}),  # a numeric `integer` feature: whole numbers, as floats
    "integer": frozenset({float, int, _NONE}),  # a categorical one: integers (a whole float read as one)
    "string": frozenset({str, _NONE}),
    "boolean": frozenset({bool, _NONE}),
}
_INT64 = (-(2**63), 2**63 - 1)


class RowColumns:
    """A valid `{"rows": [...]}` body as (feature -> values, number of rows); None for anything else."""

    def __init__(self, config: Config) -> None:
        schema = config.schema
        self.names = list(schema.features())
        self.kinds = [_kind(schema.columns[name].role, schema.columns[name].type) for name in self.names]
        self.limit = config.serving.max_batch
        self._get = itemgetter(*self.names) if len(self.names) > 1 else None

    def __call__(self, body: bytes) -> tuple[dict[str, list[Any]], int] | None:
        import orjson

        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:  # not JSON, NaN, an integer over 64 bits: the validator says which
            return None
        if type(data) is not dict or len(data) != 1:
            return None
        rows = data.get("rows")
        if type(rows) is not list or not 0 < len(rows) <= self.limit or set(map(type, rows)) != {dict}:
            return None
        try:
            if self._get is None:
                values: list[Any] = [[row[self.names[0]] for row in rows]]
            else:
                values = list(zip(*map(self._get, rows), strict=True))
        except KeyError:  # a row without a feature: a 422 from the validator
            return None
        columns: dict[str, list[Any]] = {}
        for name, kind, column in zip(self.names, self.kinds, values, strict=True):
            found = column if isinstance(column, list) else list(column)
            kinds = set(map(type, found))
            if not kinds <= _ALLOWED.get(kind, frozenset()):
                return None
            if kind != "number" and float in kinds:  # an `integer` column given floats: whole ones only
                whole = _whole(found, as_int=kind == "integer")
                if whole is None:  # a fraction, or a float (or an int beside it) from 2^53: the validator says which
                    return None
                found = whole
            elif kind != "integer" and int in kinds:  # integers of a number column become floats, as validated
                found = _floats(found, _NONE in kinds)
            elif kind == "integer":
                present = [v for v in found if v is not None] if _NONE in kinds else found
                if present and (min(present) < _INT64[0] or max(present) > _INT64[1]):
                    return None
            columns[name] = found
        return columns, len(rows)


def _kind(role: str, column_type: str) -> str:
    """How a feature's column is read: as `_schemas._feature_type` types it."""
    if role == "numeric":
        return "whole" if column_type == "integer" else "number"
    return "number" if column_type == "float" else column_type


def _whole(values: list[Any], *, as_int: bool) -> list[Any] | None:
    """A column of numbers (and None) holding floats: as floats (or ints, `as_int`) when every one
    is whole and below 2^53 in magnitude, else None. One NumPy pass over the column."""
    import numpy as np

    numbers = np.array(values, dtype=np.float64)  # None -> NaN (the JSON held no NaN)
    missing = np.isnan(numbers)
    with np.errstate(invalid="ignore"):
        exact = (np.abs(numbers) < MAX_EXACT_INTEGER) & (numbers == np.trunc(numbers))
    if not bool(np.all(exact | missing)):
        return None
    if as_int:  # exact below 2^53; a None's NaN cast as 0, then put back
        out: list[Any] = np.where(missing, 0.0, numbers).astype(np.int64).tolist()
    else:
        out = numbers.tolist()
    for index in np.flatnonzero(missing).tolist():
        out[index] = None
    return out


def _floats(values: list[Any], has_none: bool) -> list[Any]:
    """Numbers as floats (one C-level `map`, or one NumPy conversion when there is a None, kept where it was)."""
    if not has_none:
        return list(map(float, values))
    import numpy as np

    numbers = np.array(values, dtype=np.float64)  # None -> NaN
    out: list[Any] = numbers.tolist()
    for index in np.flatnonzero(np.isnan(numbers)).tolist():
        out[index] = None  # a NaN here can only have been a None: the JSON held no NaN
    return out
