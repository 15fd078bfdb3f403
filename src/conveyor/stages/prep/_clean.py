"""Prepare: typed, cleaned rows for the feature store; the rest quarantined with a reason."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, ClassVar, Protocol, runtime_checkable

from conveyor.core.artifacts import Artifact, Result, relative_to
from conveyor.core.cleaning import MissingValues
from conveyor.core.config import EVENT_TIMESTAMP, NULL_TOKENS, Column, Config, Schema
from conveyor.core.errors import DataError
from conveyor.core.hashing import hash_json, short
from conveyor.core.stage import Stage, Upstream
from conveyor.core.workspace import Workspace

if TYPE_CHECKING:
    import polars as pl

__all__ = ["EVENT_TIMESTAMP", "PREPARE", "PREP_VERSION", "CleanData", "clean_frame", "prepare"]

LINE = "_line"
REASON = "_reason"
PREP_VERSION = 2
_TRUE = ["true", "yes", "t", "1"]
_FALSE = ["false", "no", "f", "0"]


@runtime_checkable
class RawInput(Protocol):
    """What prepare reads of the ingest stage's result."""

    @property
    def ingested_at(self) -> str: ...
    @property
    def quarantined(self) -> int: ...
    @property
    def source(self) -> str: ...


class CleanData(Result):
    """Typed rows keyed by entity and event time; rejected rows are in the quarantine file."""

    kind: ClassVar[str] = "clean"

    rows: int
    quarantined: int
    """Rows rejected by prepare (bad values, missing target, key or time, duplicates)."""
    ingest_quarantined: int
    """Rows rejected earlier, at ingest (wrong field count)."""
    quarantine_file: str | None
    quarantine_reasons: dict[str, int]
    """How many rows each column sent to quarantine."""
    eda_report: str
    event_time_min: str
    event_time_max: str

    def summary(self) -> str:
        text = f"{self.rows} clean, {self.quarantined + self.ingest_quarantined} quarantined"
        reasons = dict(self.quarantine_reasons)
        if self.ingest_quarantined:
            reasons["(field count)"] = self.ingest_quarantined
        if reasons:
            text += " (" + ", ".join(f"{k}: {v}" for k, v in reasons.items()) + ")"
        return text + f"; EDA {self.eda_report}"


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


def _used_columns(schema: Schema) -> list[str]:
    """Columns prepare types and checks: features, target, event time, entity key; not dropped."""
    used = {*schema.features(), schema.target, *schema.event_time.columns}
    if not schema.entity.generated:
        used.add(schema.entity.key)
    return [c for c in schema.columns if c in used and c not in schema.drop]


def _missing_rule(name: str, column: Column, typed: pl.Expr, rule: MissingValues) -> pl.Expr:
    """`cleaning.null_values` applied to one typed column."""
    import polars as pl

    if column.type in ("integer", "float"):
        return pl.when(typed.cast(pl.Float64).is_in(rule.numbers(name))).then(None).otherwise(typed)
    if column.type == "boolean":
        return typed
    return pl.when(typed.cast(pl.String).is_in(rule.texts(name))).then(None).otherwise(typed)


def _typed_and_reasons(config: Config) -> tuple[list[pl.Expr], list[pl.Expr]]:
    """Per used column: the typed expression, and the reason a row is rejected because of it."""
    import polars as pl

    schema = config.schema
    rule = MissingValues(config.cleaning.null_values)
    typed_cols, reasons = [], []
    for name in _used_columns(schema):  # a bad value in an unused column rejects nothing
        column = schema.columns[name]
        fmt = schema.event_time.format if name in schema.event_time.columns else None
        cast = _cast(pl.col(name), column.type, fmt)
        typed = _missing_rule(name, column, cast, rule) if name in rule.per_column else cast
        typed_cols.append(typed.alias(name))
        bad = pl.col(name).is_not_null() & cast.is_null()  # text that does not parse, not a null_values hit
        reasons.append(
            pl.when(bad).then(pl.format(f"{name}: '{{}}' is not a valid {column.type}", pl.col(name))).otherwise(None)
        )
    required = [(schema.target, "the target is missing")]
    required += [(name, "the event time is missing") for name in schema.event_time.columns]
    if not schema.entity.generated:
        required.append((schema.entity.key, "the entity key is missing"))
    for name, why in required:
        reasons.append(pl.when(pl.col(name).is_null()).then(pl.lit(f"{name}: {why}")))
    return typed_cols, reasons


def _as_text(raw: pl.DataFrame, columns: list[str]) -> pl.DataFrame:
    """Stripped text with every common missing token (`NULL_TOKENS`) as a null."""
    import polars as pl

    stripped = [pl.col(c).str.strip_chars().alias(c) for c in columns]
    nulls = [pl.when(pl.col(c).is_in(list(NULL_TOKENS))).then(None).otherwise(pl.col(c)).alias(c) for c in columns]
    return raw.select(pl.col(LINE), *stripped).with_columns(nulls)


