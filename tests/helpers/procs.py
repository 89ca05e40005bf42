"""Real processes for the tests: the project's one process helper (services/common/procs.py), run from the repo."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from services.common import procs
from services.common.procs import BIN, free_port

REPO = Path(__file__).resolve().parents[2]
__all__ = ["BIN", "REPO", "ManagedProcess", "free_port", "start_mlflow_server", "start_predictor"]


class ManagedProcess(procs.ManagedProcess):
    """A child in its own session, logging to a file, stopped with its whole group; runs in the repository."""

    def __init__(
        self,
        cmd: Sequence[str],
        log_path: Path,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        super().__init__(cmd, log_path, env, cwd or REPO)


def start_mlflow_server(workdir: Path) -> tuple[str, procs.ManagedProcess]:
    """A real MLflow tracking + registry server on a free port: ``workdir/mlflow.db``, ``workdir/artifacts``."""
    return procs.start_mlflow_server(workdir)


def start_predictor(
    model: Path | str, log_path: Path, env: dict[str, str] | None = None, timeout: float = 180.0
) -> tuple[str, procs.ManagedProcess]:
    """``services.common.procs.start_predictor``; ``$CRACKSEG_PREDICTOR_BIN`` picks another install's
    ``crackseg`` (the lean ``crackseg[serve]`` venv of ``make test-lean``), so the same server tests run on it."""
    binary = os.environ.get("CRACKSEG_PREDICTOR_BIN") or None
    return procs.start_predictor(model, log_path, env, timeout, binary=binary)
