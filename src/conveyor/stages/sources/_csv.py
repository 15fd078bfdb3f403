"""Reading a CSV as people download it: encodings, delimiters, blanks, ragged rows, bad bytes.

Two readers give the same snapshot, all values as text plus the source line of every row:

- the fast path: one vectorised pass over the bytes (numpy) finds the row boundaries, the
  lines inside quoted fields, blank lines, ragged rows, bad bytes and overlong rows; Polars
  then parses the file in streaming mode straight to Parquet, and the line of each row is
  computed from the few quoted newlines found by the pass;
- the line-exact reader (Python's `csv` module, in batches): used to explain the rows the
  fast path sets aside, and for the whole file when the two would not agree (stray quotes,
  an unterminated quote, a Polars error), so line numbers are always exact.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.core.errors import DataError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import polars as pl

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

LINE_COLUMN = "_line"
"""Column of every snapshot: the 1-based line of the source file where the row starts."""

_CANDIDATES = ",;\t|"
_SNIFF_BYTES = 64 * 1024
_BLOCK = 16 << 20
_BATCH = 50_000
_SHOW = 60
_UTF8 = {"utf-8", "utf-8-sig"}


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


# --------------------------------------------------------------------------- sniffing


def check_readable(path: Path) -> bytes:
    """The first bytes of a file that could be a CSV; a DataError naming the file otherwise."""
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if path.is_dir():
        raise DataError(f"{path}: is a folder, expected a CSV file")
    with path.open("rb") as handle:
        head = handle.read(_SNIFF_BYTES)
    if head.startswith(b"PAR1"):
        raise DataError(f"{path}: this is a Parquet file, not a CSV; set source.kind: parquet in conveyor.yaml")
    if head.startswith(b"PK\x03\x04"):
        raise DataError(
            f"{path}, line 1: binary data (a zip archive, e.g. an Excel .xlsx file); "
            "export the sheet as CSV first"
        )
    if _utf16_bom(head) is None and not head.strip():
        raise DataError(f"{path}: the file is empty; expected a header line and data rows")
    if _utf16_bom(head) is None and b"\x00" in head:
        offset = head.index(b"\x00")
        line = head[:offset].count(b"\n") + 1
        raise DataError(
            f"{path}, line {line}: binary data (a NUL byte at byte {offset}); "
            "is this really a CSV file? (Excel files need exporting as CSV first)"
        )
    return head


def _utf16_bom(head: bytes) -> str | None:
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16"
    return None


def _bad_utf8_lines(path: Path, limit: int = 1000) -> tuple[list[int], int]:
    """Lines (1-based) that are not valid UTF-8 (up to `limit`), and lines that are non-ASCII UTF-8."""
    bad: list[int] = []
    good_non_ascii = 0
    line_base = 1
    for block in _line_blocks(path):
        try:
            block.decode("utf-8")
            if not block.isascii():
                good_non_ascii += 1
        except UnicodeDecodeError:
            for number, line in enumerate(block.split(b"\n"), start=line_base):
                if line.isascii():
                    continue
                try:
                    line.decode("utf-8")
                    good_non_ascii += 1
                except UnicodeDecodeError:
                    if len(bad) < limit:
                        bad.append(number)
        line_base += block.count(b"\n")
    return bad, good_non_ascii


def _line_blocks(path: Path, size: int = _BLOCK) -> Iterator[bytes]:
    """The file in blocks that end just after a newline (the last one may not)."""
    with path.open("rb") as handle:
        rest = b""
        while True:
            chunk = handle.read(size)
            if not chunk:
                if rest:
                    yield rest
                return
            data = rest + chunk
            cut = data.rfind(b"\n") + 1
            if cut == 0:
                rest = data
                continue
            yield data[:cut]
            rest = data[cut:]


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


def sniff_encoding(path: Path) -> str:
    """The file's text encoding, judged over the whole file.

    A byte-order mark decides (`utf-8-sig`, `utf-16`). A file that is valid UTF-8, or
    UTF-8 but for a few lines (those lines are set aside at ingest), is `utf-8`. Otherwise
    charset-normalizer names the legacy encoding (cp1252, latin-1, ...).
    """
    head = check_readable(path)
    if head.startswith(b"\xef\xbb\xbf"):
        return "utf-8-sig"
    bom16 = _utf16_bom(head)
    if bom16:
        return bom16
    bad, good_non_ascii = _bad_utf8_lines(path)
    if not bad or good_non_ascii >= len(bad):
        return "utf-8"
    return _legacy_encoding(path)


_WESTERN = frozenset(
    "ÀÁÂÃÄÅÆÇÈÉÊËÌÍÎÏÐÑÒÓÔÕÖØÙÚÛÜÝÞßàáâãäåæçèéêëìíîïðñòóôõöøùúûüýþÿŒœŠšŽžŸƒ"
    "€£°©®™–—‘’‚“”„•…§¶µ¿¡«»¼½¾¢¥×÷±·\xa0"
)
"""What cp1252 text in a Western language is made of beyond ASCII: its letters and common symbols."""


def _non_ascii_sample(path: Path, limit: int = 256 * 1024) -> bytes:
    sample = bytearray()
    for block in _line_blocks(path):
        for line in block.split(b"\n"):
            if not line.isascii():
                sample += line + b"\n"
                if len(sample) > limit:
                    return bytes(sample)
    return bytes(sample)


def _plausible_cp1252(sample: bytes) -> bool:
    """The bytes read as cp1252 give only Western letters and common symbols (no `³` in `Bia³ystok`)."""
    try:
        text = sample.decode("cp1252")
    except UnicodeDecodeError:
        return False
    return all(ch in _WESTERN for ch in text if ord(ch) > 127)


def _legacy_encoding(path: Path) -> str:
    """A legacy code page: cp1252 when its reading is plausible Western text, else charset-normalizer's guess.

    cp1252 (Windows Western, what Excel writes on most machines) comes first: on a file of names
    charset-normalizer's language fit is close to a coin toss between code pages (Western names
    among many ASCII words scored cp1250 or cp1257 above cp1252, turning `Åre` into `Ĺre`). Text
    that cp1252 cannot read as Western letters (Polish `ł`, `ą` become `³`, `¹`) goes to the
    detector. `init` shows words as read, so a wrong guess is seen before anything runs.
    """
    from charset_normalizer import from_bytes

    sample = _non_ascii_sample(path)
    if _plausible_cp1252(sample) and _decodes(path, "cp1252"):
        return "cp1252"
    matches = from_bytes(sample)
    ranked = sorted(matches, key=lambda m: (m.chaos, -m.coherence))
    for match in ranked:
        guess = _codec(match.encoding)
        if guess.startswith("utf") or guess == "cp1252":
            continue
        if _decodes(path, guess):
            return "latin-1" if guess == "iso8859-1" else guess
    return "cp1252" if _decodes(path, "cp1252") else "latin-1"  # every byte is a latin-1 character


def non_ascii_words(path: Path, encoding: str, limit: int = 5) -> list[str]:
    """A few distinct words with non-ASCII letters, as `encoding` reads them: for `init` to show."""
    import re

    text = _non_ascii_sample(path, 64 * 1024).decode(_codec(encoding), errors="replace")
    words: list[str] = []
    for word in re.findall(r"[^\s,;|\t\"']*[^\x00-\x7f][^\s,;|\t\"']*", text):
        if word not in words:
            words.append(word[:30])
        if len(words) == limit:
            break
    return words


def _decodes(path: Path, encoding: str) -> bool:
    decoder = codecs.getincrementaldecoder(encoding)()
    try:
        for block in _line_blocks(path):
            decoder.decode(block)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def _head_text(path: Path, encoding: str) -> str:
    head = check_readable(path)
    text = head.decode(_codec(encoding), errors="replace")
    if text.startswith("\ufeff"):
        text = text[1:]
    if "\r" in text and "\n" not in text:
        text = text.replace("\r", "\n")
    return text


def sniff_delimiter(path: Path, encoding: str = "utf-8") -> str:
    """The delimiter of a CSV: the candidate that splits the first lines most consistently."""
    head = _head_text(path, encoding)
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


def read_header(path: Path, *, delimiter: str, encoding: str) -> list[str]:
    """The column names of line 1: trimmed, a byte-order mark removed, empty names named by position."""
    head = _head_text(path, encoding)
    try:
        first = next(csv.reader(io.StringIO(head), delimiter=delimiter))
    except (StopIteration, csv.Error) as exc:
        raise DataError(f"{path}, line 1: cannot read the header: {exc}") from None
    header = [name.strip() for name in first]
    if header and header[0].startswith("\ufeff"):
        header[0] = header[0].removeprefix("\ufeff").strip()
    header = [name or f"column_{index}" for index, name in enumerate(header, start=1)]
    _check_header(path, header, delimiter)
    return header


def _check_header(path: Path, header: list[str], delimiter: str) -> None:
    if len(header) < 2:
        shown = {"\t": "tab"}.get(delimiter, repr(delimiter))
        raise DataError(
            f"{path}, line 1: the header has {len(header)} column(s) ({header!r}) when split at {shown}; "
            "is the delimiter right? set source.delimiter in conveyor.yaml"
        )
    seen: dict[str, int] = {}
    for index, name in enumerate(header, start=1):
        if name in seen:
            raise DataError(
                f"{path}, line 1, column {index}: the column name {name!r} is repeated "
                f"(also column {seen[name]}); rename one of them"
            )
        if name.startswith("_"):
            raise DataError(
                f"{path}, line 1, column {index}: column names starting with '_' are reserved "
                f"({name!r}); rename the column"
            )
        seen[name] = index


# --------------------------------------------------------------------------- text as UTF-8


def _utf8_source(path: Path, encoding: str, workdir: Path) -> Path:
    """The file itself when it is UTF-8 with \\n line ends, else a UTF-8 copy (same lines) in `workdir`.

    Bytes that are not valid UTF-8 in a UTF-8 file are kept (surrogate escapes), so the
    readers can set their lines aside with their real line numbers.
    """
    codec = _codec(encoding)
    with path.open("rb") as handle:
        head = handle.read(_SNIFF_BYTES)
    cr_only = b"\r" in head and b"\n" not in head
    if codec in _UTF8 and not cr_only:
        return path
    out = workdir / "source-utf8.csv"
    errors = "surrogateescape" if codec in _UTF8 else "strict"
    decoder = codecs.getincrementaldecoder(codec)(errors=errors)
    lines_done = 1
    with out.open("w", encoding="utf-8", errors="surrogateescape", newline="") as sink:
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(_BLOCK), b""):
                try:
                    text = decoder.decode(block)
                except UnicodeDecodeError as exc:
                    line = lines_done + _decoded_newlines(block[: exc.start], codec)
                    raise DataError(
                        f"{path}, line {line}: byte {exc.object[exc.start:exc.start + 1]!r} is not valid "
                        f"{encoding} text; set source.encoding in conveyor.yaml (`conveyor init` detects it)"
                    ) from None
                if cr_only:
                    text = text.replace("\r\n", "\n").replace("\r", "\n")
                lines_done += text.count("\n")
                sink.write(text)
            sink.write(decoder.decode(b"", final=True))
    return out


def _decoded_newlines(prefix: bytes, codec: str) -> int:
    return prefix.decode(codec, errors="replace").count("\n")


# --------------------------------------------------------------------------- the fast pass


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


# --------------------------------------------------------------------------- explaining rows


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
