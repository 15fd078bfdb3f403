"""The rules of prepare: each value typed, each row kept or quarantined with a reason (`_prepare` runs them)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from conveyor.core.cleaning import MAX_EXACT_INTEGER, MissingValues
from conveyor.core.config import EVENT_TIMESTAMP, NAN_TOKENS, NULL_TOKENS, Column, Config, Schema
from conveyor.core.errors import ConfigError

if TYPE_CHECKING:
    import polars as pl

__all__ = ["EVENT_TIMESTAMP", "clean_frame"]

LINE = "_line"
FILE = "_file"
"""In a snapshot of a source of several files (`engine: spark`): the part a row comes from."""
REASON = "_reason"
_VAL = "__val_"
_BAD = "__bad_"
_FLOAT = "__float_"
_TEXT = "__text_"
_REQUIRED = "__required_"
_FLAG = "__rejected"
_DUP = "__duplicate"
_POSITION = "__position"
_TRUE = ["true", "yes", "t", "1"]
_FALSE = ["false", "no", "f", "0"]



def _numeric_text(column: pl.Expr, config: Config) -> pl.Expr:
    """Number text in the file's notation (`1,234.5`, `0,5`) rewritten as `1234.5`, `0.5`."""
    import polars as pl

    src = config.source
    text = column
    if src.thousands is not None:
        sep, dec = re.escape(src.thousands), re.escape(src.decimal)
        grouped = text.str.contains(rf"^[+-]?\d{{1,3}}({sep}\d{{3}})+({dec}\d*)?$")
        text = pl.when(grouped).then(text.str.replace_all(src.thousands, "", literal=True)).otherwise(text)
    if src.decimal != ".":  # a "." left is not this file's notation: not a number
        text = pl.when(text.str.contains(".", literal=True)).then(None).otherwise(text)
        text = text.str.replace(src.decimal, ".", literal=True)
    return text


@dataclass(frozen=True)
class _Parsed:
    """One column parsed: the typed value (None for bad and missing values) and why a value is bad.

    `reason` is what is wrong with the value ("is not a valid float"), null for a good value.
    """

    value: pl.Expr
    reason: pl.Expr
    """Computed once the value is stored as `__val_<name>`."""
    iso: bool = False
    """An ISO datetime: the first format parsed; `_iso_fallback` parses what it left."""


def _parse(name: str, column: Column, fmt: str | None, config: Config, text: pl.Expr | None = None) -> _Parsed:
    """How to parse one column's text (`text`, default the column itself)."""
    import polars as pl

    text = pl.col(name) if text is None else text
    stored = pl.col(_VAL + name)
    quarantine_non_finite = config.cleaning.non_finite == "quarantine"

    def bad(why: str) -> pl.Expr:
        return pl.lit(why)  # the message is written later, for the few quarantined rows only

    kind = column.type
    if kind in ("integer", "float"):
        number = _numeric_text(text, config)
        as_float = number.cast(pl.Float64, strict=False)
        non_finite = as_float.is_infinite() | as_float.is_nan()
        if kind == "float":
            value = pl.when(non_finite).then(None).otherwise(as_float)
            reason = (
                pl.when(text.is_null()).then(None)
                .when(non_finite).then(bad("is not a finite number") if quarantine_non_finite else None)
                .when(as_float.is_null()).then(bad("is not a valid float"))
            )
            return _Parsed(value, reason)
        plain = number.str.contains(r"^[+-]?\d+$")  # for the reason only: the value needs no regex
        as_int = number.str.to_integer(strict=False)  # Int64 without a float round trip: 17 digits stay exact
        whole = as_float.is_finite() & (as_float == as_float.round(0))
        exact = whole & (as_float.abs() < MAX_EXACT_INTEGER)
        # `5e+05`, `3.0`: whole numbers written like floats, read as floats only where to_integer failed
        rest = pl.when(as_int.is_null()).then(number).cast(pl.Float64, strict=False)
        rest_exact = rest.is_finite() & (rest == rest.round(0)) & (rest.abs() < MAX_EXACT_INTEGER)
        value = pl.coalesce(as_int, pl.when(rest_exact).then(rest.cast(pl.Int64, strict=False)))
        reason = (
            pl.when(text.is_null()).then(None)
            .when(plain & as_int.is_null()).then(bad("is out of the integer range (-2^63 .. 2^63-1)"))
            .when(plain).then(None)
            .when(non_finite).then(bad("is not a finite number") if quarantine_non_finite else None)
            .when(whole & ~exact).then(bad("is too large to be an exact integer"))
            .when(as_float.is_not_null() & ~whole).then(bad("is not a whole number"))
            .when(stored.is_null()).then(bad("is not a valid integer"))
        )
        return _Parsed(value, reason)
    if kind == "boolean":
        lower = text.str.to_lowercase()
        value = pl.when(lower.is_in(_TRUE)).then(True).when(lower.is_in(_FALSE)).then(False)
    elif kind == "date":
        value = text.str.to_date(fmt or "%Y-%m-%d", strict=False)
    elif kind == "datetime":
        value = text.str.to_datetime(fmt or _ISO_FORMATS[0], strict=False, time_unit="us")
    elif kind == "time":
        value = text.str.to_time(fmt or "%H:%M:%S", strict=False)
    else:
        return _Parsed(text, pl.lit(None, dtype=pl.String))
    expected = f"a valid {kind}" + (f" ({fmt})" if fmt else "")
    failed: pl.Expr = pl.when(text.is_not_null() & stored.is_null()).then(bad(f"is not {expected}"))
    return _Parsed(value, failed, iso=kind == "datetime" and not fmt)


