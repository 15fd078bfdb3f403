"""One entry point for every source kind: an all-text Parquet snapshot with the line of each row."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from conveyor.core.config import SourceConfig
from conveyor.core.errors import DataError
from conveyor.stages.sources._compressed import decompressed
from conveyor.stages.sources._csv import LINE_COLUMN, CsvRead, read_csv_snapshot

if TYPE_CHECKING:
    import polars as pl

__all__ = ["parquet_text", "read_parquet_snapshot", "read_source"]


def read_source(
    source: SourceConfig, path: Path, out: Path, *, workdir: Path, bad_line_limit: int | None = None
) -> CsvRead:
    """Write `path` to `out` as all-text Parquet plus `_line`; return the header and the bad rows.

    A compressed CSV (gzip, bzip2, xz, a zip of one file) is decompressed into `workdir` first.
    """
    if source.kind == "parquet":
        return read_parquet_snapshot(path, out)
    plain = decompressed(path, workdir)  # a .csv.gz and the like: its text, in workdir
    try:
        return read_csv_snapshot(
            plain,
            out,
            delimiter=source.delimiter,
            encoding=source.encoding,
            max_field_bytes=source.max_field_bytes,
            workdir=workdir,
            bad_line_limit=bad_line_limit,
        )
    except DataError as exc:
        if plain == path:
            raise
        raise DataError(str(exc).replace(str(plain), f"{path} (decompressed)")) from None
    finally:
        if plain != path:
            plain.unlink(missing_ok=True)


def read_parquet_snapshot(path: Path, out: Path) -> CsvRead:
    """A Parquet source: every column as text (nothing lost; prepare types it), `_line` = row number."""
    header, frame, rows = parquet_text(path)
    if rows == 0:
        raise DataError(f"{path}: the file has no rows")
    tmp = out.with_name(out.name + ".part")
    frame.sink_parquet(tmp)
    tmp.replace(out)
    return CsvRead(header, rows, [], "parquet")


def parquet_text(path: Path, name: str | None = None) -> tuple[list[str], pl.LazyFrame, int]:
    """A Parquet file's header, its rows as text plus `_line` (the 1-based row), and its row count
    (from the footer: nothing else read). `name`: how messages call the file (its URI)."""
    import polars as pl

    shown = name or str(path)
    if not path.is_file():
        raise DataError(f"{shown}: file not found")
    try:
        scan = pl.scan_parquet(path)
        schema = scan.collect_schema()
        rows = int(scan.select(pl.len()).collect().item())
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise DataError(f"{shown}: not a readable Parquet file ({str(exc).splitlines()[0]})") from None
    header = list(schema.names())
    for index, (column, dtype) in enumerate(schema.items(), start=1):
        if dtype.is_nested() or dtype == pl.Binary or dtype == pl.Object:
            raise DataError(
                f"{shown}, column {index} ({column}): type {dtype} cannot be a feature; "
                "flatten it or leave it out of the file"
            )
        if column.startswith("_"):
            raise DataError(f"{shown}, column {index}: column names starting with '_' are reserved ({column!r})")
    if len(header) < 2:
        raise DataError(f"{shown}: the file has {len(header)} column(s); expected features and a target")
    text = [pl.col(column).cast(pl.String).alias(column) for column in header]
    line = pl.col("__conveyor_row").cast(pl.Int64).alias(LINE_COLUMN)
    return header, scan.with_row_index("__conveyor_row", offset=1).select(*text, line), rows
