"""Reading a CSV as people download it: sniffed delimiter, blanks, ragged rows, bad bytes."""

from __future__ import annotations

import codecs
import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from conveyor.core.errors import DataError

if TYPE_CHECKING:
    import polars as pl

__all__ = ["LINE_COLUMN", "RaggedRow", "ScannedCsv", "describe_ragged", "scan_csv", "sniff_delimiter", "sniff_encoding"]

LINE_COLUMN = "_line"
"""Column of every snapshot: the 1-based line of the source file where the row starts."""

_CANDIDATES = ",;\t|"
_SNIFF_BYTES = 64 * 1024


@dataclass(frozen=True)
class RaggedRow:
    line: int
    fields: int
    values: list[str]


@dataclass
class ScannedCsv:
    header: list[str]
    rows: list[list[str]]
    lines: list[int]
    ragged: list[RaggedRow] = field(default_factory=list)

    def frame(self) -> pl.DataFrame:
        """All values as strings (nothing lost), plus the source line of each row."""
        import polars as pl

        columns = {name: [row[i] for row in self.rows] for i, name in enumerate(self.header)}
        frame = pl.DataFrame(columns, schema={name: pl.String for name in self.header})
        return frame.with_columns(pl.Series(LINE_COLUMN, self.lines, dtype=pl.Int64))


def _check_readable(path: Path, encoding: str) -> bytes:
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if path.is_dir():
        raise DataError(f"{path}: is a folder, expected a CSV file")
    with path.open("rb") as handle:
        head = handle.read(_SNIFF_BYTES)
    if not head.strip():
        raise DataError(f"{path}: the file is empty; expected a header line and data rows")
    if b"\x00" in head:
        offset = head.index(b"\x00")
        line = head[:offset].count(b"\n") + 1
        raise DataError(
            f"{path}, line {line}: binary data (a NUL byte at byte {offset}); "
            "is this really a CSV file? (Parquet and Excel files need converting first)"
        )
    try:
        head.decode(encoding)
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a multi-byte character cut at the boundary
            line = head[: exc.start].count(b"\n") + 1
            raise DataError(
                f"{path}, line {line}: not valid {encoding} text at byte {exc.start}; "
                "set source.encoding (utf-8, utf-8-sig or latin-1) in conveyor.yaml"
            ) from None
    return head


def sniff_encoding(path: Path) -> str:
    """utf-8-sig when the file starts with a byte-order mark, utf-8 when it decodes, else latin-1."""
    with path.open("rb") as handle:
        if handle.read(3) == b"\xef\xbb\xbf":
            return "utf-8-sig"
        handle.seek(0)
        decoder = codecs.getincrementaldecoder("utf-8")()
        try:
            for block in iter(lambda: handle.read(1 << 20), b""):
                decoder.decode(block)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return "latin-1"
    return "utf-8"


def sniff_delimiter(path: Path, encoding: str = "utf-8") -> str:
    """The delimiter of a CSV: the candidate that splits the first lines most consistently."""
    head = _check_readable(path, encoding).decode(encoding, errors="ignore")
    lines = [line for line in head.splitlines()[:50] if line.strip()]
    if len(lines) > 1 and not head.endswith("\n"):
        lines = lines[:-1]  # the last line may be cut by the sniffing window
    best, best_score = ",", -1
    for candidate in _CANDIDATES:
        counts = [len(next(csv.reader([line], delimiter=candidate))) for line in lines]
        if counts[0] < 2:
            continue
        score = sum(count == counts[0] for count in counts) * counts[0]
        if score > best_score:
            best, best_score = candidate, score
    return best


def scan_csv(path: Path, *, delimiter: str, encoding: str = "utf-8") -> ScannedCsv:
    """Parse a whole CSV, recording the source line of each row and every ragged row.

    Rows whose field count differs from the header's are collected, not dropped, so the
    caller can stop with their line numbers or quarantine them.
    """
    _check_readable(path, encoding)
    with path.open(newline="", encoding=encoding) as handle:
        reader = csv.reader(handle, delimiter=delimiter, strict=True)
        try:
            header = next(reader)
        except StopIteration:
            raise DataError(f"{path}: the file is empty") from None
        except (csv.Error, UnicodeDecodeError) as exc:
            raise DataError(f"{path}, line 1: cannot read the header: {exc}") from None
        header = [name.strip() for name in header]
        if header and header[0].startswith("\ufeff"):  # a byte-order mark read as utf-8
            header[0] = header[0].removeprefix("\ufeff").strip()
        _check_header(path, header)
        width = len(header)
        rows: list[list[str]] = []
        lines: list[int] = []
        ragged: list[RaggedRow] = []
        start = reader.line_num + 1
        try:
            for record in reader:
                if not record:  # a blank line
                    start = reader.line_num + 1
                    continue
                if len(record) == width:
                    rows.append(record)
                    lines.append(start)
                else:
                    ragged.append(RaggedRow(start, len(record), record))
                start = reader.line_num + 1
        except csv.Error as exc:
            raise DataError(f"{path}, line {reader.line_num}: malformed CSV: {exc}") from None
        except UnicodeDecodeError as exc:
            raise DataError(
                f"{path}, after line {reader.line_num}: not valid {encoding} text ({exc.reason}); "
                "set source.encoding in conveyor.yaml"
            ) from None
    if not rows and not ragged:
        raise DataError(f"{path}: the file has a header but no data rows")
    return ScannedCsv(header, rows, lines, ragged)


def _check_header(path: Path, header: list[str]) -> None:
    if len(header) < 2:
        raise DataError(
            f"{path}, line 1: the header has {len(header)} column(s) ({header!r}); "
            "is the delimiter right? set source.delimiter in conveyor.yaml"
        )
    seen: set[str] = set()
    for index, name in enumerate(header, start=1):
        if not name:
            raise DataError(f"{path}, line 1, column {index}: the header has an empty column name")
        if name in seen:
            raise DataError(f"{path}, line 1, column {index}: the column name {name!r} is repeated")
        if name.startswith("_"):
            raise DataError(
                f"{path}, line 1, column {index}: column names starting with '_' are reserved "
                f"({name!r}); rename the column"
            )
        seen.add(name)


def describe_ragged(path: Path, ragged: list[RaggedRow], width: int, limit: int = 5) -> str:
    shown = ", ".join(f"line {r.line} has {r.fields} fields" for r in ragged[:limit])
    more = f" (and {len(ragged) - limit} more)" if len(ragged) > limit else ""
    return (
        f"{path}: {len(ragged)} row(s) do not have the header's {width} fields: {shown}{more}. "
        "Fix the file, or set source.on_bad_lines: quarantine in conveyor.yaml"
    )