_ISO_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S%.f%#z",
                "%Y-%m-%d %H:%M%#z")


def _is_bad(name: str, column: Column, config: Config) -> pl.Expr:
    """True where a present value did not parse (once `__val_<name>` and `__float_<name>` are stored)."""
    import polars as pl

    failed = pl.col(name).is_not_null() & pl.col(_VAL + name).is_null()
    if column.type in ("integer", "float") and config.cleaning.non_finite == "null":
        number = pl.col(_FLOAT + name)
        return failed & ~(number.is_infinite() | number.is_nan())
    return failed


def _iso_fallback(value: pl.Expr, text: pl.Expr) -> pl.Expr:
    """The ISO datetimes the first format left: `T`, no seconds, an offset (converted to UTC).

    Only the values still unparsed are looked at, so a clean column costs one parse.
    """
    import polars as pl

    rest = pl.when(value.is_null()).then(text).str.replace(r"^(\d{4}-\d{2}-\d{2})T", "${1} ")
    attempts = [value]
    for fmt in _ISO_FORMATS:
        zoned = fmt.endswith("z")
        attempt = rest.str.to_datetime(fmt, strict=False, time_unit="us", time_zone="UTC" if zoned else None)
        attempts.append(attempt.dt.replace_time_zone(None) if zoned else attempt)
    return pl.coalesce(*attempts)


def _quoted(text: pl.Expr) -> pl.Expr:
    """A raw value for a message: quoted, cut at 40 characters."""
    import polars as pl

    cut = pl.when(text.str.len_chars() > 40).then(text.str.slice(0, 37) + "...").otherwise(text)
    return pl.format("'{}'", cut)


def _used_columns(schema: Schema) -> list[str]:
    """Every column prepare types and checks: all of schema.columns but the dropped ones.

    Columns with role `id`, `event_time` or `ignore` are not features, but a value that does
    not parse as the column's type still sends its row to quarantine (docs/config.md).
    """
    return [c for c in schema.columns if c not in schema.drop]


def _missing_rule(name: str, column: Column, typed: pl.Expr, rule: MissingValues) -> pl.Expr:
    """`cleaning.null_values` applied to one typed column."""
    import polars as pl

    if column.type in ("integer", "float"):
        return pl.when(typed.cast(pl.Float64).is_in(rule.numbers(name))).then(None).otherwise(typed)
    if column.type == "boolean":
        return typed
    return pl.when(typed.cast(pl.String).is_in(rule.texts(name))).then(None).otherwise(typed)


