"""Ingest: a CSV or Parquet source snapshotted to all-text Parquet under its content hash."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path

from conveyor.core.artifacts import Artifact, relative_to
from conveyor.core.config import Config
from conveyor.core.errors import DataError
from conveyor.core.hashing import hash_file, hash_json, short
from conveyor.core.stage import Stage, Upstream
from conveyor.core.workspace import Workspace
from conveyor.stages.sources._csv import CsvRead, describe_bad_lines, write_bad_lines
from conveyor.stages.sources._read import read_source
from conveyor.stages.sources._snapshot import INGEST_VERSION, RawSnapshot, _remove_stale

__all__ = ["INGEST", "INGEST_VERSION", "RawSnapshot", "ingest", "source_digest"]


def _hashes(config: Config, workspace: Workspace) -> tuple[str, str]:
    if config.source.kind in ("postgres", "s3"):
        from conveyor.stages.sources._remote import remote_hashes

        return remote_hashes(config, workspace)
    if config.engine == "spark":  # a file, a folder of parts or a glob
        from conveyor.stages.sources._spark import source_files, spark_source_hash

        file_hash, _ = spark_source_hash(*source_files(config, workspace))
        read = config.section("source") | {"path": None}
        return file_hash, hash_json({"file": file_hash, "read": read, "version": INGEST_VERSION, "engine": "spark"})
    path = workspace.resolve(config.source.path or "")
    if not path.is_file():
        raise DataError(f"{path}: source file not found (source.path in {workspace.config_file})")
    file_hash = hash_file(path)
    read = config.section("source") | {"path": None}
    return file_hash, hash_json({"file": file_hash, "read": read, "version": INGEST_VERSION})


def source_digest(config: Config, workspace: Workspace) -> str:
    """Hash of the source's data and of how it is read: a snapshot's identity.

    A file: its bytes (hashed once per process while unchanged). s3: the listing (keys, sizes,
    ETags), no object read. postgres: the rows, read and hashed (docs in `_postgres.py`)."""
    return _hashes(config, workspace)[1]


def ingest(config: Config, workspace: Workspace) -> Artifact[RawSnapshot]:
    """Snapshot the source to `data/raw/<hash>.parquet`, all values kept as text.

    The same bytes give the same snapshot, written once. Unreadable rows (wrong field
    count, bytes not in the file's encoding, overlong fields) stop the ingest with their
    line numbers, or go to `data/quarantine/` when `source.on_bad_lines` says so.
    """
    if config.source.kind in ("postgres", "s3"):
        from conveyor.stages.sources._remote import ingest_remote

        return ingest_remote(config, workspace)
    path = workspace.resolve(config.source.path or "")
    file_hash, digest = _hashes(config, workspace)
    snapshot = workspace.raw / f"{short(digest)}.parquet"
    meta_file = snapshot.with_suffix(".json")
    if snapshot.exists() and meta_file.exists():
        try:
            result = RawSnapshot.model_validate_json(meta_file.read_text(encoding="utf-8"))
            if result.quarantine_file is None or workspace.resolve(result.quarantine_file).exists():
                return Artifact("raw", snapshot, digest, result, {"source_file": file_hash})
        except ValueError:
            pass  # a snapshot from another version: write it again
    if config.engine == "spark":
        return _ingest_on_spark(config, workspace, file_hash, digest)
    if not path.is_file():
        raise DataError(f"{path}: source file not found")

    src = config.source
    workspace.ensure(workspace.raw)
    _remove_stale(workspace, keep=short(digest))
    quarantine_file = workspace.quarantine / f"ingest-{short(digest)}.csv"
    quarantine_file.unlink(missing_ok=True)
    limit = 5 if src.on_bad_lines == "error" else None
    with tempfile.TemporaryDirectory(prefix="ingest-", dir=workspace.raw) as work:
        tmp = Path(work) / "snapshot.parquet"
        read = read_source(src, path, tmp, workdir=Path(work), bad_line_limit=limit)
        _accept(config, read, path, path, quarantine_file)
        tmp.replace(snapshot)
    result = RawSnapshot(
        rows=read.rows,
        columns=len(read.header),
        quarantined=len(read.bad),
        quarantine_file=relative_to(quarantine_file, workspace.root) if read.bad else None,
        ingested_at=datetime.now(UTC).isoformat(),
        source=relative_to(path, workspace.root),
        source_sha256=file_hash,
        reader=read.reader,
        padded=read.padded,
    )
    meta_file.write_text(result.model_dump_json(indent=2), encoding="utf-8")
    return Artifact("raw", snapshot, digest, result, {"source_file": file_hash})


def _accept(config: Config, read: CsvRead, header_at: Path, where: Path | str, quarantine_file: Path) -> None:
    """The checks every file read passes (Polars or Spark): the schema's columns are in the header
    (`header_at`, line 1), bad rows stop the run or go to `quarantine_file`, and some row is left."""
    missing = [c for c in config.schema.columns if c not in read.header]
    if missing:
        raise DataError(
            f"{header_at}, line 1: column(s) {', '.join(map(repr, missing))} named in conveyor.yaml "
            f"(schema.columns) are not in the header; the header has: {', '.join(read.header)}"
        )
    if read.bad:
        if config.source.on_bad_lines == "error":
            raise DataError(describe_bad_lines(where, read.bad))
        write_bad_lines(quarantine_file, read.bad)
    if read.rows == 0:
        raise DataError(f"{where}: no row can be read as a row of the header's {len(read.header)} columns")


def _ingest_on_spark(config: Config, workspace: Workspace, file_hash: str, digest: str) -> Artifact[RawSnapshot]:
    """`engine: spark`: the same snapshot, written by Spark as a folder of Parquet parts."""
    from conveyor.stages.sources._spark import read_on_spark, remove_snapshot, source_files, spark_source_hash

    src = config.source
    files, base = source_files(config, workspace)
    where = workspace.resolve(src.path or "")
    snapshot = workspace.raw / f"{short(digest)}.parquet"
    workspace.ensure(workspace.raw)
    _remove_stale(workspace, keep=short(digest))
    quarantine_file = workspace.quarantine / f"ingest-{short(digest)}.csv"
    quarantine_file.unlink(missing_ok=True)
    limit = 5 if src.on_bad_lines == "error" else None
    with tempfile.TemporaryDirectory(prefix="ingest-", dir=workspace.raw) as work:
        tmp = Path(work) / "snapshot.parquet"
        read = read_on_spark(config, files, base, tmp, workdir=Path(work), bad_line_limit=limit)
        _accept(config, read, files[0], where, quarantine_file)
        remove_snapshot(snapshot)
        tmp.replace(snapshot)
    result = RawSnapshot(
        rows=read.rows,
        columns=len(read.header),
        quarantined=len(read.bad),
        quarantine_file=relative_to(quarantine_file, workspace.root) if read.bad else None,
        ingested_at=datetime.now(UTC).isoformat(),
        source=relative_to(where, workspace.root),
        source_sha256=file_hash,
        reader=read.reader,
        padded=True,
        source_hashed=spark_source_hash(files, base)[1],
        files=len(files),
    )
    snapshot.with_suffix(".json").write_text(result.model_dump_json(indent=2), encoding="utf-8")
    return Artifact("raw", snapshot, digest, result, {"source_file": file_hash})


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
    describe="source snapshot to Parquet (Polars)",
    help="Snapshot the source (CSV, Parquet, a PostgreSQL table or query, S3 objects) to Parquet under its content hash.",
    extra_key=source_digest,
)
