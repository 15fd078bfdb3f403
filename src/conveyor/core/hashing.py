"""Content hashes: the identity of every artifact and of every stage's inputs."""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import Any

__all__ = ["hash_file", "hash_json", "short"]

def hash_file(path: Path) -> str:
    """SHA-256 of a file's bytes, read in chunks; read once per process while the file is unchanged."""
    stat = path.stat()
    return _hash_file(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _hash_file(path: str, size: int, mtime_ns: int) -> str:
    del size, mtime_ns  # part of the cache key only: a changed file is hashed again
    with open(path, "rb") as handle:  # file_digest reads into one reused buffer: no new pages per chunk
        return hashlib.file_digest(handle, "sha256").hexdigest()


def hash_json(value: Any) -> str:
    """SHA-256 of a JSON-serialisable value, independent of key order."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def short(digest: str) -> str:
    """The 16-character prefix used in file names."""
    return digest[:16]
