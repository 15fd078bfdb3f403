"""The prepare stage: a raw snapshot typed and cleaned by the rules of `_clean` (with Polars here, or on
Spark), clean rows written for the feature store and the rest quarantined with a reason.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Protocol, runtime_checkable

from conveyor.core.artifacts import Artifact, Result, relative_to
from conveyor.core.config import EVENT_TIMESTAMP, Config
from conveyor.core.errors import DataError
from conveyor.core.hashing import hash_json, short
from conveyor.core.stage import Stage, Upstream
from conveyor.core.workspace import Workspace
from conveyor.stages.prep._clean import LINE, REASON, _clean_lazy, _reasons

if TYPE_CHECKING:
    import polars as pl


__all__ = ["PREPARE", "PREP_VERSION", "CleanData", "prepare"]

PREP_VERSION = 4


@runtime_checkable
class RawInput(Protocol):
    """What prepare reads of the ingest stage's result."""

    @property
    def ingested_at(self) -> str: ...
    @property
    def quarantined(self) -> int: ...
    @property
    def source(self) -> str: ...
    @property
    def padded(self) -> bool: ...


class CleanData(Result):
    """Typed rows keyed by entity and event time; rejected rows are in the quarantine file."""

    kind: ClassVar[str] = "clean"

    rows: int
    quarantined: int
    """Rows rejected by prepare (bad values, missing target, key or time, duplicates)."""
    ingest_quarantined: int
    """Rows rejected earlier, at ingest (wrong field count, bad bytes, overlong field)."""
    quarantine_file: str | None
    quarantine_reasons: dict[str, int]
    """How many rows each column sent to quarantine."""
    event_time_min: str
    event_time_max: str

    def summary(self) -> str:
        text = f"{self.rows} clean, {self.quarantined + self.ingest_quarantined} quarantined"
        reasons = dict(self.quarantine_reasons)
        if self.ingest_quarantined:
            reasons["(unreadable rows, at ingest)"] = self.ingest_quarantined
        if reasons:
            text += " (" + ", ".join(f"{k}: {v}" for k, v in reasons.items()) + ")"
        return text


def prepare(config: Config, workspace: Workspace, raw: Artifact[RawInput]) -> Artifact[CleanData]:
    """Type and clean a raw snapshot; write clean rows and quarantined rows (the `eda` stage reports)."""

    digest = hash_json(
        {"raw": raw.digest, "schema": config.section("schema"), "cleaning": config.section("cleaning"),
         "version": PREP_VERSION}
    )
    workspace.ensure(workspace.clean, workspace.quarantine)
    out = workspace.clean / f"{short(digest)}.parquet"
    tmp = out.with_suffix(".tmp")
    if config.engine == "spark":  # the same rules, run by Polars in each Spark task; out is a folder of parts
        from conveyor.stages.prep._spark import clean_on_spark

        rows, quarantine, first_time, last_time = clean_on_spark(config, raw.path, raw.result.ingested_at, tmp)
    else:
        rows, quarantine, first_time, last_time = _clean_with_polars(config, raw, tmp)
    if rows == 0:
        _remove(tmp)
        first = f"line {quarantine[LINE][0]}: {quarantine[REASON][0]}" if quarantine.height else "no rows"
        raise DataError(f"{raw.result.source}: every row was quarantined; the first reason: {first}")
    for stale in workspace.quarantine.glob("prepare-*.csv"):  # lists of rows of an earlier preparation
        if stale.name != f"prepare-{short(digest)}.csv":
            stale.unlink(missing_ok=True)
    quarantine_file = workspace.quarantine / f"prepare-{short(digest)}.csv"
    quarantine_file.unlink(missing_ok=True)  # never leave a stale list of rejected rows behind
    _remove(out)
    tmp.replace(out)
    if quarantine.height:
        quarantine.write_csv(quarantine_file)
    result = CleanData(
        rows=rows,
        quarantined=quarantine.height,
        ingest_quarantined=raw.result.quarantined,
        quarantine_file=relative_to(quarantine_file, workspace.root) if quarantine.height else None,
        quarantine_reasons=_reason_counts(quarantine),
        event_time_min=first_time,
        event_time_max=last_time,
    )
    return Artifact("clean", out, digest, result, {"raw": raw.digest})


def _clean_with_polars(config: Config, raw: Artifact[RawInput], tmp: Path) -> tuple[int, pl.DataFrame, str, str]:
    """Clean rows to `tmp` in one streaming pass; (rows, the quarantine, first and last event time)."""
    import polars as pl

    lazy_clean, lazy_rejected = _clean_lazy(
        pl.scan_parquet(raw.path), config, raw.result.ingested_at, strip=raw.result.padded
    )
    # one streaming pass: clean rows straight to Parquet (bounded memory), rejected lines kept
    _, rejected = pl.collect_all([lazy_clean.sink_parquet(tmp, lazy=True), lazy_rejected], engine="streaming")
    quarantine = _reasons(rejected, pl.scan_parquet(raw.path), config, raw.result.ingested_at)
    stats = pl.scan_parquet(tmp).select(
        pl.len().alias("rows"), pl.col(EVENT_TIMESTAMP).min().alias("min"), pl.col(EVENT_TIMESTAMP).max().alias("max")
    ).collect()
    return int(stats["rows"][0]), quarantine, str(stats["min"][0]), str(stats["max"][0])


def _remove(path: Path) -> None:
    """A file, or the folder of parts Spark writes."""
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _reason_counts(quarantine: pl.DataFrame) -> dict[str, int]:
    """How many rows each column sent to quarantine."""
    import polars as pl

    if not quarantine.height:
        return {}
    parts = quarantine.select(pl.col(REASON).str.split("; ").alias("part")).explode("part")
    columns = parts.select(pl.col("part").str.split_exact(":", 1).struct.field("field_0").alias("column"))
    counted = columns.group_by("column", maintain_order=True).len()
    return {str(c): int(n) for c, n in counted.iter_rows()}


def _run(config: Config, workspace: Workspace, upstream: Upstream) -> Artifact[CleanData]:
    return prepare(config, workspace, upstream.get("ingest", RawInput))


PREPARE: Stage[CleanData] = Stage(
    name="prepare",
    needs=("ingest",),
    sections=("schema", "cleaning"),
    version=PREP_VERSION,
    result=CleanData,
    run=_run,
    describe="types, quarantine (Polars)",
    help="Type and clean the data; quarantine bad rows with their line and reason.",
)
