"""`conveyor init`: a project file inferred from a CSV or Parquet file, for a person to read and edit.

Init tolerates a little dirt and says so: a column's type is what at least `type_threshold`
(98 %) of its non-missing values parse as; the rest will be quarantined by `prepare`, and
init lists them (count, three examples with their lines), the missing-value tokens it found,
the number notation, the encoding, unreadable rows, and why each column got its role.
"""

from __future__ import annotations

import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from conveyor.core.config import (
    NAN_TOKENS,
    NULL_TOKENS,
    CleaningConfig,
    Column,
    Config,
    Entity,
    EventTime,
    Schema,
    SourceConfig,
)
from conveyor.core.errors import DataError
from conveyor.stages.sources._compressed import compression, decompressed, plain_name
from conveyor.stages.sources._csv import (
    LINE_COLUMN,
    describe_bad_lines,
    non_ascii_words,
    sniff_delimiter,
    sniff_encoding,
)
from conveyor.stages.sources._dates import formatted_dates
from conveyor.stages.sources._leakage import check_and_find_leaks
from conveyor.stages.sources._read import read_source

if TYPE_CHECKING:
    import polars as pl

__all__ = ["infer_config"]

_CATEGORICAL_MAX_INT_LEVELS = 10
_HOUR_NAMES = {"hr", "hour", "hour_of_day", "hours"}
_ID_NAME = re.compile(r"(^|_)(id|key|uuid|index|instant)$", re.IGNORECASE)
_GENERATED_KEY = "row_id"
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
TYPE_THRESHOLD = 0.98
"""A column's type is the narrowest type at least this share of its non-missing values parse as."""
BAD_LINE_SHARE = 0.02
"""Up to this share of unreadable rows, init sets `source.on_bad_lines: quarantine`; above, it stops."""
EVENT_TIME_THRESHOLD = 0.9
"""A date or datetime column that no other column beats, with at least this share of its values parsing
(below `type_threshold`), is the event time all the same: prepare quarantines the rest, and init says so."""
_LOOKS_LIKE_TIME = 0.5
"""From this share of date or datetime values, a column looked like the event time: init names it."""
_MISSING_WORDS = ("unknown", "Unknown", "UNKNOWN", "missing", "MISSING", "none", "n.a.", "N.A.")
_MISSING_MARKS = ("-", "--", "---", "#N/A", "#NA", ".", "NA?")
_PLAIN_INT = r"^[+-]?\d+$"
_ISO_DATE = r"^\d{4}-\d{2}-\d{2}$"
_BOOLEANS = ["true", "false", "yes", "no", "t", "f"]


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
    exact = as_float.is_finite() & (as_float == as_float.round(0)) & (as_float.abs() < 2**53)
    out.append(_Typed("plain", as_int, present & ~plain, float((plain & present).sum()) / n))
    add("integer", pl.select(pl.when(plain).then(as_int).when(exact).then(as_float.cast(pl.Int64, strict=False))).to_series())
    add("float", as_float)
    add("boolean", pl.select(pl.when(lower.is_in(_BOOLEANS)).then(lower == "true").otherwise(None)).to_series())
    iso_date = values.str.contains(_ISO_DATE).fill_null(False)
    add("date", pl.select(pl.when(iso_date).then(values.str.to_date("%Y-%m-%d", strict=False))).to_series())
    add("datetime", _iso_datetime(values))
    formatted = formatted_dates(values, _LOOKS_LIKE_TIME)
    if formatted is not None:  # `25/01/2020`, `1/13/2011 10:05`: replaces the ISO try of its kind if it parses more
        ok = formatted.value.is_not_null()
        typed = _Typed(formatted.kind, formatted.value, present & ~ok, float(ok.sum()) / n, formatted.format,
                       formatted.ambiguous)
        out = [typed if t.kind == typed.kind and t.share < typed.share else t for t in out]
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
    for kind in ("boolean", "date", "datetime"):
        if found[kind].share >= threshold:
            return found[kind]
    return _as_string(values)


def _as_string(values: pl.Series) -> _Typed:
    import polars as pl

    return _Typed("string", values, pl.Series([False] * values.len()), 1.0)


