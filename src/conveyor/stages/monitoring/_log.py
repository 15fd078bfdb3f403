"""The prediction log: every served prediction, appended durably, one JSON object per line.

Files are `predictions/YYYY-MM-DD.jsonl` (UTC). Each line is `PredictionRecord.to_json()`:
standard JSON (no NaN or Infinity). Each request's lines are written with one `write` on a
file opened in append mode and flushed before the response is sent, so a killed server keeps
every prediction it answered.

A torn last line (power loss or a full disk mid-write) is skipped on reading, never fatal.
Before its first append to a file, a log checks that the file ends with a newline and, if
not, terminates the torn line first, so the next record starts on a line of its own instead
of being glued to the torn one (and lost with it).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from conveyor.core.records import PredictionRecord

__all__ = ["PredictionLog"]


class PredictionLog:
    def __init__(self, folder: Path, *, fsync: bool = False) -> None:
        self.folder = folder
        self.fsync = fsync
        self._lock = threading.Lock()
        self._checked: set[Path] = set()  # files whose tail this log has checked (or written)

    def append(self, records: Sequence[PredictionRecord]) -> None:
        """Write records, one line each, in one append; ValueError (nothing written) if one is not JSON."""
        if not records:
            return
        payload = "".join(r.to_json() + "\n" for r in records).encode("utf-8")
        path = self.folder / f"{datetime.now(UTC).strftime('%Y-%m-%d')}.jsonl"
        with self._lock:
            if path not in self._checked:
                self.folder.mkdir(parents=True, exist_ok=True)
                if _torn(path):
                    payload = b"\n" + payload  # end the torn line; it stays unreadable, the new ones do not
                self._checked.add(path)
            with path.open("ab") as handle:
                handle.write(payload)
                handle.flush()
                if self.fsync:
                    os.fsync(handle.fileno())

    def records(self, last: int | None = None) -> list[PredictionRecord]:
        """Every logged prediction in time order (or the `last` N), typed; malformed lines are skipped."""
        records: list[PredictionRecord] = []
        for data in self._iter():
            try:
                records.append(PredictionRecord.from_dict(data))
            except (ValueError, TypeError):
                continue
        return records[-last:] if last else records

    def read(self, last: int | None = None) -> list[dict[str, Any]]:
        """Every logged prediction in time order (or the `last` N), as the JSON objects of the lines."""
        records = list(self._iter())
        return records[-last:] if last else records

    def count(self) -> int:
        return sum(1 for _ in self._iter())

    def find(self, request_id: str) -> PredictionRecord | None:
        """The logged prediction with this request id (a scan of the log), or None."""
        for data in self._iter():
            if data.get("request_id") == request_id:
                try:
                    return PredictionRecord.from_dict(data)
                except (ValueError, TypeError):
                    return None
        return None

    def _iter(self) -> Iterator[dict[str, Any]]:
        if not self.folder.is_dir():
            return
        for path in sorted(self.folder.glob("*.jsonl")):
            with path.open(encoding="utf-8", errors="replace") as handle:
                for line in handle:
                    if not line.endswith("\n"):
                        break  # a torn final line
                    try:
                        data = json.loads(line)
                    except json.JSONDecodeError:
                        continue  # a torn line that a later append terminated
                    if isinstance(data, dict):
                        yield data


def _torn(path: Path) -> bool:
    """True when the file exists, is not empty, and its last byte is not a newline."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            if handle.tell() == 0:
                return False
            handle.seek(-1, os.SEEK_END)
            return handle.read(1) != b"\n"
    except FileNotFoundError:
        return False
