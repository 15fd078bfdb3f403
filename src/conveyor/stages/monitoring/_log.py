"""The prediction log: every served prediction, appended durably, one JSON object per line.

Files are `predictions/YYYY-MM-DD.jsonl` (UTC day), shared by every worker process, or
segments `YYYY-MM-DD.<writer>.jsonl` for a log opened with a `writer` name (one file per
writer); a day's files are read merged in time order. Each line is `PredictionRecord.to_json()`'s object:
standard JSON (no NaN or Infinity).

Durability: a batch of records (one request, or every request of a micro-batch: a group
commit) is one `os.write` on a descriptor opened with `O_APPEND`, issued before any of its
answers is sent. The bytes are in the kernel once `write` returns, so `kill -9` of the server
loses no acknowledged prediction; `fsync=True` also survives power loss. Several processes
may share a segment safely: an `O_APPEND` write lands whole at the end.

A torn last line (power loss or a full disk mid-write) is skipped on reading, never fatal.
A batch that fails mid-write (a full disk) is cut off again, so none of its unanswered records is read.
Before its first append to a file, a log checks that the file ends with a newline and, if
not, terminates the torn line first, so the next record starts on a line of its own.

Reading a window (`last=N`) reads segments backwards from their ends, newest day first, and
parses only the lines it returns: the cost follows N, not the size of the history.
"""

from __future__ import annotations

import heapq
import math
import os
import re
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic_core import from_json, to_json

from conveyor.core.progress import report
from conveyor.core.records import PredictionBatch, PredictionRecord

__all__ = ["PredictionLog"]

_SEGMENT = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:\.([A-Za-z0-9_-]+))?\.jsonl$")
_BLOCK = 1 << 20