def infer_type(values: pl.Series, threshold: float = 1.0) -> str:
    """The narrowest type (integer, float, boolean, date, datetime, string) of `threshold` of the values."""
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
    if kind in ("date", "datetime"):
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
            if kinds[date] != "date" or kinds[hour] != "integer":
                raise DataError(
                    f"--timestamp {date} {hour}: expected a date column then an hour column (0-23); "
                    f"{date} is {kinds[date]}, {hour} is {kinds[hour]}"
                )
            return EventTime(kind="date_hour", columns=requested), "given by --timestamp"
        raise DataError("--timestamp takes one datetime column, or a date column and an hour column")
    datetimes = [n for n, k in kinds.items() if k == "datetime"]
    if datetimes:
        return EventTime(kind="datetime", columns=[datetimes[0]]), "the first datetime column"
    dates = [n for n, k in kinds.items() if k == "date"]
    if dates:
        for name, kind in kinds.items():
            if _names_an_hour(name) and kind == "integer":
                hours = types[name].value.drop_nulls()
                if hours.len() and int(hours.min()) >= 0 and int(hours.max()) <= 23:  # type: ignore[arg-type]
                    why = f"the first date column, with {name} (0-23) as the hour"
                    return EventTime(kind="date_hour", columns=[dates[0], name]), why
        return EventTime(kind="datetime", columns=[dates[0]]), "the first date column"
    return EventTime(kind="ingest_time"), "no date or datetime column: every row gets the time of the ingest"


def _names_an_hour(name: str) -> bool:
    """`hr`, `hour`, `Hour of day`, `visit_hour`, `pickupHour`: a word of the name says hour."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name).lower()
    words = [w for w in re.split(r"[^a-z0-9]+", spaced) if w]
    return spaced.strip() in _HOUR_NAMES or any(w in ("hr", "hour", "hours") for w in words)


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
        counts = present.value_counts()["count"]
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


def _project_name(path: Path) -> str:
    slug = re.sub(r"[^a-z0-9_-]+", "-", path.stem.lower()).strip("-_") or "project"
    return slug if slug[0].isalpha() else f"p-{slug}"[:63]


def _missing_tokens(raw: pl.DataFrame, name: str, kind_hint: str) -> dict[str, int]:
    """Missing-value tokens beyond NULL_TOKENS found in a column, with counts."""
    values = raw[name].str.strip_chars()
    candidates = [*_MISSING_MARKS, *(_MISSING_WORDS if kind_hint != "string" else ())]
    counts = values.filter(values.is_in(candidates)).value_counts(sort=True)
    return {str(v): int(c) for v, c in counts.iter_rows()}


def _nan_tokens(raw: pl.DataFrame, name: str) -> dict[str, int]:
    """`NaN` cells of a column, with counts: a number column's missing value when pandas wrote the file."""
    values = raw[name].str.strip_chars()
    counts = values.filter(values.is_in(list(NAN_TOKENS))).value_counts(sort=True)
    return {str(v): int(c) for v, c in counts.iter_rows()}


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


def _source_kind(path: Path) -> str:
    with path.open("rb") as handle:
        magic = handle.read(4)
    return "parquet" if magic == b"PAR1" or path.suffix.lower() in (".parquet", ".pq") else "csv"


def _shown(value: str) -> str:
    return repr(value if len(value) <= 40 else value[:37] + "...")


