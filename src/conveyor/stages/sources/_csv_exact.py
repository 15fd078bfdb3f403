"""The line-exact reader (Python's `csv` module, in batches), for the rows the fast path sets aside
and for files the two readers would not agree on.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from conveyor.core.errors import DataError
from conveyor.stages.sources._csv_base import LINE_COLUMN, BadLine, CsvRead, _shape_problem, _short

_BATCH = 50_000


def _exact_records(source: Path, delimiter: str) -> Iterator[tuple[int, list[str] | None, str | None]]:
    """(start line, fields, error) for every record after the header, by Python's csv module."""
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    with source.open(newline="", encoding="utf-8", errors="surrogateescape") as handle:
        reader = csv.reader(handle, delimiter=delimiter, strict=True)
        next(reader, None)
        start = reader.line_num + 1
        while True:
            try:
                record = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield start, None, str(exc)
                if "unexpected end of data" in str(exc):
                    return
                start = reader.line_num + 1
                continue
            yield start, record, None
            start = reader.line_num + 1


def _exact_read(
    source: Path,
    original: Path,
    out: Path,
    header: list[str],
    delimiter: str,
    max_field_bytes: int,
    bad_line_limit: int | None,
) -> CsvRead:
    import polars as pl

    width = len(header)
    bad: list[BadLine] = []
    columns: list[list[str]] = [[] for _ in header]
    lines: list[int] = []
    written = 0
    tmp = out.with_name(out.name + ".part")
    writer: Any = None

    def flush() -> None:
        nonlocal writer, columns, lines, written
        if not lines:
            return
        frame = pl.DataFrame(
            {name: pl.Series(name, values, dtype=pl.String) for name, values in zip(header, columns, strict=True)}
        ).with_columns(pl.Series(LINE_COLUMN, lines, dtype=pl.Int64))
        table = frame.to_arrow()
        if writer is None:
            import pyarrow.parquet as pq

            writer = pq.ParquetWriter(str(tmp), table.schema)
        writer.write_table(table)
        written += len(lines)
        columns = [[] for _ in header]
        lines = []

    try:
        for line, record, error in _exact_records(source, delimiter):
            if error is not None:
                if "unexpected end of data" in error:
                    raise DataError(_unterminated(source, original, line, delimiter, header))
                bad.append(BadLine(line, f"malformed CSV: {error}", []))
                continue
            assert record is not None
            if not record or (len(record) == 1 and not record[0].strip()):
                continue  # a blank line
            if len(record) == width + 1 and record[-1] == "":
                record = record[:-1]  # a trailing delimiter
            problem = _record_problem(record, line, header, max_field_bytes, delimiter)
            if problem is not None:
                bad.append(problem)
                if bad_line_limit is not None and len(bad) >= bad_line_limit:
                    break
                continue
            for values, value in zip(columns, record, strict=True):
                values.append(value)
            lines.append(line)
            if len(lines) >= _BATCH:
                flush()
        flush()
    finally:
        if writer is not None:
            writer.close()
    if written == 0 and not bad:
        tmp.unlink(missing_ok=True)
        raise DataError(f"{original}: the file has a header but no data rows")
    if writer is None:
        empty = pl.DataFrame({name: pl.Series(name, [], dtype=pl.String) for name in header})
        empty.with_columns(pl.Series(LINE_COLUMN, [], dtype=pl.Int64)).write_parquet(tmp)
    tmp.replace(out)
    return CsvRead(header, written, bad, "python")


def _record_problem(
    record: list[str], line: int, header: list[str], max_field_bytes: int, delimiter: str
) -> BadLine | None:
    for column, value in enumerate(record, start=1):
        if any("\udc80" <= ch <= "\udcff" for ch in value):
            raw = value.encode("utf-8", errors="surrogateescape")
            shown = raw.decode("utf-8", errors="backslashreplace")
            name = header[column - 1] if column <= len(header) else f"#{column}"
            fields = [v.encode("utf-8", errors="surrogateescape").decode("utf-8", errors="backslashreplace")
                      for v in record]
            return BadLine(
                line,
                f"column {column} ({name}): value {_short(shown)} is not valid UTF-8; the rest of the file is UTF-8",
                fields,
            )
    del delimiter
    return _shape_problem(line, record, header, max_field_bytes)


def _unterminated(source: Path, original: Path, line: int, delimiter: str, header: list[str]) -> str:
    """Where a quoted field opens and never closes: the record's start line and column."""
    text = ""
    with source.open(encoding="utf-8", errors="replace", newline="") as handle:
        for number, content in enumerate(handle, start=1):
            if number == line:
                text = content
                break
    column, inside, quote_at = 1, False, 0
    sep_count = 1
    for position, char in enumerate(text):
        if char == '"':
            inside = not inside
            if inside:
                column, quote_at = sep_count, position
        elif char == delimiter and not inside:
            sep_count += 1
    name = header[column - 1] if column <= len(header) else f"#{column}"
    snippet = _short(text[quote_at:].rstrip("\r\n"), 40)
    return (
        f"{original}, line {line}, column {column} ({name}): a quoted field starts here ({snippet}) and is "
        "never closed; the rest of the file would be one value. Close or remove the quote"
    )