def _phases(config: Config, *, keep_text: bool = False) -> list[list[pl.Expr]]:
    """Column expressions, applied one list after the other (each list reads what the earlier wrote).

    1. `__val_<name>`: the value parsed from the text; 2. the ISO datetime fallbacks;
    3. `__bad_<name>`: True where a present value does not parse; 4. the typed columns (`cleaning.null_values`
    applied) and `__required_<i>`: a missing target, event time or entity key.
    """
    import polars as pl

    schema = config.schema
    rule = MissingValues(config.cleaning.null_values)
    parsed = {}
    for name in _used_columns(schema):
        fmt = schema.columns[name].format or (schema.event_time.format if name in schema.event_time.columns else None)
        parsed[name] = _parse(name, schema.columns[name], fmt, config)
    values = [p.value.alias(_VAL + name) for name, p in parsed.items()]
    if config.cleaning.non_finite == "null":  # `_is_bad` tells a non-finite number from a bad value
        values += [
            _numeric_text(pl.col(name), config).cast(pl.Float64, strict=False).alias(_FLOAT + name)
            for name in parsed if schema.columns[name].type in ("integer", "float")
        ]
    fallbacks = [_iso_fallback(pl.col(_VAL + n), pl.col(n)).alias(_VAL + n) for n, p in parsed.items() if p.iso]
    bad = [_is_bad(name, schema.columns[name], config).alias(_BAD + name) for name in parsed]
    typed: dict[str, pl.Expr] = {}
    for name in parsed:
        value = pl.col(_VAL + name)
        typed[name] = _missing_rule(name, schema.columns[name], value, rule) if name in rule.per_column else value
    required = [(schema.target, "the target is missing")]
    required += [(name, "the event time is missing") for name in schema.event_time.columns]
    if not schema.entity.generated:
        required.append((schema.entity.key, "the entity key is missing"))
    checks = []
    for index, (name, why) in enumerate(required):  # missing after typing: a token, a null_values hit, inf
        missing = typed[name].is_null() & ~pl.col(_BAD + name)
        checks.append(pl.when(missing).then(pl.lit(f"{name}: {why}")).alias(f"{_REQUIRED}{index}"))
    texts = [pl.col(name).alias(_TEXT + name) for name in parsed] if keep_text else []
    last = [*checks, *texts, *(e.alias(n) for n, e in typed.items())]
    impossible = _impossible_event_time(config)
    return [values, fallbacks, bad, last, [impossible.alias(f"{_REQUIRED}event")] if impossible is not None else []]


_MONTHS = {m: i for i, m in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov",
                                       "dec"), start=1)}


def _month(config: Config, name: str) -> pl.Expr:
    """A month column as a number: `7`, or `July`/`jul` (any case) when the column is text."""
    import polars as pl

    if config.schema.columns[name].type == "integer":
        return pl.col(name)
    return pl.col(name).str.to_lowercase().str.slice(0, 3).replace_strict(_MONTHS, default=None, return_dtype=pl.Int64)


def _day_of_parts(config: Config) -> pl.Expr:
    """`event_time.kind: date_parts`: the date its year, month and day columns make (null: none)."""
    import polars as pl

    year, month, day = config.schema.event_time.columns[:3]
    text = pl.format("{}-{}-{}", pl.col(year).cast(pl.String).str.zfill(4),
                     _month(config, month).cast(pl.String).str.zfill(2), pl.col(day).cast(pl.String).str.zfill(2))
    return text.str.to_date("%Y-%m-%d", strict=False)


def _impossible_event_time(config: Config) -> pl.Expr | None:
    """Why a row's event-time columns, each valid, make no time (`31` February, hour `25`), or None."""
    import polars as pl

    event = config.schema.event_time
    if event.kind not in ("date_parts", "date_hour"):
        return None
    present = pl.all_horizontal(*(pl.col(c).is_not_null() for c in event.columns))
    if event.kind == "date_parts":
        shown = pl.concat_str([pl.col(c).cast(pl.String) for c in event.columns[:3]], separator="-")
        not_a_date = pl.format(f"{', '.join(event.columns[:3])}: {{}} is not a date", shown)
        if len(event.columns) == 3:
            return pl.when(present & _day_of_parts(config).is_null()).then(not_a_date)
        hour = pl.col(event.columns[3])
        return (pl.when(present & _day_of_parts(config).is_null()).then(not_a_date)
                .when(present & ~hour.is_between(0, 23))
                .then(pl.format(f"{event.columns[3]}: {{}} is not an hour of the day (0-23)", hour)))
    hour = pl.col(event.columns[1])  # date_hour
    return pl.when(present & ~hour.is_between(0, 23)).then(
        pl.format(f"{event.columns[1]}: {{}} is not an hour of the day (0-23)", hour))


