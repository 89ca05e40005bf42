"""Usable CPUs: affinity, cgroup v2/v1 quota and the downward-API limit; the smallest wins."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ml.cpus import cgroup_cpu_quota, usable_cpus


@pytest.fixture
def affinity(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda _: set(range(64)), raising=False)


@pytest.mark.parametrize(
    ("cpu_max", "quota"), [("200000 100000", 2.0), ("150000 100000", 1.5), ("max 100000", None)]
)
def test_cgroup_v2_quota(tmp_path: Path, cpu_max: str, quota: float | None) -> None:
    (tmp_path / "cpu.max").write_text(cpu_max + "\n")
    assert cgroup_cpu_quota(tmp_path) == quota


def test_cgroup_v1_quota(tmp_path: Path) -> None:
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("300000\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert cgroup_cpu_quota(tmp_path) == 3.0
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    assert cgroup_cpu_quota(tmp_path) is None


@pytest.mark.usefixtures("affinity")
@pytest.mark.parametrize(
    ("cpu_max", "limit", "expected"),
    [
        ("200000 100000", None, 2),  # a pod with limits.cpu 2 on a 64-core node
        ("150000 100000", None, 2),  # 1.5 CPUs: two threads, each throttled a little
        ("50000 100000", None, 1),
        ("max 100000", None, 64),
        ("max 100000", 4, 4),  # CRACKSEG_CPU_LIMIT from the downward API
        ("200000 100000", 8, 2),
        ("max 100000", 0, 64),  # 0: no limit given
    ],
)
def test_usable_cpus_takes_the_smallest(
    tmp_path: Path, cpu_max: str, limit: int | None, expected: int
) -> None:
    (tmp_path / "cpu.max").write_text(cpu_max)
    assert usable_cpus(limit, tmp_path) == expected


def test_unreadable_cgroup_files_mean_no_quota(tmp_path: Path) -> None:
    (tmp_path / "cpu.max").write_text("garbage")
    assert cgroup_cpu_quota(tmp_path) is None
    assert usable_cpus(None, tmp_path) >= 1
