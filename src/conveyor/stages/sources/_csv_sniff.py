"""Sniffing a CSV before reading it: is it text, its encoding, its delimiter and its header."""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterator
from pathlib import Path

from conveyor.core.errors import DataError
from conveyor.stages.sources._csv_base import _BLOCK, _SNIFF_BYTES, _codec

_CANDIDATES = ",;\t|"


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
