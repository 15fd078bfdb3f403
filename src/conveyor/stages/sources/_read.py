"""One entry point for every source kind: an all-text Parquet snapshot with the line of each row."""

from __future__ import annotations

from pathlib import Path

from conveyor.core.config import SourceConfig
from conveyor.core.errors import DataError
from conveyor.stages.sources._csv import LINE_COLUMN, CsvRead, read_csv_snapshot

__all__ = ["read_parquet_snapshot", "read_source"]


def read_source(
    source: SourceConfig, path: Path, out: Path, *, workdir: Path, bad_line_limit: int | None = None
) -> CsvRead:
    """Write `path` to `out` as all-text Parquet plus `_line`; return the header and the bad rows."""
    if source.kind == "parquet":
        return read_parquet_snapshot(path, out)
    return read_csv_snapshot(
        path,
        out,
        delimiter=source.delimiter,
        encoding=source.encoding,
        max_field_bytes=source.max_field_bytes,
        workdir=workdir,
        bad_line_limit=bad_line_limit,
    )


def read_parquet_snapshot(path: Path, out: Path) -> CsvRead:
    """A Parquet source: every column as text (nothing lost; prepare types it), `_line` = row number."""
    import polars as pl

    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        schema = pl.scan_parquet(path).collect_schema()
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise DataError(f"{path}: not a readable Parquet file ({str(exc).splitlines()[0]})") from None
    header = list(schema.names())
    for index, (name, dtype) in enumerate(schema.items(), start=1):
        if dtype.is_nested() or dtype == pl.Binary or dtype == pl.Object:
            raise DataError(
                f"{path}, column {index} ({name}): type {dtype} cannot be a feature; "
                "flatten it or leave it out of the file"
            )
        if name.startswith("_"):
            raise DataError(f"{path}, column {index}: column names starting with '_' are reserved ({name!r})")
    if len(header) < 2:
        raise DataError(f"{path}: the file has {len(header)} column(s); expected features and a target")
    text = [pl.col(name).cast(pl.String).alias(name) for name in header]
    tmp = out.with_name(out.name + ".part")
    frame = pl.scan_parquet(path).with_row_index("__conveyor_row", offset=1)
    line = pl.col("__conveyor_row").cast(pl.Int64).alias(LINE_COLUMN)
    frame.select(*text, line).sink_parquet(tmp)
    rows = int(pl.scan_parquet(tmp).select(pl.len()).collect().item())
    if rows == 0:
        tmp.unlink(missing_ok=True)
        raise DataError(f"{path}: the file has no rows")
    tmp.replace(out)
    return CsvRead(header, rows, [], "parquet")
