"""Real processes for the tests: the project's one process helper (services/common/procs.py), run from the repo."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from services.common import procs
from services.common.procs import BIN, free_port, start_predictor

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
