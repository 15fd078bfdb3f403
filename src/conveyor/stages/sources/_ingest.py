"""Ingest: a CSV snapshotted to Parquet under its content hash."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime

from conveyor.core.artifacts import Artifact
from conveyor.core.config import Config
from conveyor.core.errors import DataError
from conveyor.core.hashing import hash_file, hash_json, short
from conveyor.core.workspace import Workspace
from conveyor.stages.sources._csv import describe_ragged, scan_csv

__all__ = ["ingest", "source_digest"]


def _hashes(config: Config, workspace: Workspace) -> tuple[str, str]:
    path = workspace.resolve(config.source.path)
    if not path.is_file():
        raise DataError(f"{path}: source file not found (source.path in {workspace.config_file})")
    file_hash = hash_file(path)
    return file_hash, hash_json({"file": file_hash, "read": config.section("source") | {"path": None}})


def source_digest(config: Config, workspace: Workspace) -> str:
    """Hash of the source file's bytes and of how it is read: a snapshot's identity."""
    return _hashes(config, workspace)[1]


def ingest(config: Config, workspace: Workspace) -> Artifact:
    """Snapshot the source CSV to `data/raw/<hash>.parquet`, all values kept as text.

    The same bytes give the same snapshot, written once. Ragged rows stop the ingest with
    their line numbers, or go to `data/quarantine/` when `source.on_bad_lines` says so.
    """
    path = workspace.resolve(config.source.path)
    file_hash, digest = _hashes(config, workspace)
    snapshot = workspace.raw / f"{short(digest)}.parquet"
    meta_file = snapshot.with_suffix(".json")
    if snapshot.exists() and meta_file.exists():
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
        return Artifact("raw", snapshot, digest, {"source_file": file_hash}, meta)

    src = config.source
    scanned = scan_csv(path, delimiter=src.delimiter, encoding=src.encoding)
    missing = [c for c in config.schema.columns if c not in scanned.header]
    if missing:
        raise DataError(
            f"{path}, line 1: column(s) {', '.join(map(repr, missing))} named in conveyor.yaml "
            f"(schema.columns) are not in the header; the header has: {', '.join(scanned.header)}"
        )
    quarantined = 0
    if scanned.ragged:
        if src.on_bad_lines == "error":
            raise DataError(describe_ragged(path, scanned.ragged, len(scanned.header)))
        quarantined = _quarantine_ragged(workspace, digest, scanned.header, scanned.ragged)
    if not scanned.rows:
        raise DataError(f"{path}: no row has the header's {len(scanned.header)} fields")

    workspace.ensure(workspace.raw)
    frame = scanned.frame()
    tmp = snapshot.with_suffix(".parquet.tmp")
    frame.write_parquet(tmp)
    tmp.replace(snapshot)
    meta = {
        "rows": frame.height,
        "columns": len(scanned.header),
        "ragged_quarantined": quarantined,
        "ingested_at": datetime.now(UTC).isoformat(),
        "source": str(path),
        "source_sha256": file_hash,
    }
    meta_file.write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return Artifact("raw", snapshot, digest, {"source_file": file_hash}, meta)


def _quarantine_ragged(workspace: Workspace, digest: str, header: list[str], ragged: list) -> int:
    workspace.ensure(workspace.quarantine)
    out = workspace.quarantine / f"ingest-{short(digest)}.csv"
    with out.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["_line", "_reason", "_fields"])
        for row in ragged:
            reason = f"{row.fields} fields, the header has {len(header)}"
            writer.writerow([row.line, reason, json.dumps(row.values)])
    return len(ragged)


