"""Ingest from a PostgreSQL table or query and from S3 objects, into the same snapshots as a file.

The snapshot is the same all-text Parquet with `_line` a CSV gives, so prepare, caching and
lineage do not know where the rows came from. postgres: `_line` is the row's 1-based number in
what the query returned (a CSV line number turned into a row number). s3: `_line` runs on
across parts, and `_object`/`_object_line` say which part and which line of it.

`source.incremental` (postgres): the last snapshot of the same source section is found in
`data/raw/` by its `source_key`; only rows whose watermark column is above its `watermark` are
read, and a new snapshot is written holding its rows then the new ones (downstream stages see
all the data). No new row: the digest is the last snapshot's, so nothing re-runs.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from conveyor.core.artifacts import Artifact, relative_to
from conveyor.core.config import Config, SourceConfig
from conveyor.core.errors import DataError
from conveyor.core.hashing import hash_json, short
from conveyor.core.workspace import Workspace
from conveyor.stages.sources._csv import (
    LINE_COLUMN,
    BadLine,
    CsvRead,
    describe_bad_lines,
    read_csv_snapshot,
    write_bad_lines,
)
from conveyor.stages.sources._postgres import PgCopy, copy_rows, split_name
from conveyor.stages.sources._postgres import describe as describe_pg
from conveyor.stages.sources._s3 import Part, list_parts, read_parts
from conveyor.stages.sources._snapshot import INGEST_VERSION, RawSnapshot, _remove_stale

__all__ = ["describe", "infer_remote_config", "ingest_remote", "remote_hashes", "snapshot_remote"]


@dataclass
class _Staged:
    """A source read as far as its digest needs: the S3 listing, or the PostgreSQL rows as CSV."""

    digest: str
    sha256: str
    """The SHA-256 of the rows read (postgres) or of the listing (s3)."""
    parts: list[Part] | None = None
    copy: PgCopy | None = None
    """postgres: the COPY output waiting for ingest; its file is gone when nothing new was read."""
    previous: tuple[str, RawSnapshot] | None = None


_STAGED: dict[tuple[str, str], _Staged] = {}
"""The read `source_digest` made, handed to the `ingest` of the same run (a table is read once)."""


def describe(source: SourceConfig) -> str:
    return describe_pg(source) if source.kind == "postgres" else str(source.uri)


def _identity(config: Config) -> str:
    return hash_json({"source": config.section("source"), "version": INGEST_VERSION})


def _last_snapshot(workspace: Workspace, identity: str) -> tuple[str, RawSnapshot] | None:
    """The newest snapshot of this source with a watermark whose Parquet file is still there."""
    best: tuple[str, RawSnapshot] | None = None
    for meta in workspace.raw.glob("*.json") if workspace.raw.is_dir() else []:
        try:
            result = RawSnapshot.model_validate_json(meta.read_text(encoding="utf-8"))
        except ValueError:
            continue
        if result.source_key != identity or result.digest is None or result.watermark is None:
            continue
        if not meta.with_suffix(".parquet").exists():
            continue
        if best is None or result.ingested_at > best[1].ingested_at:
            best = (result.digest, result)
    return best


def _csv_header(path: Path) -> list[str]:
    import csv

    with path.open(newline="", encoding="utf-8") as handle:
        return next(csv.reader(handle), [])


def _stage(config: Config, workspace: Workspace) -> _Staged:
    src = config.source
    read = config.section("source")
    if src.kind == "s3":
        parts = list_parts(src)
        listing = hash_json([[part.key, part.size, part.etag] for part in parts])
        return _Staged(hash_json({"listing": listing, "read": read, "version": INGEST_VERSION}), listing, parts)
    identity = _identity(config)
    pending = workspace.raw / ".pending"
    pending.mkdir(parents=True, exist_ok=True)
    for old in pending.glob(f"{short(identity)}-*.csv"):  # reads an earlier run made and did not need
        old.unlink(missing_ok=True)
    out = pending / f"{short(identity)}-{os.getpid()}.csv"
    previous = _last_snapshot(workspace, identity) if src.incremental is not None else None
    copy = copy_rows(src, out, after=previous[1].watermark if previous else None)
    if previous is not None:
        import polars as pl

        columns = [c for c in pl.scan_parquet(workspace.raw / f"{short(previous[0])}.parquet").collect_schema().names()
                   if c != LINE_COLUMN]
        if _csv_header(out) != columns:  # the table changed shape: read it anew
            previous = None
            copy = copy_rows(src, out)
    if previous is not None and copy.rows == 0:
        out.unlink(missing_ok=True)
        return _Staged(previous[0], previous[1].source_sha256, copy=copy, previous=previous)
    inputs = {"rows": copy.sha256, "read": read, "version": INGEST_VERSION}
    if previous is not None:
        inputs["previous"] = previous[0]
    digest = hash_json(inputs)
    if (workspace.raw / f"{short(digest)}.json").exists() and (workspace.raw / f"{short(digest)}.parquet").exists():
        out.unlink(missing_ok=True)  # the rows are unchanged: ingest is cached, the read is not kept
    return _Staged(digest, copy.sha256, copy=copy, previous=previous)


def remote_hashes(config: Config, workspace: Workspace) -> tuple[str, str]:
    """(hash of the data read, the snapshot's digest); the read is kept for this run's ingest."""
    staged = _stage(config, workspace)
    _STAGED[(str(workspace.root), _identity(config))] = staged
    return staged.sha256, staged.digest


def _pg_snapshot(
    src: SourceConfig, copy: PgCopy, out: Path, *, workdir: Path, bad_line_limit: int | None, offset: int
) -> tuple[CsvRead, int]:
    """The COPY output through the CSV reader with row numbers for lines (an appended read's
    continue after `offset`); also the last row number given, set-aside rows counted."""
    import polars as pl

    where = describe(src)
    try:
        read = read_csv_snapshot(copy.path, out, delimiter=",", encoding="utf-8", max_field_bytes=src.max_field_bytes,
                                 workdir=workdir, bad_line_limit=bad_line_limit, row_numbers=True)
    except DataError as exc:
        if "no data rows" in str(exc):
            raise DataError(f"{where}: no rows to read") from None
        raise DataError(str(exc).replace(str(copy.path), where)) from None
    if offset:
        if read.rows:
            moved = workdir / "moved.parquet"
            pl.scan_parquet(out).with_columns(pl.col(LINE_COLUMN) + offset).sink_parquet(moved)
            moved.replace(out)
        read.bad[:] = [BadLine(b.line + offset, b.reason, b.fields) for b in read.bad]
    return read, offset + read.rows + len(read.bad)


def snapshot_remote(source: SourceConfig, out: Path, *, workdir: Path, bad_line_limit: int | None = None) -> CsvRead:
    """A whole read of the source into the snapshot file `out` (what `conveyor init` samples)."""
    if source.kind == "s3":
        return read_parts(source, list_parts(source), out, workdir=workdir, bad_line_limit=bad_line_limit)
    copy = copy_rows(source, workdir / "rows.csv")
    return _pg_snapshot(source, copy, out, workdir=workdir, bad_line_limit=bad_line_limit, offset=0)[0]


def ingest_remote(config: Config, workspace: Workspace) -> Artifact[RawSnapshot]:
    """Snapshot a postgres or s3 source to `data/raw/<hash>.parquet` (see the module docstring)."""
    import polars as pl

    src = config.source
    where = describe(src)
    identity = _identity(config)
    workspace.ensure(workspace.raw)
    staged = _STAGED.pop((str(workspace.root), identity), None)
    if staged is None:
        staged = _stage(config, workspace)  # not read in this process yet
    digest = staged.digest
    inputs = {"source_file": staged.sha256}
    snapshot = workspace.raw / f"{short(digest)}.parquet"
    meta_file = snapshot.with_suffix(".json")
    if snapshot.exists() and meta_file.exists():
        try:
            result = RawSnapshot.model_validate_json(meta_file.read_text(encoding="utf-8"))
            if result.quarantine_file is None or workspace.resolve(result.quarantine_file).exists():
                if staged.copy is not None:
                    staged.copy.path.unlink(missing_ok=True)
                if result.previous is not None:
                    inputs["previous_snapshot"] = result.previous
                return Artifact("raw", snapshot, digest, result, inputs)
        except ValueError:
            pass  # a snapshot from another version: write it again
    previous = staged.previous
    earlier_bad = b""
    if previous is not None and previous[1].quarantine_file is not None:
        old = workspace.resolve(previous[1].quarantine_file)
        if old.exists():
            earlier_bad = b"".join(old.read_bytes().splitlines(keepends=True)[1:])
    _remove_stale(workspace, keep=short(digest))
    quarantine_file = workspace.quarantine / f"ingest-{short(digest)}.csv"
    quarantine_file.unlink(missing_ok=True)
    limit = 5 if src.on_bad_lines == "error" else None
    last_row = None
    with tempfile.TemporaryDirectory(prefix="ingest-", dir=workspace.raw) as work:
        tmp = Path(work) / "snapshot.parquet"
        if staged.parts is not None:
            read = read_parts(src, staged.parts, tmp, workdir=Path(work), bad_line_limit=limit)
        else:
            assert staged.copy is not None
            if not staged.copy.path.exists():  # not kept (the snapshot existed): read the same rows again
                again = copy_rows(src, staged.copy.path, after=previous[1].watermark if previous else None)
                if again.sha256 != staged.copy.sha256:
                    raise DataError(f"{where}: the rows changed while being read; run again")
            offset = (previous[1].last_row or previous[1].rows) if previous is not None else 0
            read, last_row = _pg_snapshot(src, staged.copy, tmp, workdir=Path(work), bad_line_limit=limit, offset=offset)
            staged.copy.path.unlink(missing_ok=True)
        missing = [c for c in config.schema.columns if c not in read.header]
        if missing:
            raise DataError(
                f"{where}: column(s) {', '.join(map(repr, missing))} named in conveyor.yaml (schema.columns) "
                f"are not in what it returns; it has: {', '.join(read.header)}"
            )
        if read.bad and src.on_bad_lines == "error":
            raise DataError(describe_bad_lines(where, read.bad))
        if read.bad or earlier_bad:  # the rows set aside before (an appended read), then the new ones
            write_bad_lines(quarantine_file, read.bad)
            header, *lines = quarantine_file.read_bytes().splitlines(keepends=True)
            quarantine_file.write_bytes(header + earlier_bad + b"".join(lines))
        total, quarantined = read.rows, len(read.bad) + (previous[1].quarantined if previous else 0)
        if previous is not None:
            combined = Path(work) / "combined.parquet"
            earlier = pl.scan_parquet(workspace.raw / f"{short(previous[0])}.parquet")
            parts = [earlier, pl.scan_parquet(tmp).select(earlier.collect_schema().names())] if read.rows else [earlier]
            pl.concat(parts, how="vertical").sink_parquet(combined)
            tmp, total = combined, previous[1].rows + read.rows
            inputs["previous_snapshot"] = previous[0]
        if total == 0:
            raise DataError(f"{where}: no row can be read as a row of its {len(read.header)} columns")
        tmp.replace(snapshot)
    result = RawSnapshot(
        rows=total,
        columns=len(read.header),
        quarantined=quarantined,
        quarantine_file=relative_to(quarantine_file, workspace.root) if quarantine_file.exists() else None,
        ingested_at=datetime.now(UTC).isoformat(),
        source=where,
        source_sha256=staged.sha256,
        reader=read.reader,
        padded=read.padded or (previous[1].padded if previous else False),
        digest=digest,
        source_key=identity,
        watermark=staged.copy.watermark if staged.copy is not None else None,
        previous=previous[0] if previous else None,
        appended=read.rows if previous else None,
        last_row=last_row,
    )
    meta_file.write_text(result.model_dump_json(indent=2), encoding="utf-8")
    return Artifact("raw", snapshot, digest, result, inputs)


def infer_remote_config(source: SourceConfig, *, name: str | None = None, notes: list[str] | None = None,
                        **options: Any) -> Config:
    """`conveyor init` on a postgres or s3 source: the whole source read the way ingest reads it
    (the same snapshot), then inferred like a file; the source section is written as given."""
    import polars as pl

    from conveyor.stages.sources._infer import infer_config
    from conveyor.stages.sources._s3 import OBJECT_COLUMN, OBJECT_LINE_COLUMN

    where = describe(source)
    said: list[str] = [] if notes is None else notes
    with tempfile.TemporaryDirectory(prefix="conveyor-init-") as work:
        snapshot, sample = Path(work) / "snapshot.parquet", Path(work) / "sample.parquet"
        read = snapshot_remote(source, snapshot, workdir=Path(work))
        if read.bad:
            source = source.model_copy(update={"on_bad_lines": "quarantine"})
            shown = ", ".join(f"{b.object or 'row'} line {b.line} ({b.reason})" for b in read.bad[:3])
            said.append(f"source: {len(read.bad)} unreadable row(s) will be quarantined at ingest "
                        f"(source.on_bad_lines: quarantine), e.g. {shown}")
        extra = [LINE_COLUMN, OBJECT_COLUMN, OBJECT_LINE_COLUMN]
        pl.scan_parquet(snapshot).drop(extra, strict=False).sink_parquet(sample)
        try:
            return infer_config(sample, name=name or _default_name(source), notes=said, source=source, **options)
        except DataError as exc:
            raise DataError(str(exc).replace(str(sample), where)) from None


def _default_name(source: SourceConfig) -> str:
    import re

    if source.table is not None:
        base = split_name(source.table)[-1]
    elif source.uri is not None:
        base = PurePosixPath(source.uri.removeprefix("s3://").rstrip("/")).stem
    else:
        base = "query"
    slug = re.sub(r"[^a-z0-9_-]+", "-", base.lower()).strip("-_") or "project"
    return (slug if slug[0].isalpha() else f"p-{slug}")[:63]
