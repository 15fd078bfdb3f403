"""The fast path: one vectorised pass over the bytes (numpy) finds the rows, the lines inside quoted
fields, blank, ragged and overlong rows and bad bytes; Polars then parses the file to Parquet.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.core.errors import DataError
from conveyor.stages.sources._csv_base import _BLOCK, LINE_COLUMN, BadLine, CsvRead, _shape_problem, _short

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import polars as pl


def _array_blocks(path: Path, size: int = _BLOCK) -> Iterator[npt.NDArray[np.uint8]]:
    """The file as blocks that end just after a newline (a last newline added if missing).

    Each block is a view of one buffer, refilled in place (no new pages per block: a fresh
    process pays for every page it touches); it is valid until the next block is asked for.
    """
    import numpy as np

    buf = np.empty(size, dtype=np.uint8)
    filled = 0  # bytes at the front of `buf` left over from the last block (a row's start)
    with path.open("rb") as handle:
        while True:
            if filled == buf.size:  # one row longer than the buffer: make room
                buf = np.concatenate((buf, np.empty(buf.size, dtype=np.uint8)))
            got = handle.readinto(buf[filled:].data)
            end = filled + got
            if not got:
                if end:
                    if buf[end - 1] != 10:
                        if end == buf.size:
                            buf = np.concatenate((buf, np.empty(1, dtype=np.uint8)))
                        buf[end] = 10
                        end += 1
                    yield buf[:end]
                return
            cut = _after_last_newline(buf[:end])
            if cut == 0:
                filled = end
                continue
            yield buf[:cut]
            rest = end - cut
            buf[:rest] = buf[cut:end]
            filled = rest


def _after_last_newline(arr: npt.NDArray[np.uint8]) -> int:
    """One past the last newline byte in `arr`, 0 when there is none (looked for from the end)."""
    import numpy as np

    window = 1 << 16
    stop = arr.size
    while stop > 0:
        begin = max(0, stop - window)
        found = np.flatnonzero(arr[begin:stop] == 10)
        if found.size:
            return begin + int(found[-1]) + 1
        stop, window = begin, window * 2
    return 0


@dataclass
class _Layout:
    """Row boundaries of a UTF-8 CSV, from one vectorised pass over its bytes."""

    rows: int = 0
    """Data rows as Polars counts them (every line outside quotes after the header, blanks too)."""
    quoted_newlines: list[int] = field(default_factory=list)
    """For each newline inside a quoted field: the index of the next data row (for line numbers)."""
    suspects: list[tuple[int, int, int]] = field(default_factory=list)
    """(data row, start byte, end byte) of rows to look at: field count, bad bytes, length."""
    open_quote: bool = False
    """The file ends inside a quoted field."""
    padded: bool = False
    """Some value may start or end with whitespace (or a non-ASCII byte): prepare strips values only then."""


def _scan(path: Path, delimiter: str, width: int, max_field_bytes: int) -> _Layout:
    import numpy as np

    layout = _Layout()
    sep = ord(delimiter)
    offset = 0  # global byte offset of the block
    parity = 0  # inside quotes at the start of the block
    row = -1  # index of the row the block starts in; -1 = the header
    start = 0  # global start byte of the current row
    carry = 0  # delimiters seen in the current row before this block
    last = np.zeros(2, dtype=np.uint8)  # the two bytes before the block
    for arr in _array_blocks(path, _BLOCK):  # the module constant, read at call time (tests shrink it)
        newline = arr == 10
        is_sep = arr == sep
        if np.any(arr == 34):
            inside = (np.cumsum(arr == 34, dtype=np.uint8) + parity) & 1
            outside = inside == 0
            ends = np.flatnonzero(newline & outside)
            quoted = np.flatnonzero(newline & ~outside)
            is_sep &= outside
            parity = int(inside[-1])
        else:
            ends = np.flatnonzero(newline)
            quoted = np.empty(0, dtype=np.int64)
        ext = np.concatenate((last, arr))
        if quoted.size:
            # each quoted newline delays the lines of every later row by one
            owner = np.searchsorted(ends, quoted) + row + 1
            layout.quoted_newlines.extend(owner.tolist())
            layout.padded = True  # a newline inside a value may be at its edge
        if not layout.padded:
            layout.padded = _padded(arr, ext, sep)
        if ends.size:
            counts = _separators_per_row(is_sep, ends)
            counts[0] += carry
            carry = int(np.count_nonzero(is_sep[int(ends[-1]) + 1 :]))
            starts = np.concatenate(([start - offset], ends[:-1] + 1))
            flagged = _flag_rows(starts, ends, counts, ext, sep, width, max_field_bytes)
            for bad_at in _bad_utf8_offsets(arr):
                flagged.append(int(np.searchsorted(ends, bad_at)))
            for index in sorted(set(flagged)):
                data_row = row + index
                if data_row >= 0 and index < ends.size:
                    layout.suspects.append((data_row, offset + int(starts[index]), offset + int(ends[index])))
            row += int(ends.size)
            start = offset + int(ends[-1]) + 1
        else:
            carry += int(np.count_nonzero(is_sep))
        last = ext[-2:].copy()
        offset += int(arr.size)
    layout.open_quote = bool(parity)
    layout.rows = max(row, 0)
    return layout


_COUNT_LIMIT = 65_535
"""Rows at least this long are always looked at: their separators are counted in 16 bits."""


def _separators_per_row(is_sep: npt.NDArray[np.bool_], ends: npt.NDArray[Any]) -> npt.NDArray[np.int64]:
    """Separators from the block's start (then from each row end) up to each row end.

    Counted in 16 bits (several times faster than finding every separator): a row long enough to
    wrap the count is flagged by `_flag_rows` and counted again by the line-exact reader.
    """
    import numpy as np

    bounds = np.concatenate(([0], ends[:-1] + 1))
    counted = np.add.reduceat(is_sep[: int(ends[-1]) + 1].view(np.uint8), bounds, dtype=np.uint16)
    return counted.astype(np.int64)


def _padded(arr: npt.NDArray[np.uint8], ext: npt.NDArray[np.uint8], sep: int) -> bool:
    """Whether a whitespace, control or non-ASCII byte touches a field edge in this block.

    Conservative (a delimiter inside quotes counts as an edge): True only costs prepare a strip.
    The block ends with a newline, so every byte looked at has one after it.
    """
    import numpy as np

    odd = np.flatnonzero(arr.view(np.int8) <= 32)  # bytes 0-32 and 128-255
    this = arr[odd]
    keep = this != 10
    odd, this = odd[keep], this[keep]
    if not odd.size:
        return False
    before = ext[odd + 1]  # ext is the block shifted by 2: ext[i + 1] is the byte before arr[i]
    after = arr[odd + 1]
    edge_before = (before == sep) | (before == 10) | (before == 34)
    edge_after = (after == sep) | (after == 10) | (after == 34) | (after == 13)
    crlf = (this == 13) & (after == 10)  # a line end, not a value's whitespace
    return bool(np.any((edge_before | edge_after) & ~crlf))


def _bad_utf8_offsets(arr: npt.NDArray[np.uint8]) -> list[int]:
    """Offsets (in the block) of the first bad byte of every line that is not valid UTF-8."""
    import numpy as np

    if int(arr.view(np.int8).min()) >= 0:  # ASCII
        return []
    block = arr.tobytes()
    try:
        block.decode("utf-8")
        return []
    except UnicodeDecodeError:
        pass
    found, position = [], 0
    for line in block.split(b"\n"):
        if not line.isascii():
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as exc:
                found.append(position + exc.start)
        position += len(line) + 1
    return found


def _flag_rows(
    starts: npt.NDArray[Any],
    ends: npt.NDArray[Any],
    counts: npt.NDArray[Any],
    ext: npt.NDArray[np.uint8],
    sep: int,
    width: int,
    max_field_bytes: int,
) -> list[int]:
    """Rows of a block that need a closer look: wrong field count, blank, longer than a field may be."""
    import numpy as np

    lengths = ends - starts
    last = ext[ends + 1]  # the byte before the newline (ext is the block shifted by 2)
    cr = last == 13
    trailing = np.where(cr, ext[ends], last) == sep
    ok_width = (counts == width - 1) | ((counts == width) & trailing)
    blank = (lengths == 0) | ((lengths == 1) & cr)
    too_long = (lengths > max_field_bytes) | (lengths >= _COUNT_LIMIT)
    flagged: list[int] = np.flatnonzero(~ok_width | blank | too_long).tolist()
    return flagged


def _decode_row(raw: bytes) -> tuple[str, int | None]:
    """The text of a row (bad bytes escaped) and the offset of its first bad byte, if any."""
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        return raw.decode("utf-8", errors="backslashreplace"), exc.start


def _explain(
    raw: bytes, line: int, delimiter: str, header: list[str], max_field_bytes: int
) -> BadLine | None | str:
    """Why a row cannot be a row of the header's columns; None when it can, "blank" for a blank line."""
    text, bad_at = _decode_row(raw.rstrip(b"\r"))
    if not text.strip():
        return "blank"
    records = list(csv.reader([text], delimiter=delimiter))
    fields = records[0] if len(records) == 1 else [text]
    if fields and fields[-1] == "" and len(fields) == len(header) + 1:
        fields = fields[:-1]  # a trailing delimiter
    if bad_at is not None:
        column = _column_at(raw, bad_at, delimiter)
        name = header[column - 1] if column <= len(header) else f"#{column}"
        byte = raw[bad_at : bad_at + 1]
        return BadLine(
            line,
            f"column {column} ({name}): byte {byte!r} is not valid UTF-8 (value {_short(fields[column - 1]) if column <= len(fields) else ''}); "
            "the rest of the file is UTF-8",
            fields,
        )
    return _shape_problem(line, fields, header, max_field_bytes)


