"""Lineage of a trained model: which code (git commit) and which data (dataset hash) made it."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

from ml.data.datasets import Pair
from ml.data.datasets import dataset_hash as _dataset_hash

UNKNOWN = "unknown"


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_commit(path: str | os.PathLike[str] | None = None) -> str:
    """The commit checked out at ``path`` (default: this source tree), ``+dirty`` when tracked files changed.

    Returns ``"unknown"`` outside a git work tree, without git, or before the first commit; a container image can
    pass the commit in through ``CRACKSEG_GIT_COMMIT`` instead.
    """
    if env := os.environ.get("CRACKSEG_GIT_COMMIT"):
        return env
    cwd = Path(path) if path is not None else Path(__file__).resolve().parent
    sha = _git(["rev-parse", "HEAD"], cwd)
    if not sha:
        return UNKNOWN
    dirty = _git(["status", "--porcelain", "--untracked-files=no"], cwd)
    return f"{sha}+dirty" if dirty else sha


def dataset_hash(pairs: Sequence[Pair]) -> str:
    """Content hash of a set of image/mask pairs (order-independent; see ``ml.data.datasets.dataset_hash``)."""
    return _dataset_hash(list(pairs))