def clean_frame(raw: pl.DataFrame, config: Config, ingested_at: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split raw text rows into (clean typed rows, quarantined raw rows with `_reason`)."""
    import polars as pl

    schema = config.schema
    typed_cols, reasons = _typed_and_reasons(config)
    text = _as_text(raw, [c for c in schema.columns if c not in schema.drop])
    checked = text.with_columns(pl.concat_str(reasons, separator="; ", ignore_nulls=True).alias(REASON))
    checked = checked.with_columns(pl.when(pl.col(REASON) == "").then(None).otherwise(pl.col(REASON)).alias(REASON))
    typed = checked.with_columns(typed_cols)
    key = schema.entity.key
    if schema.entity.generated:
        typed = typed.with_columns(pl.int_range(1, pl.len() + 1, dtype=pl.Int64).alias(key))
    typed = _reject_duplicates(typed.with_columns(_event_time(config, ingested_at).alias(EVENT_TIMESTAMP)), key)
    quarantine = typed.filter(pl.col(REASON).is_not_null()).select(LINE, REASON).join(raw, on=LINE, how="left")
    ordered = [key, EVENT_TIMESTAMP, *schema.features(), schema.target, LINE]
    clean = typed.filter(pl.col(REASON).is_null()).select(list(dict.fromkeys(ordered)))
    return clean, quarantine.sort(LINE)


def _reject_duplicates(typed: pl.DataFrame, key: str) -> pl.DataFrame:
    """One row per entity and event time: Feast cannot tell duplicates apart in a point-in-time join."""
    import polars as pl

    dup = pl.col(LINE).rank("ordinal").over([key, EVENT_TIMESTAMP]) > 1
    why = pl.format(f"{key}: duplicate entity key {{}} at the same event time", pl.col(key).cast(pl.String))
    return typed.with_columns(pl.when(pl.col(REASON).is_null() & dup).then(why).otherwise(pl.col(REASON)).alias(REASON))


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


def prepare(config: Config, workspace: Workspace, raw: Artifact[RawInput]) -> Artifact[CleanData]:
    """Type and clean a raw snapshot; write clean rows, quarantined rows and an EDA report."""
    import polars as pl

    digest = hash_json(
        {"raw": raw.digest, "schema": config.section("schema"), "cleaning": config.section("cleaning"),
         "version": PREP_VERSION}
    )
    clean, quarantine = clean_frame(pl.read_parquet(raw.path), config, raw.result.ingested_at)
    if clean.height == 0:
        first = quarantine[REASON][0] if quarantine.height else "no rows"
        raise DataError(f"{raw.result.source}: every row was quarantined; the first reason: {first}")
    workspace.ensure(workspace.clean, workspace.quarantine, workspace.reports)
    out = workspace.clean / f"{short(digest)}.parquet"
    clean.write_parquet(out.with_suffix(".tmp"))
    out.with_suffix(".tmp").replace(out)
    quarantine_file = workspace.quarantine / f"prepare-{short(digest)}.csv"
    quarantine_file.unlink(missing_ok=True)  # never leave a stale list of rejected rows behind
    if quarantine.height:
        quarantine.write_csv(quarantine_file)
    report = _eda(config, workspace, clean, quarantine.height + raw.result.quarantined)
    result = CleanData(
        rows=clean.height,
        quarantined=quarantine.height,
        ingest_quarantined=raw.result.quarantined,
        quarantine_file=relative_to(quarantine_file, workspace.root) if quarantine.height else None,
        quarantine_reasons=_reason_counts(quarantine),
        eda_report=relative_to(report, workspace.root),
        event_time_min=str(clean[EVENT_TIMESTAMP].min()),
        event_time_max=str(clean[EVENT_TIMESTAMP].max()),
    )
    return Artifact("clean", out, digest, result, {"raw": raw.digest})


def _eda(config: Config, workspace: Workspace, clean: pl.DataFrame, quarantined: int) -> object:
    from conveyor.stages.prep._eda import write_eda_report

    schema = config.schema
    return write_eda_report(
        clean.drop(LINE),
        target=schema.target,
        task=schema.task,
        numeric=schema.numeric(),
        categorical=schema.categorical(),
        path=workspace.reports / "eda.html",
        title=f"{config.name}: exploratory data analysis",
        quarantined=quarantined,
    )


def _reason_counts(quarantine: pl.DataFrame) -> dict[str, int]:
    """How many rows each column sent to quarantine."""
    counts: dict[str, int] = {}
    for reason in quarantine[REASON].to_list() if quarantine.height else []:
        for part in reason.split("; "):
            column = part.split(":", 1)[0]
            counts[column] = counts.get(column, 0) + 1
    return counts


def _run(config: Config, workspace: Workspace, upstream: Upstream) -> Artifact[CleanData]:
    return prepare(config, workspace, upstream.get("ingest", RawInput))


PREPARE: Stage[CleanData] = Stage(
    name="prepare",
    needs=("ingest",),
    sections=("schema", "cleaning"),
    version=PREP_VERSION,
    result=CleanData,
    run=_run,
    describe="types, quarantine, EDA (Polars)",
    help="Type and clean the data; quarantine bad rows; write the EDA report.",
)
