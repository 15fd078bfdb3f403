"""What ingest makes, whatever the source: a raw snapshot (`RawSnapshot`), its format's version, and
the removal of older snapshots.
"""

from __future__ import annotations

from typing import ClassVar

from conveyor.core.artifacts import Result
from conveyor.core.workspace import Workspace

INGEST_VERSION = 3


class RawSnapshot(Result):
    """An all-text Parquet snapshot of the source, with the source line of every row."""

    kind: ClassVar[str] = "raw"

    rows: int
    columns: int
    quarantined: int
    """Rows set aside at ingest (wrong field count, bad bytes, overlong field), in `quarantine_file`."""
    quarantine_file: str | None
    ingested_at: str
    source: str
    """The source file, relative to the workspace when it is inside it; `postgres table NAME ($VAR)`,
    `postgres query ($VAR)` or the `s3://` URI for those sources (never a connection string)."""
    source_sha256: str
    reader: str = "polars"
    """`polars` (the fast path), `python` (the line-exact reader), `parquet` or `spark` (`engine: spark`)."""
    source_hashed: str = "bytes"
    """What `source_sha256` is the hash of: the file's `bytes`, or for a source of several files
    (`engine: spark`) the `listing` of its parts' names, sizes and modification times."""
    files: int = 1
    """Files the source is made of (several with `engine: spark` and a folder or a glob)."""
    padded: bool = True
    """Some value may start or end with whitespace; False when the CSV byte pass found none (prepare
    then skips stripping every value)."""
    digest: str | None = None
    """This snapshot's own digest (an incremental source finds the snapshot it extends by it)."""
    source_key: str | None = None
    """postgres, s3: the hash of the source section, the same for every snapshot of one source."""
    watermark: str | None = None
    """`source.incremental`: the largest value of its column in the snapshot, as the server writes it."""
    previous: str | None = None
    """`source.incremental`: the digest of the snapshot this one appends rows to (None: a full read)."""
    appended: int | None = None
    """`source.incremental`: the rows this snapshot added to `previous`."""
    last_row: int | None = None
    """postgres: the highest row number given (rows set aside included); an appended read continues from it."""

    def summary(self) -> str:
        text = f"{self.rows} rows from {self.source}"
        if self.previous is not None:
            text += f" ({self.appended} new above {self.watermark})" if self.appended else " (nothing new)"
        if self.quarantined:
            text += f", {self.quarantined} quarantined (unreadable rows)"
        return text


def _remove_stale(workspace: Workspace, keep: str) -> None:
    """Quarantine lists of earlier snapshots: they describe files that are no longer the source."""
    for old in workspace.quarantine.glob("ingest-*.csv") if workspace.quarantine.is_dir() else []:
        if old.stem != f"ingest-{keep}":
            old.unlink(missing_ok=True)