def _as_text(
    raw: pl.LazyFrame, config: Config, columns: list[str], extra: list[pl.Expr] | None = None, *, strip: bool = True
) -> pl.LazyFrame:
    """Stripped text with every missing token as a null: `NULL_TOKENS` and `cleaning.missing_tokens`.

    `strip=False`: the snapshot has no value with whitespace around it (ingest's byte pass says so),
    so the strip, the costliest step of prepare on a large file, is skipped.
    """
    import polars as pl

    tokens = config.cleaning.missing_tokens
    text = raw.select(pl.col(LINE), *(extra or []), *(pl.col(c).str.strip_chars() if strip else pl.col(c) for c in columns))
    out = []
    numbers = {c for c in columns if c in config.schema.columns and config.schema.columns[c].type in ("integer", "float")}
    for c in columns:
        builtin = [t for t in NULL_TOKENS if t not in NAN_TOKENS] if c in numbers else NULL_TOKENS  # NaN: non-finite
        missing = [*builtin, *tokens.get(c, [])]
        out.append(pl.when(pl.col(c).is_in(missing)).then(None).otherwise(pl.col(c)).alias(c))
    return text.with_columns(out)


def _check_cleaning(config: Config) -> None:
    columns = config.schema.columns
    for name in config.cleaning.missing_tokens:
        if name not in columns:
            raise ConfigError(f"cleaning.missing_tokens: column {name!r} is not in schema.columns")


