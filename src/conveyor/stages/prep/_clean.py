"""Prepare: typed, cleaned rows for the feature store; the rest quarantined with a reason."""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING

from conveyor.core.artifacts import Artifact
from conveyor.core.config import EVENT_TIMESTAMP, NULL_TOKENS, Config
from conveyor.core.errors import DataError
from conveyor.core.hashing import hash_json, short
from conveyor.core.workspace import Workspace

if TYPE_CHECKING:
    import polars as pl

__all__ = ["EVENT_TIMESTAMP", "PREP_VERSION", "clean_frame", "prepare"]

LINE = "_line"
PREP_VERSION = 1
_TRUE = ["true", "yes", "t", "1"]
_FALSE = ["false", "no", "f", "0"]


def _cast(column: pl.Expr, kind: str, fmt: str | None) -> pl.Expr:
    import polars as pl

    if kind == "integer":
        # "3.0" and "5e+05" are whole numbers too; anything fractional is invalid
        as_float = column.cast(pl.Float64, strict=False)
        return pl.when(as_float == as_float.round(0)).then(as_float).otherwise(None).cast(pl.Int64)
    if kind == "float":
        return column.cast(pl.Float64, strict=False)
    if kind == "boolean":
        lower = column.str.to_lowercase()
        return pl.when(lower.is_in(_TRUE)).then(True).when(lower.is_in(_FALSE)).then(False)
    if kind == "date":
        return column.str.to_date(fmt or "%Y-%m-%d", strict=False)
    if kind == "datetime":
        return column.str.to_datetime(fmt, strict=False, time_unit="us")
    return column


