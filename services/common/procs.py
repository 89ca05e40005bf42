"""Child processes, one way: own session, a log file, readiness by polling, stop of the whole group by PID.

Used by ``crackseg up`` (services/up/supervisor.py), ``make loop-demo`` and the tests, so that there is one
process supervisor and one MLflow server command line. Each child leads its own session, so stopping it also stops
whatever it spawned (MLflow's workers, Streamlit's server, DataLoader workers).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import httpx

BIN = Path(sys.executable).parent
MLFLOW_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # ~0.5 GiB and ~15 s to start instead of 3 GiB


class NotReadyError(RuntimeError):
    """A child exited or did not answer in time; the message holds the end of its log."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


class ManagedProcess:
    """A child process in its own session, logging to ``log_path``, stopped with its whole process group."""

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
        self.proc = subprocess.Popen(
            self.cmd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            cwd=cwd,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        return self.proc.poll()

    def log(self, chars: int = 5000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def wait_until(self, what: str, ready: Callable[[], bool], timeout: float, poll_s: float = 0.3) -> float:
        """Poll ``ready`` until true; returns the seconds it took. Fails fast, with the log, if the child exits."""
        t0 = time.monotonic()
        while True:
            if self.proc.poll() is not None:
                raise NotReadyError(
                    f"{Path(self.cmd[0]).name} exited with code {self.proc.returncode} while waiting for {what}; "
                    f"last lines of {self.log_path}:\n{tail(self.log_path)}"
                )
            if ready():
                return time.monotonic() - t0
            if time.monotonic() - t0 >= timeout:
                raise NotReadyError(
                    f"{what} not ready after {timeout:.0f}s; see {self.log_path}:\n{tail(self.log_path)}"
                )
            time.sleep(poll_s)

    def wait_http(self, url: str, timeout: float = 90.0, status: int = 200) -> float:
        """Poll ``url`` until it answers ``status``; returns the seconds it took."""

        def answers() -> bool:
            try:
                return httpx.get(url, timeout=2.0).status_code == status
            except httpx.HTTPError:
                return False

        return self.wait_until(url, answers, timeout)

    def terminate(self) -> None:
        """SIGTERM to the group (returns at once; ``stop`` waits)."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)

    def stop(self, timeout: float = 15.0) -> bool:
        """SIGTERM the group, wait, SIGKILL what is left; True when the leader exited on SIGTERM."""
        self.terminate()
        clean = True
        try:
            self.proc.wait(timeout=max(timeout, 0.1))
        except subprocess.TimeoutExpired:
            clean = False
        # Whatever is left in the group (the leader or children that outlived it) is killed.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        _wait_group_gone(self.proc.pid, timeout=5)
        self._log.close()
        return clean


def _wait_group_gone(pgid: int, timeout: float) -> bool:
    """Poll until no process of group ``pgid`` exists any more (a killed child takes a moment to exit)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        time.sleep(0.02)
    return False


def mlflow_server_command(store: Path, host: str, port: int) -> list[str]:
    """The one MLflow server command line: SQLite backend ``<store>/mlflow.db``, proxied ``<store>/artifacts``."""
    return [
        sys.executable,  # not BIN/mlflow: a venv that borrows its packages (a .pth file) has no mlflow script
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        f"sqlite:///{store / 'mlflow.db'}",
        "--artifacts-destination",
        str(store / "artifacts"),
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        "1",
    ]


def start_mlflow_server(
    store: Path, log_path: Path | None = None, *, host: str = "127.0.0.1", port: int | None = None
) -> tuple[str, ManagedProcess]:
    """A real MLflow tracking + registry server, returned once ``/health`` answers."""
    port = port or free_port(host)
    store.mkdir(parents=True, exist_ok=True)
    proc = ManagedProcess(
        mlflow_server_command(store, host, port), log_path or store / "mlflow.log", env=MLFLOW_ENV
    )
    url = f"http://{host}:{port}"
    try:
        proc.wait_http(f"{url}/health", timeout=180)
    except BaseException:
        proc.stop()
        raise
    return url, proc


def start_predictor(
    model: Path | str,
    log_path: Path,
    env: dict[str, str] | None = None,
    timeout: float = 180.0,
    binary: Path | str | None = None,
) -> tuple[str, ManagedProcess]:
    """A real ``crackseg serve`` on a free loopback port, returned once ready (weights loaded, warmed up).

    ``binary``: another install's ``crackseg`` (e.g. a lean ``crackseg[serve]`` venv); default: this one's."""
    port = free_port()
    proc = ManagedProcess(
        [
            str(binary or BIN / "crackseg"),
            "serve",
            "--model",
            str(model),
            "--port",
            str(port),
            "--host",
            "127.0.0.1",
        ],
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