def clean_frame(raw: pl.DataFrame, config: Config, ingested_at: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split raw text rows into (clean typed rows, quarantined raw rows with `_reason`)."""
    import polars as pl

    clean, rejected = pl.collect_all(_clean_lazy(raw.lazy(), config, ingested_at), engine="streaming")
    return clean, _reasons(rejected, raw.lazy(), config, ingested_at)


def _typed(
    raw: pl.LazyFrame, config: Config, ingested_at: str, *, subset: bool, strip: bool = True, duplicates: bool = True
) -> pl.LazyFrame:
    """Raw text rows typed, with `__rejected` (a value or a required value is bad) and `__duplicate`.

    `subset`: the rows are a few rejected ones, typed again to say why: the text of each value
    is kept (`__text_<name>`), and duplicates are not looked for (they were, on all rows).
    `duplicates=False`: the rows are one part of the data (a Spark task), which cannot see the
    others: `__duplicate` is left False for the caller to compute over all rows. A `__position`
    column already in `raw` (the row's position in the whole snapshot) is the generated key.
    """
    import polars as pl

    _check_cleaning(config)
    schema = config.schema
    used = _used_columns(schema)
    key = schema.entity.key
    extra = []
    names = raw.collect_schema().names()
    if schema.entity.generated and not subset:  # the 1-based position in the raw snapshot
        if _POSITION not in names:
            raw = raw.with_row_index(_POSITION, offset=1)
        extra = [pl.col(_POSITION).cast(pl.Int64).alias(key)]
    if FILE in names:
        extra.append(pl.col(FILE))
    typed = _as_text(raw, config, used, extra, strip=strip)
    for phase in _phases(config, keep_text=subset):
        if phase:
            typed = typed.with_columns(phase)
    required = [c for c in typed.collect_schema().names() if c.startswith(_REQUIRED)]
    flags = [pl.col(_BAD + name) for name in used] + [pl.col(c).is_not_null() for c in required]
    typed = typed.with_columns(pl.any_horizontal(*flags).alias(_FLAG) if flags else pl.lit(False).alias(_FLAG))
    if schema.entity.generated and subset:
        typed = typed.with_columns(pl.lit(None, dtype=pl.Int64).alias(key))
    typed = typed.with_columns(_event_time(config, ingested_at).alias(EVENT_TIMESTAMP))
    if schema.entity.generated or subset or not duplicates:  # a generated key is unique: no duplicates
        return typed.with_columns(pl.lit(False).alias(_DUP))
    dup = (pl.col(LINE).rank("ordinal").over([key, EVENT_TIMESTAMP]) > 1) & ~pl.col(_FLAG)
    return typed.with_columns(dup.alias(_DUP))


def _clean_lazy(
    raw: pl.LazyFrame, config: Config, ingested_at: str, *, strip: bool = True
) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """(clean rows, the lines of rejected rows with `__duplicate`), for one streaming query."""
    import polars as pl

    schema = config.schema
    typed = _typed(raw, config, ingested_at, subset=False, strip=strip)
    ordered = [schema.entity.key, EVENT_TIMESTAMP, *schema.features(), schema.target, LINE]
    clean = typed.filter(~pl.col(_FLAG) & ~pl.col(_DUP)).select(list(dict.fromkeys(ordered)))
    rejected = typed.filter(pl.col(_FLAG) | pl.col(_DUP)).select(LINE, _DUP)
    return clean, rejected


def _reasons(rejected: pl.DataFrame, raw: pl.LazyFrame, config: Config, ingested_at: str) -> pl.DataFrame:
    """The rejected rows: `_line`, `_reason` and their raw text, in line order.

    Only these rows are read again and typed again, to write what is wrong with them.
    """
    import polars as pl

    schema = config.schema
    rows = raw.filter(pl.col(LINE).is_in(rejected[LINE].implode())).collect()
    if not rows.height:
        return rows.select(LINE, pl.lit(None, dtype=pl.String).alias(REASON), pl.exclude(LINE))
    typed = _typed(rows.lazy(), config, ingested_at, subset=True).drop(_DUP)
    typed = typed.join(rejected.lazy(), on=LINE, how="left")
    messages: list[pl.Expr] = []
    for name in _used_columns(schema):
        fmt = schema.columns[name].format or (schema.event_time.format if name in schema.event_time.columns else None)
        why = _parse(name, schema.columns[name], fmt, config, text=pl.col(_TEXT + name)).reason
        messages.append(pl.when(pl.col(_BAD + name)).then(
            pl.format(f"{name}: {{}} {{}}", _quoted(pl.col(_TEXT + name)), why)
        ))
    messages += [pl.col(c) for c in typed.collect_schema().names() if c.startswith(_REQUIRED)]
    key = schema.entity.key
    messages.append(pl.when(pl.col(_DUP)).then(
        pl.format(f"{key}: duplicate entity key {{}} at the same event time", pl.col(key).cast(pl.String))
    ))
    reason = pl.concat_str(messages, separator="; ", ignore_nulls=True).alias(REASON)
    reasons = typed.select(LINE, reason).collect()
    return reasons.join(rows, on=LINE, how="left").sort(LINE)


def _event_time(config: Config, ingested_at: str) -> pl.Expr:
    import polars as pl

    event = config.schema.event_time
    if event.kind == "ingest_time":
        stamp = datetime.fromisoformat(ingested_at)
        return pl.lit(stamp).cast(pl.Datetime("us", "UTC"))
    first = pl.col(event.columns[0])
    if event.kind == "date_hour":
        return (first.cast(pl.Datetime("us")) + pl.duration(hours=pl.col(event.columns[1]))).dt.replace_time_zone("UTC")
    if event.kind == "date_parts":  # year, month, day (and hour) columns
        day = _day_of_parts(config).cast(pl.Datetime("us"))
        hours = pl.duration(hours=pl.col(event.columns[3])) if len(event.columns) == 4 else pl.duration(hours=0)
        return (day + hours).dt.replace_time_zone("UTC")
    if event.kind == "date_time":  # `Date` and `Time` columns: the day at that time of day
        return first.dt.combine(pl.col(event.columns[1]), time_unit="us").dt.replace_time_zone("UTC")
    return first.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")