def infer_config(
    csv_path: Path,
    *,
    target: str,
    entity: str | None = None,
    timestamps: list[str] | None = None,
    drop: list[str] | None = None,
    name: str | None = None,
    source_path: str | None = None,
    type_threshold: float = TYPE_THRESHOLD,
    notes: list[str] | None = None,
    entities: list[str] | None = None,
    source: SourceConfig | None = None,
) -> Config:
    """Infer column types, roles, the task, the event time and how to read the file.

    `source`: the project's source when `csv_path` is a sample of it (a PostgreSQL table or S3
    objects read the way ingest reads them, `infer_remote_config`), written as given.

    Columns that look like entities (`propose_entities`) are appended to `entities` and noted;
    they are not turned on: `features.entities` stays empty until a person chooses them (and
    their aggregates).

    What init found and decided (values that will be quarantined, missing tokens, number
    notation, encoding, bad rows, the reason for each role) is appended to `notes`, one
    line each; without a list they are printed to stderr.
    """
    import polars as pl

    said: list[str] = [] if notes is None else notes
    if not csv_path.is_file():
        raise DataError(f"{csv_path}: file not found")
    packed = compression(csv_path)
    if packed is not None and source is None:  # a .csv.gz: inferred from its text, the source stays the file
        with tempfile.TemporaryDirectory(prefix="conveyor-init-") as unpacked:
            plain = decompressed(csv_path, Path(unpacked))
            said.append(f"source: compressed with {packed}; read decompressed (ingest does the same)")
            try:
                config = infer_config(
                    plain, target=target, entity=entity, timestamps=timestamps, drop=drop,
                    name=name or _project_name(Path(plain_name(csv_path))), source_path=source_path or str(csv_path),
                    type_threshold=type_threshold, notes=said, entities=entities,
                )
            except DataError as exc:
                raise DataError(str(exc).replace(str(plain), f"{csv_path} (decompressed)")) from None
        if notes is None:
            for line in said:
                print(f"init: {line}", file=sys.stderr)
        return config
    kind = _source_kind(csv_path)
    encoding, delimiter = "utf-8", ","
    if kind == "csv":
        encoding = sniff_encoding(csv_path)
        delimiter = sniff_delimiter(csv_path, encoding)
        if encoding != "utf-8":
            shown = ", ".join(non_ascii_words(csv_path, encoding))
            said.append(f"source: encoding {encoding} (detected over the whole file)"
                        + (f"; its letters read as: {shown} (if these look wrong, set source.encoding)" if shown else ""))
    probe = SourceConfig(kind=kind, path=str(csv_path), delimiter=delimiter, encoding=encoding)  # type: ignore[arg-type]
    with tempfile.TemporaryDirectory(prefix="conveyor-init-") as work:
        read = read_source(probe, csv_path, Path(work) / "probe.parquet", workdir=Path(work))
        raw = pl.read_parquet(Path(work) / "probe.parquet")
    lines = raw[LINE_COLUMN]
    raw = raw.drop(LINE_COLUMN)
    on_bad_lines = "error"
    if read.bad:
        share = len(read.bad) / max(len(read.bad) + read.rows, 1)
        if share > BAD_LINE_SHARE:
            raise DataError(describe_bad_lines(csv_path, read.bad).replace(
                "Fix the file, or set source.on_bad_lines: quarantine in conveyor.yaml",
                f"that is {share:.0%} of the rows: is the delimiter or the encoding wrong? Fix the file"))
        on_bad_lines = "quarantine"
        shown = ", ".join(f"line {b.line} ({b.reason})" for b in read.bad[:3])
        said.append(f"source: {len(read.bad)} unreadable row(s) will be quarantined at ingest "
                    f"(source.on_bad_lines: quarantine), e.g. {shown}")
    rows = raw.height
    if target not in raw.columns:
        raise DataError(
            f"{csv_path}, line 1: no column named {target!r} for --target; "
            f"the header has: {', '.join(raw.columns)}"
        )
    for option, column in [("--entity", entity), *[("--drop", d) for d in drop or []]]:
        if column is not None and column not in raw.columns:
            raise DataError(f"{option} {column}: no such column in {csv_path}; the header has: "
                            f"{', '.join(raw.columns)}")
    # missing tokens: the punctuation ones everywhere, words like "unknown" where they are not a category
    tokens: dict[str, dict[str, int]] = {}
    for column in raw.columns:
        found = _missing_tokens(raw, column, "number")
        if found:
            tokens[column] = found
    frame = raw.select(_nulls(raw[c], list(tokens.get(c, {}))) for c in raw.columns)
    decimal, thousands = _notation(frame, delimiter) if kind == "csv" else (".", None)
    if decimal != "." or thousands is not None:
        said.append(f"source: numbers are written with decimal {decimal!r}"
                    + (f" and thousands separator {thousands!r}" if thousands else ""))
    types = {c: _choose(frame[c], decimal, thousands, type_threshold) for c in frame.columns}
    for column, found in list(tokens.items()):
        if types[column].kind == "string":  # in a text column, "unknown" is a level, not a gap
            kept = {t: n for t, n in found.items() if t in _MISSING_MARKS}
            if kept != found:
                frame = frame.with_columns(_nulls(raw[column], list(kept)))
                types[column] = _choose(frame[column], decimal, thousands, type_threshold)
            if kept:
                tokens[column] = kept
            else:
                del tokens[column]
    for column, typed in types.items():  # NaN in a number column is non-finite (quarantined) unless listed
        nan = _nan_tokens(raw, column) if typed.kind in ("integer", "float") else {}
        if nan:
            tokens[column] = {**tokens.get(column, {}), **nan}
            said.append(f"{column}: uses {' and '.join(map(repr, nan))} for a missing number (as pandas writes one); "
                        "listed in cleaning.missing_tokens so those rows are kept with the value missing (without it, "
                        "NaN is a non-finite number: cleaning.non_finite quarantines its row)")
    for column, found in tokens.items():
        listed = ", ".join(f"{t!r} ({n})" for t, n in found.items())
        said.append(f"{column}: {listed} read as missing (cleaning.missing_tokens)")
    near = None
    if not timestamps and not any(t.kind in ("date", "datetime") for t in types.values()):
        near = _near_event_time(frame, types, decimal, thousands)
    if near is not None:  # a date column that a few bad values kept under type_threshold
        column, typed = near
        failed = int(typed.bad.sum())
        examples = ", ".join(f"{_shown(v)} (line {n})" for v, n in
                             zip(frame[column].filter(typed.bad)[:3], lines.filter(typed.bad)[:3], strict=True))
        head = (f"event time: {column} looked like the event time, but {failed} of its values ({1 - typed.share:.1%}) "
                f"do not parse as a {typed.kind} ({typed.format or 'ISO 8601'}), e.g. {examples}")
        if typed.share >= EVENT_TIME_THRESHOLD:
            types[column] = typed
            said.append(f"{head}; chosen as the event time all the same: prepare quarantines those rows (fix the "
                        "values to keep them, or set schema.event_time.kind: ingest_time)")
        else:
            said.append(f"{head}; too many to quarantine, so the event time is the time of the ingest (fix the "
                        "values and run init again, or set schema.event_time in conveyor.yaml)")
    for column, typed in types.items():
        count = int(typed.bad.sum())
        if count:
            bad_values = frame[column].filter(typed.bad)
            bad_lines = lines.filter(typed.bad)
            examples = ", ".join(f"{_shown(v)} (line {n})" for v, n in zip(bad_values[:3], bad_lines[:3], strict=True))
            said.append(f"{column}: {typed.kind} for {typed.share:.1%} of its values; {count} value(s) that are not "
                        f"will be quarantined by prepare, e.g. {examples}")
    event_time, event_why = _event_time(types, frame, list(timestamps or []))
    columns: dict[str, Column] = {}
    why_role: dict[str, str] = {}
    for column in frame.columns:
        typed = types[column]
        if column == target:
            task = _task(typed.kind, typed.value)
            role, why = ("numeric" if task == "regression" else "categorical"), f"the target ({task})"
        elif column == entity:
            role, why = "id", "given by --entity"
        elif event_time.kind == "date_hour" and column == event_time.columns[1]:
            role, why = "numeric", "the hour of the event time, also a feature"
        else:
            role, why = _role(column, typed, rows)
            if role == "event_time" and column not in event_time.columns:
                role, why = "ignore", f"a {typed.kind} column, not the event time"
            elif role == "event_time":
                why = f"the event time: {event_why}"
        columns[column] = Column(type=typed.kind, role=role, format=typed.format)  # type: ignore[arg-type]
        if typed.ambiguous is not None:
            said.append(f"{column}: every date fits both {typed.format} and {typed.ambiguous} (no day above 12); "
                        f"read as {typed.format}: set schema.columns.{column}.format to {typed.ambiguous!r} "
                        "if the day comes first")
        why_role[column] = why
    said.extend(f"{column}: {columns[column].type}, {columns[column].role}: {why}" for column, why in why_role.items())
    if event_time.kind == "ingest_time":
        said.append(f"event time: {event_why}")
    if entity is not None:
        key = Entity(key=entity)
    else:
        generated = _GENERATED_KEY if _GENERATED_KEY not in columns else "conveyor_row_id"
        key = Entity(key=generated, generated=True)
    task = _task(types[target].kind, types[target].value)
    inputs = [c for c, col in columns.items() if col.role in ("numeric", "categorical") and c not in (target, entity)]
    leaks = check_and_find_leaks(frame, target, task, [c for c in inputs if c not in (drop or [])])
    said.extend(f"{leak.column}: reproduces the target ({leak.evidence}); proposed for schema.drop" for leak in leaks)
    keyed = [c for c, col in columns.items() if col.role in ("numeric", "categorical", "id", "ignore")
             and c not in (target, entity, *event_time.columns, *(drop or []), *(leak.column for leak in leaks))]
    has_time = event_time.kind != "ingest_time"
    parsed = pl.DataFrame({c: types[c].value for c in keyed}) if keyed else pl.DataFrame()
    for proposal in propose_entities(parsed, {c: types[c].kind for c in keyed}, keyed, has_time):
        said.append(proposal.note(" + ".join(event_time.columns)))
        if entities is not None:
            entities.append(proposal.column)
    schema = Schema(
        target=target,
        task=task,  # type: ignore[arg-type]
        entity=key,
        event_time=event_time,
        columns=columns,
        drop=[*(drop or []), *(leak.column for leak in leaks)],
    )
    source = source or SourceConfig(
        kind=kind,  # type: ignore[arg-type]
        path=source_path or str(csv_path),
        delimiter=delimiter,
        encoding=encoding,
        decimal=decimal,  # type: ignore[arg-type]
        thousands=thousands,  # type: ignore[arg-type]
        on_bad_lines=on_bad_lines,  # type: ignore[arg-type]
    )
    cleaning = CleaningConfig(missing_tokens={c: list(found) for c, found in tokens.items()})
    config = Config(name=name or _project_name(csv_path), source=source, schema_=schema, cleaning=cleaning)
    if notes is None:
        for line in said:
            print(f"init: {line}", file=sys.stderr)
    return config
