"""Start real processes on free loopback ports and stop them by PID (whole process group)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ManagedProcess:
    """A child process in its own session, logging to a file, stopped with its whole group."""

    def __init__(
        self,
        cmd: Sequence[str],
        log_path: Path,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.cmd = list(cmd)
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.proc = subprocess.Popen(
            self.cmd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=cwd or REPO,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]

    def wait_http(self, url: str, timeout: float = 90.0, status: int = 200) -> None:
        """Poll ``url`` until it answers ``status``; fail with the process log if it dies or times out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.cmd[0]} exited with {self.proc.returncode}:\n{self.log()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url, timeout=2.0).status_code == status:
                    return
            time.sleep(0.3)
        raise TimeoutError(f"{url} not ready after {timeout:.0f}s:\n{self.log()}")

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the process group, then SIGKILL what is left."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        # Children that outlived the leader (same group) are killed too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self._log.close()


def start_predictor(
    model: Path | str, log_path: Path, env: dict[str, str] | None = None, timeout: float = 120.0
) -> tuple[str, ManagedProcess]:
    """A real ``crackseg serve`` on a free loopback port, returned once ready (weights loaded, warmed up)."""
    port = free_port()
    proc = ManagedProcess(
        [str(BIN / "crackseg"), "serve", "--model", str(model), "--port", str(port), "--host", "127.0.0.1"],
        log_path=log_path,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        proc.wait_http(f"{url}/v2/health/ready", timeout=timeout)
    except BaseException:
        proc.stop()
        raise
    return url, proc


def start_mlflow_server(workdir: Path) -> tuple[str, ManagedProcess]:
    """A real MLflow tracking + registry server on a free port, SQLite backend, proxied artifacts."""
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    proc = ManagedProcess(
        [
            str(BIN / "mlflow"),
            "server",
            "--backend-store-uri",
            f"sqlite:///{workdir / 'mlflow.db'}",
            "--artifacts-destination",
            str(workdir / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        log_path=workdir / "mlflow.log",
        env={"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        proc.wait_http(f"{url}/health", timeout=120)
    except BaseException:
        proc.stop()
        raise
    return url, proc
