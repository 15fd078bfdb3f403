"""What a column is for: an id, a feature or the target; the task; the event time; the entities rows
are about.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from conveyor.core.config import EventTime
from conveyor.core.errors import DataError
from conveyor.stages.sources._infer_types import _LOOKS_LIKE_TIME, _candidates, _Typed

if TYPE_CHECKING:
    import polars as pl


_CATEGORICAL_MAX_INT_LEVELS = 10
_HOUR_NAMES = {"hr", "hour", "hour_of_day", "hours"}
_ID_NAME = re.compile(r"(^|_)(id|key|uuid|index|instant)$", re.IGNORECASE)


_ENTITY_NAME = re.compile(
    r"(id|key|code|zone|station|store|shop|customer|client|user|account|device|location|site|region|city|"
    r"product|item|sku)s?$",
    re.IGNORECASE,
)
"""A name that looks like a key of something rows are about (`PULocationID`, `store`, `customer_id`)."""
ENTITY_MIN_KEYS = 20
"""Fewer distinct keys than this are categories (a vendor, a payment type), not entities."""
ENTITY_MIN_ROWS_PER_KEY = 5.0
"""A proposed entity has at least this many rows per key on average: aggregates over its rows mean something."""
ENTITY_MAX_KEYS = 100_000
ENTITY_MAX_MISSING = 0.01




def _is_id(name: str, typed: _Typed, rows: int) -> bool:
    present = typed.value.drop_nulls()
    if typed.kind not in ("integer", "string") or present.len() != rows or present.n_unique() != rows:
        return False
    if _ID_NAME.search(name):
        return True
    if typed.kind == "integer":  # a running number 1, 2, 3, ...
        return bool((present.diff().drop_nulls() == 1).all())
    return False


def _role(name: str, typed: _Typed, rows: int) -> tuple[str, str]:
    """The role of a column and why."""
    kind = typed.kind
    if _is_id(name, typed, rows):
        why = "its name looks like an id" if _ID_NAME.search(name) else "it counts up by 1"
        return "id", f"unique on every row and {why}"
    if kind in ("date", "datetime", "time"):
        return "event_time", f"a {kind} column"
    present = typed.value.drop_nulls()
    levels = present.n_unique()
    if levels == 0:
        return "ignore", "no values at all"
    if kind == "float":
        return "numeric", "floating-point numbers"
    if kind == "integer":  # category codes are few and never negative
        if levels <= _CATEGORICAL_MAX_INT_LEVELS and int(present.min()) >= 0:  # type: ignore[arg-type]
            return "categorical", f"{levels} non-negative integer codes"
        return "numeric", f"{levels} distinct integers"
    if kind == "boolean":
        return "categorical", "true/false values"
    limit = max(50, rows // 20)
    if levels <= limit:
        return "categorical", f"{levels} distinct text values"
    return "ignore", f"{levels} distinct text values (more than {limit}: free text or an id?)"


def _task(kind: str, values: pl.Series) -> str:
    if kind in ("string", "boolean"):
        return "classification"
    if kind == "integer" and values.drop_nulls().n_unique() <= _CATEGORICAL_MAX_INT_LEVELS:
        return "classification"
    if kind in ("integer", "float"):
        return "regression"
    raise DataError(f"the target has type {kind}; expected numbers or class labels")


def _event_time(types: dict[str, _Typed], frame: pl.DataFrame, requested: list[str]) -> tuple[EventTime, str]:
    kinds = {n: t.kind for n, t in types.items()}
    if requested:
        for name in requested:
            if name not in kinds:
                raise DataError(f"--timestamp {name}: no such column; the columns are {list(kinds)}")
        if len(requested) == 1:
            name = requested[0]
            if kinds[name] not in ("date", "datetime"):
                raise DataError(
                    f"--timestamp {name}: values like {_an_unparsed(frame, name, ('date', 'datetime'))} are not "
                    f"dates or datetimes (ISO 8601 expected, e.g. 2019-03-01 or 2019-03-01 08:30:00)"
                )
            return EventTime(kind="datetime", columns=requested), "given by --timestamp"
        if len(requested) == 2:
            date, hour = requested
            if kinds[date] == "date" and kinds[hour] == "time":
                return EventTime(kind="date_time", columns=requested), "given by --timestamp"
            if kinds[date] != "date" or kinds[hour] != "integer":
                raise DataError(
                    f"--timestamp {date} {hour}: expected a date column then an hour column (0-23) or a time "
                    f"column (18:00:00); {date} is {kinds[date]}, {hour} is {kinds[hour]}"
                )
            return EventTime(kind="date_hour", columns=requested), "given by --timestamp"
        if len(requested) in (3, 4):
            wrong = [n for i, n in enumerate(requested) if kinds[n] != "integer" and not (i == 1 and kinds[n] == "string")]
            if wrong:
                raise DataError(f"--timestamp {' '.join(requested)}: expected year, month (a number or a name), day and "
                                f"optional hour columns; {', '.join(f'{n} is {kinds[n]}' for n in wrong)}")
            return EventTime(kind="date_parts", columns=requested), "given by --timestamp"
        raise DataError("--timestamp takes one datetime column, a date column and an hour or time column, or year, "
                        "month, day (and hour) columns")
    datetimes = [n for n, k in kinds.items() if k == "datetime"]
    if datetimes:
        return EventTime(kind="datetime", columns=[datetimes[0]]), "the first datetime column"
    dates = [n for n, k in kinds.items() if k == "date"]
    times = [n for n, k in kinds.items() if k == "time"]
    if dates and times:
        return EventTime(kind="date_time", columns=[dates[0], times[0]]), (
            f"the first date column, with {times[0]} as its time of day")
    if dates:
        for name, kind in kinds.items():
            if _names_an_hour(name) and kind == "integer":
                hours = types[name].value.drop_nulls()
                if hours.len() and int(hours.min()) >= 0 and int(hours.max()) <= 23:  # type: ignore[arg-type]
                    why = f"the first date column, with {name} (0-23) as the hour"
                    return EventTime(kind="date_hour", columns=[dates[0], name]), why
        return EventTime(kind="datetime", columns=[dates[0]]), "the first date column"
    parts = _date_parts(types)
    if parts is not None:
        shown = ", ".join(parts)
        return EventTime(kind="date_parts", columns=parts), f"no date column; the date is in {shown}"
    return EventTime(kind="ingest_time"), "no date or datetime column: every row gets the time of the ingest"


_MONTH_NAMES = r"(?i)^(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?$"


def _words(name: str) -> list[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name).lower()
    return [w for w in re.split(r"[^a-z0-9]+", spaced) if w]


def _date_parts(types: dict[str, _Typed]) -> list[str] | None:
    """Year, month and day columns (`arrival_date_year`, `arrival_date_month` = `July`,
    `arrival_date_day_of_month`), and an hour column if there is one, by name and values."""
    def within(name: str, low: int, high: int) -> bool:
        values = types[name].value.drop_nulls()
        return (types[name].kind == "integer" and values.len() > 0
                and low <= int(values.min()) and int(values.max()) <= high)  # type: ignore[arg-type]

    def month(name: str) -> bool:
        if types[name].kind == "string":
            values = types[name].value.drop_nulls()
            return values.len() > 0 and bool(values.str.contains(_MONTH_NAMES).all())
        return within(name, 1, 12)

    found: dict[str, str] = {}
    for name in types:
        words = _words(name)
        if "year" not in found and {"year", "yr", "yyyy"} & set(words) and within(name, 1800, 2200):
            found["year"] = name
        elif "month" not in found and {"month", "mnth", "mon"} & set(words) and "day" not in words and month(name):
            found["month"] = name
        elif ("day" not in found and {"day", "dd", "dom"} & set(words) and not {"week", "weekday", "year"} & set(words)
              and within(name, 1, 31)):
            found["day"] = name
        elif "hour" not in found and _names_an_hour(name) and within(name, 0, 23):
            found["hour"] = name
    if not {"year", "month", "day"} <= found.keys():
        return None
    return [found[k] for k in ("year", "month", "day", "hour") if k in found]


def _names_an_hour(name: str) -> bool:
    """`hr`, `hour`, `Hour of day`, `visit_hour`, `pickupHour`: a word of the name says hour."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name).lower()
    return spaced.strip() in _HOUR_NAMES or any(w in ("hr", "hour", "hours") for w in _words(name))


