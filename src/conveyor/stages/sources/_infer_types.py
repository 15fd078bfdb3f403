"""What a column's values are: the narrowest type most of them parse as, the missing-value tokens and
the number notation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from conveyor.core.cleaning import MAX_EXACT_INTEGER
from conveyor.core.config import (
    NAN_TOKENS,
    NULL_TOKENS,
)
from conveyor.stages.sources._dates import formatted_dates, formatted_times

if TYPE_CHECKING:
    import polars as pl


_MISSING_WORDS = ("unknown", "Unknown", "UNKNOWN", "missing", "MISSING", "none", "n.a.", "N.A.")
_MISSING_MARKS = ("-", "--", "---", "#N/A", "#NA", ".", "NA?")
_PLAIN_INT = r"^[+-]?\d+$"
_ISO_DATE = r"^\d{4}-\d{2}-\d{2}$"
_BOOLEANS = ["true", "false", "yes", "no", "t", "f"]
_LOOKS_LIKE_TIME = 0.5
"""From this share of date or datetime values, a column looked like the event time: init names it."""


@dataclass(frozen=True)
class _Typed:
    kind: str
    value: pl.Series
    """The values parsed as `kind` (null for missing and bad values)."""
    bad: pl.Series
    """True where a present value does not parse as `kind`: prepare will quarantine its row."""
    share: float
    format: str | None = None
    """A date or datetime column's strftime format when it is not ISO 8601 (`sources._dates`)."""
    ambiguous: str | None = None
    """The other format (day-first or month-first) that parses the sampled values as well."""


def _nulls(series: pl.Series, extra: list[str]) -> pl.Series:
    import polars as pl

    stripped = series.str.strip_chars()
    tokens = [*NULL_TOKENS, *extra]
    return pl.select(pl.when(stripped.is_in(tokens)).then(None).otherwise(stripped).alias(series.name)).to_series()


_ISO_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S%.f%#z",
                "%Y-%m-%d %H:%M%#z")
"""The ISO 8601 forms prepare reads (after a `T` is made a space), as `prep._clean` does."""


def _iso_datetime(values: pl.Series) -> pl.Series:
    """ISO 8601 datetimes, each format parsing only what the earlier ones left."""
    import polars as pl

    spaced = values.str.replace(r"^(\d{4}-\d{2}-\d{2})T", "${1} ")
    parsed = pl.Series(values.name, [None] * values.len(), dtype=pl.Datetime("us"))
    for fmt in _ISO_FORMATS:
        rest = pl.select(pl.when(parsed.is_null()).then(spaced)).to_series()
        if rest.null_count() == rest.len():
            break
        zoned = fmt.endswith("z")
        attempt = rest.str.to_datetime(fmt, strict=False, time_unit="us", time_zone="UTC" if zoned else None)
        if zoned:
            attempt = attempt.dt.replace_time_zone(None)
        parsed = pl.select(pl.coalesce(parsed, attempt)).to_series()
    return parsed.alias(values.name)


def _numeric_text(values: pl.Series, decimal: str, thousands: str | None) -> pl.Series:
    """The same rewriting prepare does: `1,234.5` -> `1234.5`, `0,5` -> `0.5`."""
    import polars as pl

    text = pl.col(values.name)
    if thousands is not None:
        sep, dec = re.escape(thousands), re.escape(decimal)
        grouped = text.str.contains(rf"^[+-]?\d{{1,3}}({sep}\d{{3}})+({dec}\d*)?$")
        text = pl.when(grouped).then(text.str.replace_all(thousands, "", literal=True)).otherwise(text)
    if decimal != ".":  # a "." left is not this file's notation: not a number
        text = pl.when(text.str.contains(".", literal=True)).then(None).otherwise(text)
        text = text.str.replace(decimal, ".", literal=True)
    return values.to_frame().select(text.alias(values.name)).to_series()


