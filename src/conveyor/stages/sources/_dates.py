"""Dates written the way spreadsheets and many downloads write them: `25/01/2020`, `1/13/2011 10:05`.

ISO 8601 is read without a format. Other writings are recognised by trying a short list of
strftime formats on the column's values; the one that parses the most values wins and is
written into the project file (`schema.columns.<name>.format`), so prepare parses the column
with exactly that format and quarantines what it does not parse.

A column whose values all fit both day-first and month-first (no day above 12) is ambiguous:
month-first is taken, or day-first in a file whose numbers use a decimal comma (as European
files write dates day-first), and init says so, naming the key to change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import polars as pl

_DATES = ("%m/%d/%Y", "%d/%m/%Y", "%Y/%m/%d", "%d.%m.%Y", "%m-%d-%Y", "%d-%m-%Y", "%m/%d/%y", "%d/%m/%y",
          "%d.%m.%y")
"""Date writings tried, month-first before day-first: the order settles a tie."""
_TIMES = (" %H:%M", " %H:%M:%S", " %I:%M %p", " %I:%M:%S %p")
_SHAPE = r"^\d{1,4}[/.\-]\d{1,2}[/.\-]\d{1,4}(?:[ T]\d{1,2}:\d{2}(?::\d{2})?(?: ?[AaPp][Mm])?)?$"
"""What a non-ISO date or datetime looks like before any format is tried (keeps the tries cheap)."""
_ISO_LIKE = r"^\d{4}-\d{2}-\d{2}"


@dataclass(frozen=True)
class Formatted:
    kind: str
    """`date`, `datetime` or `time`."""
    format: str
    value: pl.Series
    """The values parsed with `format` (null where missing or not parsed)."""
    ambiguous: str | None = None
    """The other format that parses exactly as many values (day-first vs month-first), if any."""


def formatted_dates(values: pl.Series, min_share: float, day_first: bool = False) -> Formatted | None:
    """The best non-ISO date or datetime format of `values`, if it parses at least `min_share` of them;
    `day_first` settles a tie between day-first and month-first."""
    present = values.drop_nulls()
    if present.len() == 0:
        return None
    shaped = present.str.contains(_SHAPE)
    if shaped.sum() < min_share * shaped.len() or bool(present.str.contains(_ISO_LIKE).all()):
        return None
    sample = present.filter(shaped).head(2000)  # picks the format; the whole column is parsed once, below
    with_time = bool(sample.str.contains(":").any())
    tries = [d + t for d in _DATES for t in _TIMES] if with_time else list(_DATES)
    scored: list[tuple[int, str]] = []
    for fmt in tries:
        if "%H" in fmt or "%I" in fmt:
            parsed = sample.str.to_datetime(fmt, strict=False, time_unit="us")
        else:
            parsed = sample.str.to_date(fmt, strict=False)
        scored.append((sample.len() - parsed.null_count(), fmt))
    best = max(n for n, _ in scored)
    if best == 0:
        return None
    winners = [fmt for n, fmt in scored if n == best]  # in `tries` order: month-first first
    fmt = winners[0]
    other = next((f for f in winners[1:] if _swapped(f) == fmt), None)
    if other is not None and day_first and fmt.index("%m") < fmt.index("%d"):
        fmt, other = other, fmt
    kind = "datetime" if ("%H" in fmt or "%I" in fmt) else "date"
    if kind == "datetime":
        value = values.str.to_datetime(fmt, strict=False, time_unit="us")
    else:
        value = values.str.to_date(fmt, strict=False)
    share = (present.len() - (value.null_count() - values.null_count())) / present.len()
    if share < min_share:
        return None
    return Formatted(kind, fmt, value.alias(values.name), other)


_TIME_FORMATS = ("%H:%M:%S", "%H:%M", "%H.%M.%S", "%H:%M:%S%.f", "%I:%M %p", "%I:%M:%S %p")
"""Times of day as files write them beside a date column: `18:00:00`, `18:00`, `18.00.00`, `6:00 PM`."""
_TIME_SHAPE = r"^\d{1,2}[:.]\d{2}(?:[:.]\d{2}(?:\.\d+)?)?(?: ?[AaPp][Mm])?$"


def formatted_times(values: pl.Series, min_share: float) -> Formatted | None:
    """The time-of-day format of `values` (a column split off a date: `Time` beside `Date`), if one
    parses at least `min_share` of them; a `12.50` alone is a number, not a time."""
    present = values.drop_nulls()
    shaped = present.str.contains(_TIME_SHAPE)
    if present.len() == 0 or shaped.sum() < min_share * present.len():
        return None
    if bool(present.str.contains(r"^\d{1,2}\.\d{2}$").any()):
        return None  # `18.00` is a number before it is a time
    sample = present.filter(shaped).head(2000)  # picks the format; the whole column is parsed once, below
    scored = [(sample.len() - sample.str.to_time(fmt, strict=False).null_count(), fmt) for fmt in _TIME_FORMATS]
    best, fmt = max(scored, key=lambda s: s[0])  # the first of the best, in `_TIME_FORMATS` order
    if best == 0:
        return None
    value = values.str.to_time(fmt, strict=False)
    share = (present.len() - (value.null_count() - values.null_count())) / present.len()
    return Formatted("time", fmt, value.alias(values.name)) if share >= min_share else None


def _swapped(fmt: str) -> str:
    """`%d/%m/%Y` <-> `%m/%d/%Y`."""
    return fmt.replace("%d", "\0").replace("%m", "%d").replace("\0", "%m")