@dataclass(frozen=True)
class EntityProposal:
    column: str
    keys: int
    rows_per_key: float
    """Mean rows per key."""
    median_rows: float
    """Median rows per key."""

    def note(self, event_time: str) -> str:
        return (
            f"{self.column}: proposed for features.entities ({self.keys} distinct keys, {self.rows_per_key:.1f} rows "
            f"per key on average, median {self.median_rows:g}, with the event time {event_time}); left off: "
            "see the commented `features:` block"
        )


def propose_entities(
    frame: pl.DataFrame, types: dict[str, str], candidates: list[str], has_event_time: bool
) -> list[EntityProposal]:
    """Columns that look like entities: an integer or string key repeated on many rows, with an
    event time to order them (without one there is no "earlier row" to aggregate over).

    A key has between `ENTITY_MIN_KEYS` and `ENTITY_MAX_KEYS` distinct values, at least
    `ENTITY_MIN_ROWS_PER_KEY` rows per key on average, almost no missing value, and either a
    key-like name (`...ID`, `store`, `zone`, ...) or, for text, codes without spaces. An integer
    without such a name is read as a measurement (a count, an amount) and never proposed.
    """
    import polars as pl

    if not has_event_time or frame.height == 0:
        return []
    proposed = []
    for column in candidates:
        kind = types[column]
        if kind not in ("integer", "string"):
            continue
        values = frame[column]
        present = values.drop_nulls()
        if present.len() < frame.height * (1 - ENTITY_MAX_MISSING):
            continue
        keys = present.n_unique()
        if not ENTITY_MIN_KEYS <= keys <= ENTITY_MAX_KEYS or frame.height / keys < ENTITY_MIN_ROWS_PER_KEY:
            continue
        named = _ENTITY_NAME.search(column) is not None
        if kind == "integer":
            if not named or int(present.min()) < 0:  # type: ignore[arg-type]
                continue
        elif not named and bool(present.cast(pl.String).str.contains(r"\s").any()):
            continue
        counts = present.alias("value").value_counts(name="n")["n"]
        median = counts.median()
        proposed.append(EntityProposal(column, keys, frame.height / keys,
                                       float(median) if isinstance(median, (int, float)) else 0.0))
    return proposed


