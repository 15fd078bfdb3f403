"""The project's missing-value rule, defined once for prepare (vectorised) and serving (per row).

`cleaning.null_values` lists, per column, values that mean "missing" in this data (a wind
speed of 0, a "-" placeholder). Values compare as *levels*: 1, 1.0 and "1" are the same.
`prepare` applies the rule to whole columns with `numbers()`/`texts()`; the model's encoder
applies the very same object to each served row with `clean()`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["MAX_EXACT_INTEGER", "MissingValues", "level"]

MAX_EXACT_INTEGER = 2**53
"""An integer column holds a float only when it is whole and below this in magnitude (a float above
it may not be the integer written): prepare, init and serving read integers by this one rule."""


def level(value: Any) -> str | None:
    """A value as a level name: 1, 1.0 and "1" are the same level; None and NaN are no level."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if value.is_integer():
            return str(int(value))
    if hasattr(value, "item"):  # numpy scalars
        return level(value.item())
    return str(value)


class MissingValues:
    """Per column, the values that mean missing (the `cleaning.null_values` section)."""

    def __init__(self, per_column: Mapping[str, Sequence[str | int | float]] | None = None) -> None:
        self.per_column = {name: list(values) for name, values in (per_column or {}).items()}
        self._levels = {name: {level(v) for v in values} for name, values in self.per_column.items()}

    def __bool__(self) -> bool:
        return bool(self.per_column)

    def only(self, columns: Sequence[str]) -> MissingValues:
        """The rule restricted to some columns (a model's features)."""
        return MissingValues({k: v for k, v in self.per_column.items() if k in columns})

    def is_missing(self, column: str, value: Any) -> bool:
        levels = self._levels.get(column)
        return levels is not None and level(value) in levels

    def clean(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """A row with every value that means missing set to None."""
        cleaned = dict(row)
        for name in self._levels:  # only the columns with a rule: this runs for every served row
            if name in cleaned and self.is_missing(name, cleaned[name]):
                cleaned[name] = None
        return cleaned

    def numbers(self, column: str) -> list[float]:
        """The rule for a numeric column, as floats (for a vectorised comparison)."""
        out = []
        for value in self.per_column.get(column, []):
            try:
                out.append(float(value))
            except ValueError:
                continue  # config validation rejects these for numeric columns
        return out

    def texts(self, column: str) -> list[str]:
        """The rule for a text, date or datetime column, as strings."""
        return [str(v) for v in self.per_column.get(column, [])]
