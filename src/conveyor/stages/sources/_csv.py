"""Reading a CSV as people download it: encodings, delimiters, blanks, ragged rows, bad bytes.

Two readers give the same snapshot, all values as text plus the source line of every row:

- the fast path: one vectorised pass over the bytes (numpy) finds the row boundaries, the
  lines inside quoted fields, blank lines, ragged rows, bad bytes and overlong rows; Polars
  then parses the file in streaming mode straight to Parquet, and the line of each row is
  computed from the few quoted newlines found by the pass;
- the line-exact reader (Python's `csv` module, in batches): used to explain the rows the
  fast path sets aside, and for the whole file when the two would not agree (stray quotes,
  an unterminated quote, a Polars error), so line numbers are always exact.

This module puts them together (the snapshot) and reports bad rows; the parts live beside it:
`_csv_base` (what they share), `_csv_sniff` (encoding, delimiter, header), `_csv_transcode`
(a UTF-8 copy of other encodings), `_csv_scan` (the byte pass and the fast read) and
`_csv_exact` (the line-exact reader).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from conveyor.core.errors import DataError
from conveyor.stages.sources._csv_base import LINE_COLUMN, BadLine, CsvRead
from conveyor.stages.sources._csv_exact import _exact_read
from conveyor.stages.sources._csv_scan import _array_blocks as _array_blocks
from conveyor.stages.sources._csv_scan import _explain as _explain
from conveyor.stages.sources._csv_scan import _fast_read, _scan, _sink_guess
from conveyor.stages.sources._csv_sniff import _check_header as _check_header
from conveyor.stages.sources._csv_sniff import check_readable, read_header, sniff_delimiter, sniff_encoding
from conveyor.stages.sources._csv_sniff import non_ascii_words as non_ascii_words
from conveyor.stages.sources._csv_transcode import _utf8_source

__all__ = [
    "LINE_COLUMN",
    "BadLine",
    "CsvRead",
    "check_readable",
    "describe_bad_lines",
    "read_csv_snapshot",
    "read_header",
    "sniff_delimiter",
    "sniff_encoding",
    "write_bad_lines",
]


# --------------------------------------------------------------------------- the two readers


def read_csv_snapshot(
    path: Path,
    out: Path,
    *,
    delimiter: str,
    encoding: str,
    max_field_bytes: int,
    workdir: Path,
    bad_line_limit: int | None = None,
    row_numbers: bool = False,
) -> CsvRead:
    """Read a CSV to an all-text Parquet file `out` with a `_line` column; the bad rows are returned.

    `bad_line_limit`: stop collecting (and reading) once this many bad rows are found, for a
    caller that will stop at the first ones anyway. `row_numbers`: `_line` (and a bad row's
    line) is the row's 1-based number among all rows instead (a database's rows written as CSV).
    """
    import threading

    check_readable(path)
    header = read_header(path, delimiter=delimiter, encoding=encoding)
    source = _utf8_source(path, encoding, workdir)
    # While the byte pass runs, Polars parses the file on the other core(s) as if every row
    # were one plain line; the pass then says whether that guess holds (it nearly always does).
    guess_file = out.with_name(out.name + ".guess")
    guess: list[int] = []
    first = 1 if row_numbers else 2  # every row one line: row n is on line n + 1
    worker = threading.Thread(target=_sink_guess, args=(source, guess_file, header, delimiter, guess, first), daemon=True)
    worker.start()
    try:
        layout = _scan(source, delimiter, len(header), max_field_bytes)
    finally:
        worker.join()
    if not layout.open_quote and not layout.quoted_newlines and not layout.suspects:
        if layout.rows == 0:
            guess_file.unlink(missing_ok=True)
            raise DataError(f"{path}: the file has a header but no data rows")
        if guess == [layout.rows]:
            guess_file.replace(out)
            return CsvRead(header, layout.rows, [], "polars", padded=layout.padded)
    guess_file.unlink(missing_ok=True)
    read = None
    if not layout.open_quote:
        read = _fast_read(source, out, header, layout, delimiter, max_field_bytes)
    if read is None:
        read = _exact_read(source, path, out, header, delimiter, max_field_bytes, bad_line_limit)
    return _as_row_numbers(read, out) if row_numbers else read


def _as_row_numbers(read: CsvRead, out: Path) -> CsvRead:
    """Line numbers made row numbers: each row's place among the rows read and the rows set aside."""
    import numpy as np
    import polars as pl

    lines = pl.read_parquet(out, columns=[LINE_COLUMN])[LINE_COLUMN].to_numpy() if read.rows else np.array([], np.int64)
    every = np.union1d(lines, np.array([b.line for b in read.bad], dtype=np.int64))
    if read.rows:
        tmp = out.with_name(out.name + ".rows")
        numbers = np.searchsorted(every, lines).astype(np.int64) + 1
        pl.scan_parquet(out).with_columns(pl.Series(LINE_COLUMN, numbers)).sink_parquet(tmp)
        tmp.replace(out)
    bad = [BadLine(int(np.searchsorted(every, b.line)) + 1, b.reason, b.fields, b.object, b.file) for b in read.bad]
    return CsvRead(read.header, read.rows, bad, read.reader, read.notes, read.padded)


# --------------------------------------------------------------------------- reporting


def describe_bad_lines(path: Path | str, bad: list[BadLine], limit: int = 5) -> str:
    def one(row: BadLine) -> str:
        where = f"{row.object} line {row.line}" if row.object else f"line {row.line}"
        if ", the header has " in row.reason and row.reason.split(" ", 1)[0].isdigit():
            return f"{where} has {row.reason}"  # "line 6 has 18 fields, the header has 17"
        return f"{where}: {row.reason}"

    def where(row: BadLine) -> str:
        return f"{row.file}, {one(row)}" if row.file is not None else one(row)

    shown = "; ".join(where(b) for b in bad[:limit])
    more = f" (and {len(bad) - limit} more)" if len(bad) > limit else ""
    return (
        f"{path}: {len(bad)} row(s) cannot be read as rows of the header's columns: {shown}{more}. "
        "Fix the file, or set source.on_bad_lines: quarantine in conveyor.yaml"
    )


def write_bad_lines(out: Path, bad: list[BadLine]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        objects = any(row.object for row in bad)  # several objects: which one each line is of
        parts = any(row.file is not None for row in bad)  # a source of several files: say which
        writer.writerow(["_object"] * objects + ["_file"] * parts + [LINE_COLUMN, "_reason", "_fields"])
        for row in bad:
            where = [row.object or ""] * objects + [row.file or ""] * parts
            writer.writerow([*where, row.line, row.reason, json.dumps(row.fields, ensure_ascii=False)])


