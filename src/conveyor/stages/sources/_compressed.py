"""Compressed CSV files: gzip, bzip2, xz and a zip of one CSV are decompressed to a temporary file
before the byte pass; other compressors are refused by name.

Recognised by their first bytes, not by the file name. The snapshot's content hash stays the hash
of the file as stored (the compressed bytes): the unchanged-source check reads no more than before.
Line numbers in messages are lines of the decompressed text.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import IO, Any

from conveyor.core.errors import DataError

__all__ = ["compression", "decompressed", "plain_name"]

_MAGIC = (
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"PK\x03\x04", "zip"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"7z\xbc\xaf\x27\x1c", "7-Zip"),
    (b"\x04\x22\x4d\x18", "lz4"),
)
READ = ("gzip", "bzip2", "xz", "zip")
"""The compressions read; the others are refused by name."""
_CHUNK = 1 << 20
_NOT_A_CSV = "{}, line 1: binary data (a zip archive, e.g. an Excel .xlsx file); export the sheet as CSV first"


def compression(path: Path) -> str | None:
    """The compressor that wrote the file (`gzip`, `zip`, ...), None for a plain file."""
    try:
        with path.open("rb") as handle:
            head = handle.read(8)
    except (FileNotFoundError, IsADirectoryError):
        return None
    return next((name for magic, name in _MAGIC if head.startswith(magic)), None)


def decompressed(path: Path, workdir: Path, name: str | None = None) -> Path:
    """`path` itself when it is not compressed, else its text decompressed into `workdir`.

    `name`: how messages call the file. A DataError names the compressor when it cannot be read.
    """
    import bz2
    import gzip
    import lzma
    import zipfile

    kind = compression(path)
    shown = name or str(path)
    if kind is None:
        return path
    if kind not in READ:
        raise DataError(f"{shown}: compressed with {kind}, which Conveyor does not read; decompress it first "
                        f"(or recompress it with gzip)")
    out = workdir / f"decompressed-{plain_name(path) or 'source.csv'}"
    try:
        if kind == "zip":
            _unzip(path, out, shown)
        else:
            stream: Any
            if kind == "gzip":
                stream = gzip.open(path, "rb")
            elif kind == "bzip2":
                stream = bz2.open(path, "rb")
            else:
                stream = lzma.open(path, "rb")
            with stream as src, out.open("wb") as dst:
                shutil.copyfileobj(src, dst, _CHUNK)
    except zipfile.BadZipFile:
        out.unlink(missing_ok=True)
        raise DataError(_NOT_A_CSV.format(shown)) from None
    except (OSError, EOFError, lzma.LZMAError) as exc:
        out.unlink(missing_ok=True)
        raise DataError(f"{shown}: compressed with {kind}, but it cannot be decompressed ({exc}); "
                        "is the file complete?") from None
    return out


def plain_name(path: Path) -> str:
    """The file's name without its compression suffix: `bike.csv.gz` -> `bike.csv`."""
    name = path.name
    for suffix in (".gz", ".gzip", ".bz2", ".xz", ".zip"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def _unzip(path: Path, out: Path, shown: str) -> None:
    import zipfile

    with zipfile.ZipFile(path) as archive:
        names = [info for info in archive.infolist() if not info.is_dir()]
        if any(info.filename.startswith(("xl/", "[Content_Types].xml")) for info in names):
            raise DataError(_NOT_A_CSV.format(shown))
        if len(names) != 1:
            listed = ", ".join(info.filename for info in names[:5]) + (", ..." if len(names) > 5 else "")
            raise DataError(f"{shown}: compressed with zip, with {len(names)} files in it ({listed}); "
                            "expected one CSV: unzip it and point source.path at the CSV")
        src: IO[bytes]
        with archive.open(names[0]) as src, out.open("wb") as dst:
            shutil.copyfileobj(src, dst, _CHUNK)