class PredictionLog:
    def __init__(self, folder: Path, *, fsync: bool = False, writer: str | None = None) -> None:
        self.folder = folder
        self.fsync = fsync
        self._suffix = f".{writer}" if writer else ""
        self._lock = threading.Lock()
        self._fds: dict[Path, tuple[int, int]] = {}  # path -> (pid that opened it, descriptor)
        self.unreadable: list[tuple[Path, int]] = []
        """The lines the last `read` could not parse (a torn line, a stray edit): file and line number."""

    def segment(self, day: str | None = None) -> Path:
        """This writer's segment of `day` (default: today, UTC)."""
        day = day or datetime.now(UTC).strftime("%Y-%m-%d")
        return self.folder / f"{day}{self._suffix}.jsonl"

    def append(self, records: Sequence[PredictionRecord]) -> None:
        """Write records, one line each, in one append; ValueError (nothing written) if one is not JSON."""
        if not records:
            return
        if isinstance(records, PredictionBatch):  # by column: no record object per row
            payload = _columns_lines(records)
        else:
            stamps: dict[int, str] = {}  # a batch's records share one timestamp object: format it once
            payload = _batch_lines(records, stamps) or b"".join(_line(r, stamps) for r in records)
        path = self.segment()
        with self._lock:
            fd = self._descriptor(path)
            if fd < 0:
                fd, payload = -fd - 1, b"\n" + payload  # end a torn line; it stays unreadable, new ones do not
            view = memoryview(payload)
            try:
                while view:  # one write in practice; a partial write (a full disk, a signal) continues
                    view = view[os.write(fd, view):]
                if self.fsync:
                    os.fsync(fd)
            except OSError:
                _undo(fd, len(payload) - len(view))
                self._fds.pop(path, None)  # reopened by the next append, which ends a torn line left behind
                os.close(fd)
                raise

    def _descriptor(self, path: Path) -> int:
        """The open descriptor of `path`; `-fd - 1` the first time, when its last line was torn."""
        opened = self._fds.get(path)
        if opened is not None and opened[0] == os.getpid():
            return opened[1]
        if len(self._fds) > 4:  # yesterday's segments
            for _, old in self._fds.values():
                try:
                    os.close(old)
                except OSError:
                    pass
            self._fds.clear()
        self.folder.mkdir(parents=True, exist_ok=True)
        torn = _torn(path)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        self._fds[path] = (os.getpid(), fd)
        return -fd - 1 if torn else fd

    def close(self) -> None:
        with self._lock:
            for pid, fd in self._fds.values():
                if pid == os.getpid():
                    os.close(fd)
            self._fds.clear()

    def records(self, last: int | None = None) -> list[PredictionRecord]:
        """Every logged prediction in time order (or the `last` N), typed; malformed lines are skipped."""
        records: list[PredictionRecord] = []
        for data in self.read(last):
            try:
                records.append(PredictionRecord.from_dict(data))
            except (ValueError, TypeError):
                continue
        return records[-last:] if last else records

    def read(self, last: int | None = None) -> list[dict[str, Any]]:
        """Every logged prediction in time order (or the `last` N), as the JSON objects of the lines.

        Lines that are not a JSON object are left out and listed in `unreadable` (of the part read)."""
        self.unreadable = []
        if not last:
            return list(self._iter())
        found: list[dict[str, Any]] = []
        days = self._days()
        for done, day_paths in enumerate(reversed(days)):
            report("prediction log: days read", done, len(days))
            wanted = last - len(found)
            tails = [_tail(path, wanted, self.unreadable) for path in day_paths]
            day = _merge(tails)
            found[:0] = day[-wanted:]
            if len(found) >= last:
                break
        return found

    def count(self) -> int:
        total = 0
        for paths in self._days():
            for path in paths:
                with path.open("rb") as handle:
                    while block := handle.read(_BLOCK):
                        total += block.count(b"\n")
        return total

    def find(self, request_id: str) -> PredictionRecord | None:
        """The logged prediction with this request id (a scan of the log, newest first), or None."""
        needle = f'"request_id":"{request_id}"'.encode()
        for paths in reversed(self._days()):
            for path in paths:
                for line in _lines(path):
                    if needle in line:
                        data = _parse(line)
                        if data is not None and data.get("request_id") == request_id:
                            try:
                                return PredictionRecord.from_dict(data)
                            except (ValueError, TypeError):
                                return None
        return None

    def _days(self) -> list[list[Path]]:
        """The segments, grouped by day, oldest day first."""
        if not self.folder.is_dir():
            return []
        days: dict[str, list[Path]] = {}
        for path in self.folder.iterdir():
            match = _SEGMENT.match(path.name)
            if match and path.is_file():
                days.setdefault(match.group(1), []).append(path)
        return [sorted(days[day]) for day in sorted(days)]

    def _iter(self) -> Iterator[dict[str, Any]]:
        days = self._days()
        for done, paths in enumerate(days):
            report("prediction log: days read", done, len(days))
            if len(paths) == 1:
                yield from _objects(paths[0], self.unreadable)
            else:
                yield from _merge([list(_objects(p, self.unreadable)) for p in paths])


def _batch_lines(records: Sequence[PredictionRecord], stamps: dict[int, str]) -> bytes | None:
    """Every record's line from one serialization of the whole batch (in Rust), or None to go line by line.

    The batch is one JSON array of the records' objects; its elements are split at `},{`, which
    is safe when that sequence occurs exactly once per boundary (each object holds one nested
    object, `inputs`, of plain values: `}},{` ends one and starts the next). A text value that
    holds `},{`, NaN or Infinity sends the batch down the line-by-line path, which checks each.
    """
    data = [_object(record, stamps) for record in records]
    payload = to_json(data, fallback=_plain, inf_nan_mode="constants")
    if b"NaN" in payload or b"Infinity" in payload or payload.count(b"},{") != len(data) - 1:
        return None
    return payload[1:-1].replace(b"},{", b"}\n{") + b"\n"


