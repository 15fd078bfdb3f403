"""`conveyor init`: a project file inferred from a CSV, for a person to read and edit."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from conveyor.core.config import NULL_TOKENS, Column, Config, Entity, EventTime, Schema, SourceConfig
from conveyor.core.errors import DataError
from conveyor.stages.sources._csv import LINE_COLUMN, scan_csv, sniff_delimiter, sniff_encoding
from conveyor.stages.sources._leakage import check_and_find_leaks

if TYPE_CHECKING:
    import polars as pl

__all__ = ["infer_config"]

_CATEGORICAL_MAX_INT_LEVELS = 10
_HOUR_NAMES = {"hr", "hour", "hour_of_day", "hours"}
_ID_NAME = re.compile(r"(^|_)(id|key|uuid|index|instant)$", re.IGNORECASE)
_GENERATED_KEY = "row_id"


def _nulls(series: pl.Series) -> pl.Series:
    import polars as pl

    stripped = series.str.strip_chars()
    return pl.when(stripped.is_in(list(NULL_TOKENS))).then(None).otherwise(stripped).alias(series.name)


def infer_type(values: pl.Series) -> str:
    """The narrowest type every non-missing value fits: integer, float, boolean, date, datetime, string."""
    import polars as pl

    present = values.drop_nulls()
    if present.len() == 0:
        return "string"
    if present.str.contains(r"^[+-]?\d+$").all():
        return "integer"
    if present.cast(pl.Float64, strict=False).null_count() == 0:
        return "float"
    if present.str.to_lowercase().is_in(["true", "false", "yes", "no", "t", "f"]).all():
        return "boolean"
    if present.str.contains(r"^\d{4}-\d{2}-\d{2}$").all():
        if present.str.to_date("%Y-%m-%d", strict=False).null_count() == 0:
            return "date"
    if present.str.contains(r"^\d{4}-\d{2}-\d{2}[T ]\d{1,2}:\d{2}").all():
        if present.str.to_datetime(strict=False).null_count() == 0:
            return "datetime"
    return "string"


def _is_id(name: str, values: pl.Series, kind: str, rows: int) -> bool:
    present = values.drop_nulls()
    if kind not in ("integer", "string") or present.len() != rows or present.n_unique() != rows:
        return False
    if _ID_NAME.search(name):
        return True
    if kind == "integer":  # a running number 1, 2, 3, ...
        ints = present.cast(int)
        return bool((ints.diff().drop_nulls() == 1).all())
    return False


def _role(name: str, values: pl.Series, kind: str, rows: int) -> str:
    if _is_id(name, values, kind, rows):
        return "id"
    if kind in ("date", "datetime"):
        return "event_time"
    levels = values.drop_nulls().n_unique()
    if levels == 0:
        return "ignore"
    if kind == "float":
        return "numeric"
    if kind == "integer":  # category codes are few and never negative
        few = levels <= _CATEGORICAL_MAX_INT_LEVELS
        return "categorical" if few and values.drop_nulls().cast(int).min() >= 0 else "numeric"
    if kind == "boolean":
        return "categorical"
    return "categorical" if levels <= max(50, rows // 20) else "ignore"


def _task(kind: str, values: pl.Series) -> str:
    if kind in ("string", "boolean"):
        return "classification"
    if kind == "integer" and values.drop_nulls().n_unique() <= _CATEGORICAL_MAX_INT_LEVELS:
        return "classification"
    if kind in ("integer", "float"):
        return "regression"
    raise DataError(f"the target has type {kind}; expected numbers or class labels")


def _event_time(types: dict[str, str], frame: pl.DataFrame, requested: list[str]) -> EventTime:
    if requested:
        for name in requested:
            if name not in types:
                raise DataError(f"--timestamp {name}: no such column; the columns are {list(types)}")
        if len(requested) == 1:
            if types[requested[0]] not in ("date", "datetime"):
                raise DataError(
                    f"--timestamp {requested[0]}: values like {frame[requested[0]].drop_nulls()[0]!r} "
                    "are not dates or datetimes (ISO 8601 expected)"
                )
            return EventTime(kind="datetime", columns=requested)
        if len(requested) == 2:
            date, hour = requested
            if types[date] != "date" or types[hour] != "integer":
                raise DataError(
                    f"--timestamp {date} {hour}: expected a date column then an hour column (0-23)"
                )
            return EventTime(kind="date_hour", columns=requested)
        raise DataError("--timestamp takes one datetime column, or a date column and an hour column")
    datetimes = [n for n, t in types.items() if t == "datetime"]
    if datetimes:
        return EventTime(kind="datetime", columns=[datetimes[0]])
    dates = [n for n, t in types.items() if t == "date"]
    if dates:
        for name, kind in types.items():
            if name.lower() in _HOUR_NAMES and kind == "integer":
                hours = frame[name].drop_nulls().cast(int)
                if hours.min() >= 0 and hours.max() <= 23:
                    return EventTime(kind="date_hour", columns=[dates[0], name])
        return EventTime(kind="datetime", columns=[dates[0]])
    return EventTime(kind="ingest_time")


def _project_name(path: Path) -> str:
    slug = re.sub(r"[^a-z0-9_-]+", "-", path.stem.lower()).strip("-_") or "project"
    return slug if slug[0].isalpha() else f"p-{slug}"[:63]


def infer_config(
    csv_path: Path,
    *,
    target: str,
    entity: str | None = None,
    timestamps: list[str] | None = None,
    drop: list[str] | None = None,
    name: str | None = None,
    source_path: str | None = None,
) -> Config:
    """Infer column types, roles, the task and the event time from a CSV file."""
    if not csv_path.is_file():
        raise DataError(f"{csv_path}: file not found")
    encoding = sniff_encoding(csv_path)
    delimiter = sniff_delimiter(csv_path, encoding)
    scanned = scan_csv(csv_path, delimiter=delimiter, encoding=encoding)
    raw = scanned.frame().drop(LINE_COLUMN)
    frame = raw.select(_nulls(raw[c]) for c in raw.columns)
    rows = frame.height
    if target not in frame.columns:
        raise DataError(
            f"{csv_path}, line 1: no column named {target!r} for --target; "
            f"the header has: {', '.join(frame.columns)}"
        )
    for option, column in [("--entity", entity), *[("--drop", d) for d in drop or []]]:
        if column is not None and column not in frame.columns:
            raise DataError(f"{option} {column}: no such column in {csv_path}; the header has: "
                            f"{', '.join(frame.columns)}")
    types = {c: infer_type(frame[c]) for c in frame.columns}
    event_time = _event_time(types, frame, list(timestamps or []))
    columns: dict[str, Column] = {}
    for column in frame.columns:
        kind = types[column]
        if column == target:
            role = "numeric" if _task(kind, frame[column]) == "regression" else "categorical"
        elif column == entity:
            role = "id"
        elif event_time.kind == "date_hour" and column == event_time.columns[1]:
            role = "numeric"  # the hour is the event time and a strong feature at once
        else:
            role = _role(column, frame[column], kind, rows)
            if role == "event_time" and column not in event_time.columns:
                role = "ignore"
        columns[column] = Column(type=kind, role=role)  # type: ignore[arg-type]
    if entity is not None:
        key = Entity(key=entity)
    else:
        generated = _GENERATED_KEY if _GENERATED_KEY not in columns else "conveyor_row_id"
        key = Entity(key=generated, generated=True)
    task = _task(types[target], frame[target])
    inputs = [c for c, col in columns.items() if col.role in ("numeric", "categorical") and c not in (target, entity)]
    leaks = check_and_find_leaks(frame, target, task, [c for c in inputs if c not in (drop or [])])
    schema = Schema(
        target=target,
        task=task,  # type: ignore[arg-type]
        entity=key,
        event_time=event_time,
        columns=columns,
        drop=[*(drop or []), *(leak.column for leak in leaks)],
    )
    return Config(
        name=name or _project_name(csv_path),
        source=SourceConfig(path=source_path or str(csv_path), delimiter=delimiter, encoding=encoding),  # type: ignore[arg-type]
        schema=schema,
    )
