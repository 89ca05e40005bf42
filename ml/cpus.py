"""How many CPUs this process may really use: affinity, cgroup quota and an explicit limit, the smallest wins.

In a pod with ``limits.cpu: 2`` on a 64-core node ``os.cpu_count()`` says 64, but the cgroup quota throttles the
container to 2 CPUs' worth of time: 64 threads would thrash. So: ``os.sched_getaffinity`` (cpusets, taskset),
cgroup v2 ``cpu.max`` or v1 ``cpu.cfs_quota_us / cpu.cfs_period_us`` (rounded up, at least 1), and a limit given
by the caller (the Kubernetes downward API's ``limits.cpu``, where 0 means "none").
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def cgroup_cpu_quota(root: Path = CGROUP_ROOT) -> float | None:
    """CPUs' worth of time the cgroup allows (e.g. 1.5), or ``None`` when unlimited or unknown."""
    v2 = root / "cpu.max"
    try:
        if v2.is_file():
            quota, _, period = v2.read_text().strip().partition(" ")
            if quota == "max":
                return None
            return int(quota) / int(period or "100000")
        for v1 in (root / "cpu", root / "cpu,cpuacct", root):
            q, p = v1 / "cpu.cfs_quota_us", v1 / "cpu.cfs_period_us"
            if q.is_file() and p.is_file():
                quota_us = int(q.read_text().strip())
                return None if quota_us <= 0 else quota_us / int(p.read_text().strip())
    except (OSError, ValueError, ZeroDivisionError):
        return None
    return None


def usable_cpus(limit: int | None = None, root: Path = CGROUP_ROOT) -> int:
    """The number of threads worth running: min(affinity, ceil(cgroup quota), ``limit`` when > 0), ≥ 1."""
    try:
        count = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        count = os.cpu_count() or 1
    quota = cgroup_cpu_quota(root)
    if quota is not None:
        count = min(count, max(1, math.ceil(quota - 1e-6)))
    if limit is not None and limit > 0:
        count = min(count, limit)
    return max(1, count)
