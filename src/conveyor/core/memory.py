"""A stage that is about to run the machine out of memory stops with one line, before the kernel kills it.

The Polars engine holds a stage's rows in memory (features and the training set: about 580 bytes a
taxi-style row, 5.8 GB at 10M rows). Past what the machine has, Linux's out-of-memory killer ends
the process with SIGKILL: the user sees `Killed` and nothing else, or on a machine with swap the
run crawls for hours. `guard(stage, engine)` watches the memory the machine (or the cgroup the
process runs in: a container's limit) has left while a stage runs; below a floor it writes what
happened, where and what to do to stderr and ends the process at once (exit 71). Nothing the
stage wrote is recorded as done: a later run redoes that stage, and the stages before it stay
cached. A thread that raised instead could not stop Polars' native code, which holds no
interpreter lock while it allocates.

The floor is `CONVEYOR_MEMORY_FLOOR_MB` (default: 5 % of the memory, at least 256 MiB and at most
1 GiB); `0` turns the guard off.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["EXIT_OUT_OF_MEMORY", "Memory", "floor_bytes", "guard", "memory"]

EXIT_OUT_OF_MEMORY = 71
"""The exit status of a process the guard stopped (EX_OSERR: an operating-system limit)."""

_MIB = 1024 * 1024
_CGROUP = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class Memory:
    """Bytes: what the process may still take (`available`) of `total`, and its own resident set."""

    available: int
    total: int
    rss: int
    where: str
    """"machine", or "container" when a cgroup's limit is the tighter one."""


def _meminfo() -> dict[str, int]:
    out: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            name, _, rest = line.partition(":")
            parts = rest.split()
            if parts and parts[0].isdigit():
                out[name] = int(parts[0]) * 1024
    return out


def _cgroup_folders() -> list[tuple[Path, int]]:
    """This process's memory cgroup folders, each with its hierarchy's version (2, or 1 for the
    `memory` controller of cgroup v1): the path /proc/self/cgroup names, then the mount's root (in a
    container the mount is often the container's own cgroup, whatever the path says)."""
    found: list[tuple[Path, int]] = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, relative = line.split(":", 2)
            if controllers == "":
                found += [(_CGROUP / relative.lstrip("/"), 2), (_CGROUP, 2)]
            elif "memory" in controllers.split(","):
                found += [(_CGROUP / "memory" / relative.lstrip("/"), 1), (_CGROUP / "memory", 1)]
    return found


def _file_cache(folder: Path, names: tuple[str, str]) -> int:
    """The file cache a cgroup's memory.stat counts under `names` (inactive and active), 0 when missing."""
    total = 0
    with contextlib.suppress(OSError, ValueError):
        for line in (folder / "memory.stat").read_text().splitlines():
            key, _, value = line.partition(" ")
            if key in names:
                total += int(value)
    return total


def _cgroup_limit() -> tuple[int, int] | None:
    """(limit, working set) of the tightest memory limit of this process's cgroup (v2 or v1), if any.

    What counts as used is the usage less the file cache: a cgroup's usage includes the page cache
    of the files its processes read and wrote, which the kernel takes back before it kills anything
    (a stage writing 1.2 GB of Parquet in a 640 MiB container is not short of memory; tested).
    """
    best: tuple[int, int] | None = None
    for folder, version in _cgroup_folders():
        try:
            if version == 2:
                limit_text = (folder / "memory.max").read_text().strip()
                usage = int((folder / "memory.current").read_text())
                cache = _file_cache(folder, ("inactive_file", "active_file"))
            else:
                limit_text = (folder / "memory.limit_in_bytes").read_text().strip()
                usage = int((folder / "memory.usage_in_bytes").read_text())
                cache = _file_cache(folder, ("total_inactive_file", "total_active_file"))
        except (OSError, ValueError):
            continue
        if limit_text == "max" or int(limit_text) >= 2**62:  # no limit (v1 writes one near 2^63)
            continue
        limit, used = int(limit_text), max(0, usage - cache)
        if best is None or limit - used < best[0] - best[1]:
            best = (limit, used)
    return best


def _rss() -> int:
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def memory() -> Memory | None:
    """What is left now (None where /proc/meminfo is not there: not Linux)."""
    info = _meminfo()
    if "MemAvailable" not in info:
        return None
    available, total, where = info["MemAvailable"], info.get("MemTotal", 0), "machine"
    limited = _cgroup_limit()
    if limited is not None and limited[0] - limited[1] < available:
        available, total, where = max(0, limited[0] - limited[1]), limited[0], "container"
    return Memory(available, total, _rss(), where)


def floor_bytes(total: int) -> int:
    """Below this many bytes left, the guard stops the process."""
    setting = os.environ.get("CONVEYOR_MEMORY_FLOOR_MB", "").strip()
    if setting:
        try:
            return max(0, int(float(setting) * _MIB))
        except ValueError:
            pass  # a bad value keeps the default: the guard is a safety net, not a setting to fail on
    return min(1024 * _MIB, max(256 * _MIB, total // 20))


def _gib(n: int) -> str:
    return f"{n / 1024**3:.1f} GiB"


def _message(stage: str, engine: str, now: Memory, floor: int) -> str:
    advice = ("set `engine: spark` in conveyor.yaml (docs/config.md, 'engine and spark'), which keeps the rows on disk between "
              "Spark's tasks, or run on a machine with more memory" if engine == "polars" else
              "give the machine (or spark.driver.memory) more memory, or lower training.max_rows")
    return (f"conveyor: error: out of memory: the {stage} stage (engine: {engine}) holds {_gib(now.rss)} and the "
            f"{now.where} has {_gib(now.available)} of {_gib(now.total)} left, under the {_gib(floor)} floor "
            f"(CONVEYOR_MEMORY_FLOOR_MB). Stopped before the kernel's out-of-memory killer would; the stages "
            f"before {stage} stay done and {stage} runs again next time. To fit: {advice}.")


@contextlib.contextmanager
def guard(stage: str, engine: str, interval: float = 0.1) -> Iterator[None]:
    """Watch the memory left while the block runs; under the floor, one line on stderr and exit 71."""
    first = memory()
    floor = floor_bytes(first.total) if first is not None else 0
    if first is None or floor == 0:
        yield
        return
    done = threading.Event()

    def watch() -> None:
        while not done.wait(interval):
            now = memory()
            if now is not None and now.available < floor:
                sys.stderr.write(_message(stage, engine, now, floor) + "\n")
                sys.stderr.flush()
                os._exit(EXIT_OUT_OF_MEMORY)

    watcher = threading.Thread(target=watch, name="conveyor-memory-guard", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join()
