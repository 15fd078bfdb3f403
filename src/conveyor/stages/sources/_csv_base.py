"""What the CSV readers share: the line column, the bad-line record, the read's result, block size."""

from __future__ import annotations

import codecs
from dataclasses import dataclass, field

from conveyor.core.errors import DataError

LINE_COLUMN = "_line"
"""Column of every snapshot: the 1-based line of the source file where the row starts."""


_SNIFF_BYTES = 64 * 1024
_BLOCK = 16 << 20


_SHOW = 60


def _codec(encoding: str) -> str:
    try:
        return codecs.lookup(encoding).name
    except LookupError:
        raise DataError(f"source.encoding: {encoding!r} is not a text encoding Python knows") from None


def _short(value: str, limit: int = _SHOW) -> str:
    text = value if len(value) <= limit else value[: limit - 3] + "..."
    return repr(text)


@dataclass(frozen=True)
class BadLine:
    """A row that cannot be read as a row of the header's columns: wrong field count, bad bytes."""

    line: int
    reason: str
    fields: list[str]
    object: str | None = None
    """The object it was read from, for a source of several (`s3://bucket/prefix/part-1.csv`)."""
    file: str | None = None
    """The part of a source of several files (`engine: spark`) the row is in; None for one file."""


@dataclass
class CsvRead:
    """What reading a CSV into a snapshot found."""

    header: list[str]
    rows: int
    """Rows written to the snapshot."""
    bad: list[BadLine] = field(default_factory=list)
    """Rows set aside (ragged, bad bytes, overlong fields), in line order."""
    reader: str = "polars"
    """Which reader produced the snapshot: `polars` (fast path) or `python` (line-exact)."""
    notes: list[str] = field(default_factory=list)
    padded: bool = True
    """Some value may have whitespace around it (False only when the byte pass found none)."""


def _shape_problem(line: int, fields: list[str], header: list[str], max_field_bytes: int) -> BadLine | None:
    """A row whose field count differs from the header's, or with a field over `source.max_field_bytes`."""
    if len(fields) != len(header):
        return BadLine(line, f"{len(fields)} fields, the header has {len(header)}", fields)
    for column, value in enumerate(fields, start=1):
        size = len(value.encode("utf-8", errors="surrogateescape"))
        if size > max_field_bytes:
            return BadLine(
                line,
                f"column {column} ({header[column - 1]}): a field of {size} bytes is longer than "
                f"source.max_field_bytes ({max_field_bytes}); an unclosed quote?",
                [_short(v, 200) for v in fields],
            )
    return None
