"""Transcoding a CSV that is not UTF-8 to a UTF-8 copy that Polars reads, keeping its lines."""

from __future__ import annotations

import codecs
from pathlib import Path

from conveyor.core.errors import DataError
from conveyor.stages.sources._csv_base import _BLOCK, _SNIFF_BYTES, _codec

_UTF8 = {"utf-8", "utf-8-sig"}


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
