"""How many CPUs this process may really use, and how training spends them.

On a shared 2-core machine an OpenMP fit with 2 threads, while another process is busy,
spins instead of working (measured: a 0.5 s LightGBM fit took 16-20 s). So by default every
fit gets one thread and the cross-validation folds run side by side on the usable CPUs:
parallel folds XOR parallel threads, never both. Trials stay sequential, so a seeded search
gives the same answer every time.

A fit that runs alone on a large training split (the final fits, from `LARGE_FIT_ROWS` rows)
is different: each round's work is long enough that threads pay (measured on 800,000 rows:
21.9 ms a round on 2 threads against 31.6 ms on 1), unless other processes hold the CPUs
(on the same rows beside a busy test run: 120 ms a round on 2 threads, 44 ms on 1). So such a
fit takes every usable CPU when the others are idle the moment before it starts, else one.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LARGE_FIT_ROWS", "ThreadPlan", "idle_cpus", "plan_threads", "solo_threads", "usable_cpus"]

_CGROUP_V2 = Path("/sys/fs/cgroup/cpu.max")
_PROC_STAT = Path("/proc/stat")
LARGE_FIT_ROWS = 100_000
"""From this many training rows a fit that runs alone may use every usable CPU (`solo_threads`)."""
_CGROUP_V1 = (Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"), Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us"))


def _cgroup_limit(v2: Path = _CGROUP_V2, v1: tuple[Path, Path] = _CGROUP_V1) -> int | None:
    """CPUs granted by a cgroup quota (`cpu.max` "quota period", or v1 cfs files), or None."""
    try:
        quota, period = v2.read_text().split()[:2]
        if quota != "max":
            return max(1, math.ceil(int(quota) / int(period)))
        return None
    except (OSError, ValueError):
        pass
    try:
        quota_us, period_us = int(v1[0].read_text()), int(v1[1].read_text())
        return max(1, math.ceil(quota_us / period_us)) if quota_us > 0 else None
    except (OSError, ValueError):
        return None


def usable_cpus() -> int:
    """CPUs this process may run on: the affinity mask, capped by a cgroup quota."""
    try:
        count = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        count = os.cpu_count() or 1
    limit = _cgroup_limit()
    return max(1, min(count, limit) if limit is not None else count)


@dataclass(frozen=True)
class ThreadPlan:
    """`threads` per model fit, `workers` fits side by side (folds); one of the two is 1."""

    cpus: int
    threads: int
    workers: int

    def describe(self) -> str:
        return f"{self.cpus} usable CPU(s): {self.workers} parallel fold(s) x {self.threads} thread(s)"


def plan_threads(configured: int | None, cpus: int | None = None) -> ThreadPlan:
    """`training.threads` unset: 1 thread per fit, folds in parallel; set: that many threads, folds in turn."""
    cpus = usable_cpus() if cpus is None else cpus
    if configured is None:
        return ThreadPlan(cpus=cpus, threads=1, workers=cpus)
    threads = min(configured, cpus)
    return ThreadPlan(cpus=cpus, threads=threads, workers=cpus if threads == 1 else 1)


def idle_cpus(window: float = 0.25, stat: Path = _PROC_STAT) -> float | None:
    """How many CPUs sat idle over the next `window` seconds (from /proc/stat), or None off Linux."""
    import time

    def sample() -> tuple[int, int]:
        fields = [int(v) for v in stat.read_text().splitlines()[0].split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
        return idle, sum(fields[:8])

    try:
        idle0, total0 = sample()
        time.sleep(window)
        idle1, total1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    if total1 <= total0:
        return None
    return (idle1 - idle0) / (total1 - total0) * (os.cpu_count() or 1)


def solo_threads(plan: ThreadPlan, rows: int, configured: int | None, idle: float | None = None) -> int:
    """Threads for a fit that runs alone: `plan.threads`, or, for a split of `LARGE_FIT_ROWS` rows or
    more with `training.threads` unset, every usable CPU when (nearly) all of them are idle now."""
    if configured is not None or rows < LARGE_FIT_ROWS or plan.cpus == 1:
        return plan.threads
    idle = idle_cpus() if idle is None else idle
    return plan.cpus if idle is not None and idle >= plan.cpus - 0.5 else plan.threads
