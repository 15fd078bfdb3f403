"""Ingest: a CSV snapshotted to Parquet under its content hash."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

from conveyor.core.artifacts import Artifact, Result, relative_to
from conveyor.core.config import Config
from conveyor.core.errors import DataError
from conveyor.core.hashing import hash_file, hash_json, short
from conveyor.core.stage import Stage, Upstream
from conveyor.core.workspace import Workspace
from conveyor.stages.sources._csv import RaggedRow, describe_ragged, scan_csv

__all__ = ["INGEST", "INGEST_VERSION", "RawSnapshot", "ingest", "source_digest"]

INGEST_VERSION = 1


class RawSnapshot(Result):
    """An all-text Parquet snapshot of the source, with the source line of every row."""

    kind: ClassVar[str] = "raw"

    rows: int
    columns: int
    quarantined: int
    """Rows set aside at ingest (wrong field count), in `quarantine_file`."""
    quarantine_file: str | None
    ingested_at: str
    source: str
    """The source file, relative to the workspace when it is inside it."""
    source_sha256: str

    def summary(self) -> str:
        text = f"{self.rows} rows from {self.source}"
        if self.quarantined:
            text += f", {self.quarantined} quarantined (wrong field count)"
        return text


def _hashes(config: Config, workspace: Workspace) -> tuple[str, str]:
    path = workspace.resolve(config.source.path)
    if not path.is_file():
        raise DataError(f"{path}: source file not found (source.path in {workspace.config_file})")
    file_hash = hash_file(path)
    read = config.section("source") | {"path": None}
    return file_hash, hash_json({"file": file_hash, "read": read, "version": INGEST_VERSION})


def source_digest(config: Config, workspace: Workspace) -> str:
    """Hash of the source file's bytes and of how it is read: a snapshot's identity."""
    return _hashes(config, workspace)[1]


def ingest(config: Config, workspace: Workspace) -> Artifact[RawSnapshot]:
    """Snapshot the source CSV to `data/raw/<hash>.parquet`, all values kept as text.

    The same bytes give the same snapshot, written once. Ragged rows stop the ingest with
    their line numbers, or go to `data/quarantine/` when `source.on_bad_lines` says so.
    """
    path = workspace.resolve(config.source.path)
    file_hash, digest = _hashes(config, workspace)
    snapshot = workspace.raw / f"{short(digest)}.parquet"
    meta_file = snapshot.with_suffix(".json")
    if snapshot.exists() and meta_file.exists():
        try:
            result = RawSnapshot.model_validate_json(meta_file.read_text(encoding="utf-8"))
            return Artifact("raw", snapshot, digest, result, {"source_file": file_hash})
        except ValueError:
            pass  # a snapshot from another version: write it again

    src = config.source
    scanned = scan_csv(path, delimiter=src.delimiter, encoding=src.encoding)
    missing = [c for c in config.schema.columns if c not in scanned.header]
    if missing:
        raise DataError(
            f"{path}, line 1: column(s) {', '.join(map(repr, missing))} named in conveyor.yaml "
            f"(schema.columns) are not in the header; the header has: {', '.join(scanned.header)}"
        )
    quarantine_file = workspace.quarantine / f"ingest-{short(digest)}.csv"
    quarantine_file.unlink(missing_ok=True)
    if scanned.ragged:
        if src.on_bad_lines == "error":
            raise DataError(describe_ragged(path, scanned.ragged, len(scanned.header)))
        _quarantine_ragged(quarantine_file, scanned.header, scanned.ragged)
    if not scanned.rows:
        raise DataError(f"{path}: no row has the header's {len(scanned.header)} fields")

    workspace.ensure(workspace.raw)
    frame = scanned.frame()
    tmp = snapshot.with_suffix(".parquet.tmp")
    frame.write_parquet(tmp)
    tmp.replace(snapshot)
    result = RawSnapshot(
        rows=frame.height,
        columns=len(scanned.header),
        quarantined=len(scanned.ragged),
        quarantine_file=relative_to(quarantine_file, workspace.root) if scanned.ragged else None,
        ingested_at=datetime.now(UTC).isoformat(),
        source=relative_to(path, workspace.root),
        source_sha256=file_hash,
    )
    meta_file.write_text(result.model_dump_json(indent=2), encoding="utf-8")
    return Artifact("raw", snapshot, digest, result, {"source_file": file_hash})


def _quarantine_ragged(out: Path, header: list[str], ragged: list[RaggedRow]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["_line", "_reason", "_fields"])
        for row in ragged:
            reason = f"{row.fields} fields, the header has {len(header)}"
            writer.writerow([row.line, reason, json.dumps(row.values)])


def _run(config: Config, workspace: Workspace, upstream: Upstream) -> Artifact[RawSnapshot]:
    del upstream  # the first stage reads the source, not another stage
    return ingest(config, workspace)


INGEST: Stage[RawSnapshot] = Stage(
    name="ingest",
    needs=(),
    sections=("source",),
    version=INGEST_VERSION,
    result=RawSnapshot,
    run=_run,
    describe="CSV snapshot to Parquet",
    help="Snapshot the source CSV to Parquet under its content hash.",
    extra_key=source_digest,
)


