"""How many CPUs this process may really use (affinity and cgroup quota, not the host's count)."""

from __future__ import annotations

import math
import os
from pathlib import Path


def usable_cpus() -> int:
    """CPUs available to this process: the smaller of its affinity mask and its cgroup quota."""
    try:
        count = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        count = os.cpu_count() or 1
    quota = _cgroup_cpu_quota()
    if quota is not None:
        count = min(count, max(1, math.ceil(quota)))
    return max(1, count)


def cpu_calls(cpus: int) -> int:
    """Model calls a CPU-only process runs at once by default on ``cpus`` CPUs, each on its
    share of them: 2 from 2 CPUs up, else 1. On 2 vCPUs, two 1-thread calls did 1.27x the texts/s
    of one 2-thread call in micro-batches of 32; a lone text then runs on one thread."""
    return 2 if cpus >= 2 else 1


def call_threads(cpus: int | None = None) -> int:
    """Intra-op threads of each of the `cpu_calls` that share ``cpus`` (default: `usable_cpus`)."""
    cpus = cpus or usable_cpus()
    return max(1, cpus // cpu_calls(cpus))


def _cgroup_cpu_quota() -> float | None:
    """CPU quota in cores from cgroup v2 (`cpu.max`) or v1 (`cpu.cfs_*`); None when unlimited."""
    v2 = Path("/sys/fs/cgroup/cpu.max")
    try:
        if v2.is_file():
            quota, period = v2.read_text().split()[:2]
            return None if quota == "max" else int(quota) / int(period)
        v1_quota = Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us")
        v1_period = Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us")
        if v1_quota.is_file() and v1_period.is_file():
            quota_us = int(v1_quota.read_text())
            return None if quota_us <= 0 else quota_us / int(v1_period.read_text())
    except (OSError, ValueError):
        return None
    return None