def _columns_lines(batch: PredictionBatch) -> bytes:
    """Every line of a batch given by column, serialized by orjson (one call per line, in C).

    orjson writes a NaN as null, so standard JSON is checked before, on the columns: the
    predictions, the probabilities and each input column (a ValueError, nothing written, as
    `_line` gives)."""
    import orjson

    columns: list[tuple[str, Sequence[Any]]] = [("prediction", batch.predictions), *batch.input_columns()]
    if batch.probabilities is not None:
        columns.append(("probability", batch.probabilities))
    bad = _not_finite(columns)
    if bad is not None:
        raise ValueError(f"a value of {bad!r} is not JSON compliant (NaN or infinity); the batch was not logged")
    objects = batch.objects()
    # one call for the whole batch, split between the objects: `},{"request_id":"` occurs only there (a quote
    # inside a text value is escaped, and only `inputs` and `warnings` nest, one level, holding plain values)
    payload = orjson.dumps(objects, default=_plain, option=orjson.OPT_SERIALIZE_NUMPY)
    if payload.count(_BETWEEN) == len(objects) - 1:
        return payload[1:-1].replace(_BETWEEN, _BETWEEN_LINES) + b"\n"
    option = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_APPEND_NEWLINE  # not expected: line by line, to be sure
    return b"".join([orjson.dumps(data, default=_plain, option=option) for data in objects])


_BETWEEN = b'},{"request_id":"'
_BETWEEN_LINES = b'}\n{"request_id":"'


_FEW = 16
"""Columns of at most this many values are checked in Python: a NumPy array costs more for a row or two."""


def _not_finite(columns: list[tuple[str, Sequence[Any]]]) -> str | None:
    """The name of a column holding a float NaN or infinity, else None; the columns of plain numbers are
    checked together, in one NumPy conversion (None counts as neither)."""
    numbers: list[Sequence[Any]] = []
    for name, values in columns:
        kinds = set(map(type, values))
        if float not in kinds and not kinds - {int, str, bool, type(None)}:
            continue  # no float of any kind: nothing to check
        if kinds <= {float, int, type(None)} and len(values) > _FEW and (numbers == [] or len(values) == len(numbers[0])):
            numbers.append(values)
        elif any(isinstance(v, float) and not math.isfinite(v) for v in values):
            return name
    if numbers:
        import numpy as np

        matrix = np.array(numbers, dtype=np.float64)  # None -> NaN: counted back where there is one
        if np.isinf(matrix).any() or any(
            nans and numbers[row].count(None) != nans for row, nans in enumerate(np.isnan(matrix).sum(axis=1).tolist())
        ):
            for name, values in columns:  # which one, for the message
                if any(isinstance(v, float) and not math.isfinite(v) for v in values):
                    return name
    return None


def _object(record: PredictionRecord, stamps: dict[int, str]) -> dict[str, Any]:
    stamp = stamps.get(id(record.timestamp))
    if stamp is None:
        stamp = stamps[id(record.timestamp)] = record.timestamp.isoformat()
    data: dict[str, Any] = {"request_id": record.request_id, "prediction": record.prediction}
    if record.probability is not None:
        data["probability"] = record.probability
    if record.entity is not None:
        data["entity"] = record.entity
    if record.warnings:
        data["warnings"] = dict(record.warnings)
    data["timestamp"] = stamp
    data["model"] = record.model
    data["model_version"] = record.model_version
    data["source"] = record.source
    data["inputs"] = record.inputs if isinstance(record.inputs, dict) else dict(record.inputs)
    return data


def _line(record: PredictionRecord, stamps: dict[int, str]) -> bytes:
    """`record.to_json()` + newline (the same object, keys in the same order, serialized in Rust).

    ValueError for a NaN or an infinity: the log holds standard JSON only.
    """
    data = _object(record, stamps)
    # NaN and infinities written as JS constants, then looked for in the bytes: no Python pass over
    # every value of every row (a 100-row batch spent more time in that loop than in serializing)
    line = to_json(data, fallback=_plain, inf_nan_mode="constants")
    if b"NaN" in line or b"Infinity" in line:  # maybe only inside a string: look at the values
        for value in (record.prediction, record.probability, *record.inputs.values()):
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"{value} is not JSON compliant; prediction {record.request_id} was not logged")
    return line + b"\n"