def _count_outside_quotes(text: bytes, delimiter: str, parity_start: int) -> int:
    inside, count, sep = bool(parity_start), 0, ord(delimiter)
    for byte in text:
        if byte == 34:
            inside = not inside
        elif byte == sep and not inside:
            count += 1
    return count


def _column_at(raw: bytes, offset: int, delimiter: str) -> int:
    """1-based field number holding byte `offset` of a row."""
    inside, column, sep = False, 1, ord(delimiter)
    for byte in raw[:offset]:
        if byte == 34:
            inside = not inside
        elif byte == sep and not inside:
            column += 1
    return column


def _scan_csv(source: Path, header: list[str], delimiter: str) -> pl.LazyFrame:
    import polars as pl

    return pl.scan_csv(
        source,
        has_header=True,
        separator=delimiter,
        quote_char='"',
        infer_schema=False,
        new_columns=header,
        truncate_ragged_lines=True,
        empty_string_is_null=False,
        encoding="utf8-lossy",
        raise_if_empty=False,
    )


def _sink_guess(source: Path, out: Path, header: list[str], delimiter: str, rows: list[int], first: int = 2) -> None:
    """Every row on its own line, none to set aside: `_line` = row + `first` (2: the line, the header
    being line 1; 1: the row number). Appends the rows written to `rows`."""
    import polars as pl

    frame = _scan_csv(source, header, delimiter).with_row_index("__conveyor_row", offset=first)
    line = pl.col("__conveyor_row").cast(pl.Int64).alias(LINE_COLUMN)
    try:
        frame.select(*[pl.col(name) for name in header], line).sink_parquet(out, compression="lz4")
        rows.append(int(pl.scan_parquet(out).select(pl.len()).collect().item()))
    except (pl.exceptions.PolarsError, OSError):
        out.unlink(missing_ok=True)