def _candidates(values: pl.Series, decimal: str, thousands: str | None) -> list[_Typed]:
    """Each type's parse of the present values, narrowest first."""
    import polars as pl

    present = values.is_not_null()
    n = max(int(present.sum()), 1)
    number = _numeric_text(values, decimal, thousands)
    plain = number.str.contains(_PLAIN_INT).fill_null(False)
    as_int = number.str.to_integer(strict=False)
    as_float = number.cast(pl.Float64, strict=False)
    lower = values.str.to_lowercase()
    out = []

    def add(kind: str, parsed: pl.Series) -> None:
        ok = parsed.is_not_null()
        out.append(_Typed(kind, parsed, present & ~ok, float(ok.sum()) / n))

    # prepare also reads a whole number written like a float (5e+05) as an integer, below 2^53
    exact = as_float.is_finite() & (as_float == as_float.round(0)) & (as_float.abs() < MAX_EXACT_INTEGER)
    out.append(_Typed("plain", as_int, present & ~plain, float((plain & present).sum()) / n))
    add("integer", pl.select(pl.when(plain).then(as_int).when(exact).then(as_float.cast(pl.Int64, strict=False))).to_series())
    add("float", as_float)
    add("boolean", pl.select(pl.when(lower.is_in(_BOOLEANS)).then(lower == "true").otherwise(None)).to_series())
    iso_date = values.str.contains(_ISO_DATE).fill_null(False)
    add("date", pl.select(pl.when(iso_date).then(values.str.to_date("%Y-%m-%d", strict=False))).to_series())
    add("datetime", _iso_datetime(values))
    formatted = formatted_dates(values, _LOOKS_LIKE_TIME, day_first=decimal == ",")
    if formatted is not None:  # `25/01/2020`, `1/13/2011 10:05`: replaces the ISO try of its kind if it parses more
        ok = formatted.value.is_not_null()
        typed = _Typed(formatted.kind, formatted.value, present & ~ok, float(ok.sum()) / n, formatted.format,
                       formatted.ambiguous)
        out = [typed if t.kind == typed.kind and t.share < typed.share else t for t in out]
    times = formatted_times(values, _LOOKS_LIKE_TIME)  # `18:00:00` beside a date column
    if times is not None:
        ok = times.value.is_not_null()
        out.append(_Typed("time", times.value, present & ~ok, float(ok.sum()) / n, times.format))
    return out


def _choose(values: pl.Series, decimal: str, thousands: str | None, threshold: float) -> _Typed:
    import polars as pl

    if values.null_count() == values.len():
        return _Typed("string", values, pl.Series([False] * values.len()), 1.0)
    found = {t.kind: t for t in _candidates(values, decimal, thousands)}
    integer, number = found["integer"], found["float"]
    present = values.drop_nulls()
    digits = present.str.contains(_PLAIN_INT)
    if digits.all():
        beyond = 1.0 - integer.share  # all digits, but beyond Int64
        if beyond > 1.0 - threshold:
            return _as_string(values)  # ids beyond Int64: kept as text, never rounded through a float
        if present.str.contains(r"^[+-]?0\d").any():
            return _as_string(values)  # codes with leading zeros (zip codes, account numbers)
    floats = number.value.drop_nulls()
    fractional = bool((floats.is_finite() & (floats != floats.round(0))).any())
    plain = found["plain"].share
    if plain >= threshold and not fractional:  # 14 % of "5e+05" make a float column; 0.1 % do not
        return integer  # the few others (1e30, inf, overflow, text) are quarantined by prepare
    if number.share >= threshold:
        return number
    for kind in ("boolean", "date", "datetime", "time"):
        if kind in found and found[kind].share >= threshold:
            return found[kind]
    return _as_string(values)


def _as_string(values: pl.Series) -> _Typed:
    import polars as pl

    return _Typed("string", values, pl.Series([False] * values.len()), 1.0)


def infer_type(values: pl.Series, threshold: float = 1.0) -> str:
    """The narrowest type (integer, float, boolean, date, datetime, time, string) of `threshold` of the values."""
    return _choose(values, ".", None, threshold).kind


def _notation(frame: pl.DataFrame, delimiter: str) -> tuple[str, str | None]:
    """The decimal mark and thousands separator of the numbers in the file."""
    import polars as pl

    def count(pattern: str) -> int:
        return int(frame.select(pl.sum_horizontal(pl.all().str.contains(pattern).fill_null(False).sum())).item())

    comma_decimal = count(r"^[+-]?\d+,\d+$") - count(r"^[+-]?\d{1,3},\d{3}$")
    dot_decimal = count(r"^[+-]?\d*\.\d+$") - count(r"^[+-]?\d{1,3}\.\d{3}$")
    if delimiter != "," and count(r"^[+-]?\d*,\d+$") > 0 and dot_decimal <= 0:
        dotted = count(r"^[+-]?\d{1,3}(\.\d{3})+(,\d+)?$")
        return ",", "." if dotted else None
    if comma_decimal <= 0 and count(r"^[+-]?\d{1,3}(,\d{3})+(\.\d+)?$") > 0:
        return ".", ","
    return ".", None


def _missing_tokens(raw: pl.DataFrame, name: str, kind_hint: str) -> dict[str, int]:
    """Missing-value tokens beyond NULL_TOKENS found in a column, with counts."""
    values = raw[name].str.strip_chars()
    candidates = [*_MISSING_MARKS, *(_MISSING_WORDS if kind_hint != "string" else ())]
    counts = values.filter(values.is_in(candidates)).alias("value").value_counts(sort=True, name="n")
    return {str(v): int(c) for v, c in counts.iter_rows()}


def _nan_tokens(raw: pl.DataFrame, name: str) -> dict[str, int]:
    """`NaN` cells of a column, with counts: a number column's missing value when pandas wrote the file."""
    values = raw[name].str.strip_chars()
    counts = values.filter(values.is_in(list(NAN_TOKENS))).alias("value").value_counts(sort=True, name="n")
    return {str(v): int(c) for v, c in counts.iter_rows()}