def _plain(value: Any) -> Any:
    """What pydantic does not know: numpy scalars by `.item()`, anything else as text."""
    item = getattr(value, "item", None)
    return item() if callable(item) else str(value)


def _parse(line: bytes) -> dict[str, Any] | None:
    try:
        data = from_json(line)
    except ValueError:
        return None  # a torn line that a later append terminated
    return data if isinstance(data, dict) else None


def _lines(path: Path) -> Iterator[bytes]:
    """Complete lines of a segment, oldest first; a torn final line (no newline) is left out."""
    with path.open("rb") as handle:
        rest = b""
        for block in iter(lambda: handle.read(_BLOCK), b""):
            chunk = rest + block
            lines = chunk.split(b"\n")
            rest = lines.pop()
            yield from (line for line in lines if line)


def _objects(path: Path, unreadable: list[tuple[Path, int]]) -> Iterator[dict[str, Any]]:
    """The JSON objects of a segment's lines, oldest first; the number of each other line goes to `unreadable`
    (a final line without its newline too: torn, unless a write is landing as it is read)."""
    number = 0
    with path.open("rb") as handle:
        rest = b""
        for block in iter(lambda: handle.read(_BLOCK), b""):
            lines = (rest + block).split(b"\n")
            rest = lines.pop()
            for line in lines:
                number += 1
                if line:
                    data = _parse(line)
                    if data is None:
                        unreadable.append((path, number))
                    else:
                        yield data
        if rest:
            unreadable.append((path, number + 1))


def _tail(path: Path, count: int, unreadable: list[tuple[Path, int]] | None = None) -> list[dict[str, Any]]:
    """The last `count` parseable records of a segment, oldest first, read backwards from its end;
    the lines passed over that do not parse go to `unreadable` (numbered by a count of the lines before them)."""
    found: list[dict[str, Any]] = []
    bad: list[int] = []  # byte offsets of the unparseable lines
    with path.open("rb") as handle:
        end = handle.seek(0, os.SEEK_END)
        position, rest, first = end, b"", True
        while position > 0 and len(found) < count:
            start = max(0, position - _BLOCK)
            handle.seek(start)
            chunk = handle.read(position - start) + rest
            position = start
            lines = chunk.split(b"\n")
            if first:
                if lines.pop():  # after the last newline: empty, or a torn line
                    bad.append(end - len(chunk.rsplit(b"\n", 1)[-1]) if b"\n" in chunk else start)
                first = False
            rest = lines.pop(0) if position > 0 else b""
            offset = position + (len(rest) + 1 if position > 0 else 0) + sum(len(line) + 1 for line in lines)
            for line in reversed(lines):
                offset -= len(line) + 1
                data = _parse(line) if line else None
                if data is not None:
                    found.append(data)
                    if len(found) >= count:
                        break
                elif line:
                    bad.append(offset)
        if bad and unreadable is not None:
            handle.seek(0)
            head = handle.read(max(bad))
            unreadable.extend((path, head.count(b"\n", 0, at) + 1) for at in sorted(bad))
    found.reverse()
    return found


def _merge(segments: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Records of several writers' segments of one day, in time order."""
    if len(segments) == 1:
        return segments[0]
    return list(heapq.merge(*segments, key=lambda d: str(d.get("timestamp", ""))))


def _undo(fd: int, written: int) -> None:
    """Cut off the `written` bytes of a failed batch (a full disk mid-write): none of its records was
    answered, so none may be read as served. Only when nothing was appended after them (another process
    sharing the segment); otherwise they stay, and the torn line among them stays unreadable."""
    if not written:
        return
    try:
        end = os.lseek(fd, 0, os.SEEK_CUR)  # O_APPEND: just past the bytes this batch wrote
        if os.fstat(fd).st_size == end:
            os.ftruncate(fd, end - written)
    except OSError:
        pass


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