def clean_frame(raw: pl.DataFrame, config: Config, ingested_at: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split raw text rows into (clean typed rows, quarantined raw rows with `_reason`)."""
    import polars as pl

    schema = config.schema
    keep = [c for c in schema.columns if c not in schema.drop]
    text = raw.select(
        pl.col(LINE),
        *[
            pl.when(pl.col(c).str.strip_chars().is_in(list(NULL_TOKENS)))
            .then(None)
            .otherwise(pl.col(c).str.strip_chars())
            .alias(c)
            for c in keep
        ],
    )
    extra_nulls = config.cleaning.null_values
    used = {*schema.features(), schema.target, *schema.event_time.columns}
    if not schema.entity.generated:
        used.add(schema.entity.key)
    typed_cols = []
    reasons = []
    for name in [c for c in keep if c in used]:  # a bad value in an unused column rejects nothing
        column = schema.columns[name]
        fmt = schema.event_time.format if name in schema.event_time.columns else None
        cast = _cast(pl.col(name), column.type, fmt)
        typed = cast
        if name in extra_nulls:
            values = extra_nulls[name]
            literal = [str(v) for v in values] if column.type in ("string", "date", "datetime") else [
                float(v) for v in values
            ]
            compare = typed.cast(pl.Float64) if column.type in ("integer", "float") else typed
            typed = pl.when(compare.is_in(literal)).then(None).otherwise(typed)
        typed_cols.append(typed.alias(name))
        bad = pl.col(name).is_not_null() & cast.is_null()  # text that does not parse, not a null_values hit
        reasons.append(
            pl.when(bad)
            .then(pl.format(f"{name}: '{{}}' is not a valid {column.type}", pl.col(name)))
            .otherwise(None)
        )
    reasons.append(pl.when(pl.col(schema.target).is_null()).then(pl.lit(f"{schema.target}: the target is missing")))
    for name in schema.event_time.columns:
        reasons.append(pl.when(pl.col(name).is_null()).then(pl.lit(f"{name}: the event time is missing")))
    if not schema.entity.generated:
        reasons.append(
            pl.when(pl.col(schema.entity.key).is_null()).then(pl.lit(f"{schema.entity.key}: the entity key is missing"))
        )
    checked = text.with_columns(
        pl.concat_str(reasons, separator="; ", ignore_nulls=True).alias("_reason"),
    ).with_columns(pl.when(pl.col("_reason") == "").then(None).otherwise(pl.col("_reason")).alias("_reason"))
    typed = checked.with_columns(typed_cols)
    key = schema.entity.key
    if schema.entity.generated:
        typed = typed.with_columns(pl.int_range(1, pl.len() + 1, dtype=pl.Int64).alias(key))
    typed = typed.with_columns(_event_time(config, ingested_at).alias(EVENT_TIMESTAMP))
    # One row per entity and event time: Feast cannot tell duplicates apart in a point-in-time join.
    dup = pl.col(LINE).rank("ordinal").over([key, EVENT_TIMESTAMP]) > 1
    typed = typed.with_columns(
        pl.when(pl.col("_reason").is_null() & dup)
        .then(pl.format(f"{key}: duplicate entity key {{}} at the same event time", pl.col(key).cast(pl.String)))
        .otherwise(pl.col("_reason"))
        .alias("_reason")
    )
    bad_lines = typed.filter(pl.col("_reason").is_not_null()).select(LINE, "_reason")
    quarantine = bad_lines.join(raw, on=LINE, how="left").sort(LINE)
    ordered = [key, EVENT_TIMESTAMP, *schema.features(), schema.target, LINE]
    clean = typed.filter(pl.col("_reason").is_null()).select(list(dict.fromkeys(ordered)))
    return clean, quarantine


def _event_time(config: Config, ingested_at: str) -> pl.Expr:
    import polars as pl

    event = config.schema.event_time
    if event.kind == "ingest_time":
        stamp = datetime.fromisoformat(ingested_at)
        return pl.lit(stamp).cast(pl.Datetime("us", "UTC"))
    first = pl.col(event.columns[0])
    if event.kind == "date_hour":
        return (first.cast(pl.Datetime("us")) + pl.duration(hours=pl.col(event.columns[1]))).dt.replace_time_zone("UTC")
    return first.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")


def prepare(config: Config, workspace: Workspace, raw: Artifact) -> Artifact:
    """Type and clean a raw snapshot; write clean rows, quarantined rows and an EDA report."""
    import polars as pl

    from conveyor.stages.prep._eda import write_eda_report

    digest = hash_json(
        {
            "raw": raw.digest,
            "schema": config.section("schema"),
            "cleaning": config.section("cleaning"),
            "version": PREP_VERSION,
        }
    )
    frame = pl.read_parquet(raw.path)
    clean, quarantine = clean_frame(frame, config, raw.meta["ingested_at"])
    if clean.height == 0:
        first = quarantine["_reason"][0] if quarantine.height else "no rows"
        raise DataError(
            f"{raw.meta.get('source', raw.path)}: every row was quarantined; the first reason: {first}"
        )
    workspace.ensure(workspace.clean, workspace.quarantine, workspace.reports)
    out = workspace.clean / f"{short(digest)}.parquet"
    clean.write_parquet(out.with_suffix(".tmp"))
    out.with_suffix(".tmp").replace(out)
    quarantine_file = workspace.quarantine / f"prepare-{short(digest)}.csv"
    if quarantine.height:
        quarantine.write_csv(quarantine_file)
    schema = config.schema
    report = write_eda_report(
        clean.drop(LINE),
        target=schema.target,
        task=schema.task,
        numeric=schema.numeric(),
        categorical=schema.categorical(),
        path=workspace.reports / "eda.html",
        title=f"{config.name}: exploratory data analysis",
        quarantined=quarantine.height + int(raw.meta.get("ragged_quarantined", 0)),
    )
    meta = {
        "rows": clean.height,
        "quarantined": quarantine.height,
        "quarantine_file": str(quarantine_file) if quarantine.height else None,
        "quarantine_reasons": _reason_counts(quarantine),
        "eda_report": str(report),
        "event_time_min": str(clean[EVENT_TIMESTAMP].min()),
        "event_time_max": str(clean[EVENT_TIMESTAMP].max()),
    }
    (out.with_suffix(".json")).write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return Artifact("clean", out, digest, {"raw": raw.digest}, meta)


def _reason_counts(quarantine: pl.DataFrame) -> dict[str, int]:
    """How many rows each column sent to quarantine."""
    counts: dict[str, int] = {}
    for reason in quarantine["_reason"].to_list() if quarantine.height else []:
        for part in reason.split("; "):
            column = part.split(":", 1)[0]
            counts[column] = counts.get(column, 0) + 1
    return counts