def _fast_read(
    source: Path, out: Path, header: list[str], layout: _Layout, delimiter: str, max_field_bytes: int
) -> CsvRead | None:
    """The Polars path; None when it cannot vouch for exact line numbers (the caller falls back)."""
    import polars as pl

    bad: list[BadLine] = []
    excluded: list[int] = []
    quoted = sorted(layout.quoted_newlines)
    import bisect

    with source.open("rb") as handle:
        for data_row, start, end in layout.suspects:
            handle.seek(start)
            raw = handle.read(end - start)
            line = 2 + data_row + bisect.bisect_right(quoted, data_row)
            if b"\n" in raw:
                return None  # a quoted newline in a suspect row: let the line-exact reader explain it
            verdict = _explain(raw, line, delimiter, header, max_field_bytes)
            if verdict is None:
                if _count_outside_quotes(raw.rstrip(b"\r"), delimiter, 0) not in (len(header) - 1, len(header)):
                    return None  # stray quotes: the byte pass and the csv module disagree
                continue
            excluded.append(data_row)
            if isinstance(verdict, BadLine):
                bad.append(verdict)
    if layout.rows == 0:
        raise DataError(f"{source}: the file has a header but no data rows")
    row_index = "__conveyor_row"
    lines = pl.Series("q", quoted, dtype=pl.Int64)
    frame = _scan_csv(source, header, delimiter).with_row_index(row_index)
    index = pl.col(row_index).cast(pl.Int64)
    line_of = (index + 2 + pl.lit(lines).search_sorted(index, side="right").cast(pl.Int64)).alias(LINE_COLUMN)
    if excluded:
        frame = frame.filter(~index.is_in(pl.Series(excluded, dtype=pl.Int64).implode()))
    frame = frame.select(*[pl.col(name) for name in header], line_of)
    tmp = out.with_name(out.name + ".part")
    try:
        frame.sink_parquet(tmp, compression="lz4")
        written = pl.scan_parquet(tmp).select(pl.len()).collect().item()
    except (pl.exceptions.PolarsError, OSError):
        tmp.unlink(missing_ok=True)
        return None
    expected = layout.rows - len(excluded)
    if written != expected:
        tmp.unlink(missing_ok=True)
        return None
    tmp.replace(out)
    return CsvRead(header, int(written), bad, "polars", padded=layout.padded)
