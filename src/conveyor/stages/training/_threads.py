"""How many CPUs this process may really use, and how training spends them.

On a shared 2-core machine an OpenMP fit with 2 threads, while another process is busy,
spins instead of working (measured: a 0.5 s LightGBM fit took 16-20 s). So by default every
fit gets one thread and the cross-validation folds run side by side on the usable CPUs:
parallel folds XOR parallel threads, never both. Trials stay sequential, so a seeded search
gives the same answer every time.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ThreadPlan", "plan_threads", "usable_cpus"]

_CGROUP_V2 = Path("/sys/fs/cgroup/cpu.max")
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