def _an_unparsed(frame: pl.DataFrame, name: str, kinds: tuple[str, ...]) -> str:
    """A value of the column that is not of the given kinds (not the first value, which may be fine)."""
    import polars as pl

    values = frame[name].drop_nulls()
    ok = pl.Series([False] * values.len())
    for typed in _candidates(values, ".", None):
        if typed.kind in kinds:
            ok = ok | typed.value.is_not_null()
    bad = values.filter(~ok)
    shown = bad[0] if bad.len() else (values[0] if values.len() else "")
    return repr(shown if len(shown) <= 40 else shown[:37] + "...")


def _near_event_time(frame: pl.DataFrame, types: dict[str, _Typed], decimal: str, thousands: str | None
                     ) -> tuple[str, _Typed] | None:
    """The text column most of whose values are dates or datetimes (at least `_LOOKS_LIKE_TIME`), if any."""
    best: tuple[str, _Typed] | None = None
    for column, typed in types.items():
        values = frame[column]
        if typed.kind != "string" or values.null_count() == values.len():
            continue
        for candidate in _candidates(values, decimal, thousands):
            if candidate.kind in ("date", "datetime") and candidate.share >= _LOOKS_LIKE_TIME:
                if best is None or candidate.share > best[1].share:
                    best = (column, candidate)
    return best
