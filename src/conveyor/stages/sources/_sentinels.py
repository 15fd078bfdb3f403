"""Numbers that mean "missing": `-200` in an air-quality file, `-999` or `9999` in many exports.

A code like that is one exact value, repeated, at the edge of a column and far from the rest: a
negative one in a column whose other values are never negative, or one further from the others
than their whole spread. `init` reads it as missing (`cleaning.null_values`) and says so, naming
the key to remove it from if the value is real. Rare values are left alone: a code is common.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import polars as pl

__all__ = ["Sentinel", "find_sentinel"]

_MIN_SHARE = 0.005
_MIN_ROWS = 3
_FAR = 2.0
"""How many times the other values' spread (1st to 99th percentile) a code lies beyond them."""


@dataclass(frozen=True)
class Sentinel:
    value: int
    rows: int
    low: float
    high: float
    """The other values' range."""

    def note(self, column: str, total: int) -> str:
        return (f"{column}: {self.value} on {self.rows} rows ({self.rows / total:.1%}) lies apart from every other "
                f"value ({self.low:g} .. {self.high:g}): read as missing (cleaning.null_values; remove it there if "
                f"{self.value} is a real value)")


def find_sentinel(values: pl.Series) -> Sentinel | None:
    """The missing-value code of a parsed number column, if it has one (see the module's note)."""
    present = values.drop_nulls()
    if present.dtype.is_float():
        present = present.filter(present.is_finite())  # inf and NaN are prepare's (cleaning.non_finite)
    n = present.len()
    if n < 20:
        return None
    for edge in (present.min(), present.max()):
        value = float(edge)  # type: ignore[arg-type]
        if value != round(value) or abs(value) < 9:
            continue  # codes are whole numbers: -9, -99, -200, 9999; 0 and -1 are too often real
        rows = int((present == edge).sum())
        if rows < max(_MIN_ROWS, _MIN_SHARE * n):
            continue
        rest = present.filter(present != edge)
        if rest.len() < 10:
            continue
        low, high = float(rest.min()), float(rest.max())  # type: ignore[arg-type]
        spread = float(rest.quantile(0.99) - rest.quantile(0.01))  # type: ignore[operator]
        negative_code = value < 0 <= low
        far = (low - value if value < low else value - high) > _FAR * spread > 0
        if negative_code or far:
            return Sentinel(int(value), rows, low, high)
    return None
