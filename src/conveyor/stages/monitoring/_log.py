"""The prediction log: every served prediction, appended durably, one JSON object per line.

Files are `predictions/YYYY-MM-DD.jsonl` (UTC). Each request's lines are written with one
`write` on a file opened in append mode and flushed before the response is sent, so a
killed server keeps every prediction it answered; a torn last line (power loss mid-write)
is skipped on reading, never fatal.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["PredictionLog"]


class PredictionLog:
    def __init__(self, folder: Path, *, fsync: bool = False) -> None:
        self.folder = folder
        self.fsync = fsync
        self._lock = threading.Lock()

    def append(self, records: list[dict[str, Any]]) -> None:
        """Write records (each with a `timestamp`), one line each, in one append."""
        if not records:
            return
        day = datetime.now(UTC).strftime("%Y-%m-%d")
        self.folder.mkdir(parents=True, exist_ok=True)
        payload = "".join(json.dumps(r, separators=(",", ":"), default=str) + "\n" for r in records)
        with self._lock, (self.folder / f"{day}.jsonl").open("a", encoding="utf-8") as handle:
            handle.write(payload)
            handle.flush()
            if self.fsync:
                os.fsync(handle.fileno())

    def read(self, last: int | None = None) -> list[dict[str, Any]]:
        """Every logged prediction in time order (or the `last` N)."""
        records = list(self._iter())
        return records[-last:] if last else records

    def _iter(self) -> Iterator[dict[str, Any]]:
        if not self.folder.is_dir():
            return
        for path in sorted(self.folder.glob("*.jsonl")):
            with path.open(encoding="utf-8") as handle:
                for line in handle:
                    if not line.endswith("\n"):
                        break  # a torn final line
                    try:
                        yield json.loads(line)
                    except json.JSONDecodeError:
                        continue

    def count(self) -> int:
        return sum(1 for _ in self._iter())
