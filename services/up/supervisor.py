"""A small process supervisor: health-gated start in order, logs per process, clean stop of every child.

Each child runs in its own process group so that stopping it also stops whatever it spawned (MLflow's
workers, Streamlit's server). One supervisor per state folder: a second one is refused by an flock'd pidfile.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx


class UpError(RuntimeError):
    """Something prevents the system from starting; the message says what and how to fix it."""


@dataclass
class ServiceSpec:
    """One long-running process: how to start it and how to know it is healthy."""

    name: str
    cmd: Sequence[str]
    port: int | None = None
    health_url: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    start_timeout: float = 120.0


@dataclass
class Running:
    spec: ServiceSpec
    proc: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes]


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


class PidLock:
    """An exclusive lock on ``<state>/up.pid`` holding the supervisor's PID."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        f = open(self.path, "a+")  # noqa: SIM115 - held for the supervisor's lifetime
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            pid = f.read().strip() or "?"
            f.close()
            raise UpError(
                f"crackseg is already running (supervisor pid {pid}, lock {self.path}); "
                "stop it with `make down` or Ctrl-C in its terminal"
            ) from None
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        self._file = f

    def release(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self.path.unlink()
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None


def read_supervisor_pid(path: Path) -> int | None:
    """PID of a running supervisor holding ``path``, or None when none holds it."""
    try:
        with open(path) as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                text = f.read().strip()
                return int(text) if text.isdigit() else None
            fcntl.flock(f, fcntl.LOCK_UN)
            return None
    except FileNotFoundError:
        return None


class Supervisor:
    """Starts services in order, each only after the previous one is healthy; stops them in reverse."""

    def __init__(self, logs_dir: Path, echo: Callable[[str], None] = print) -> None:
        self.logs_dir = logs_dir
        self.echo = echo
        self.running: list[Running] = []

    def check_ports(self, specs: Sequence[ServiceSpec]) -> None:
        busy = [f"{s.port} ({s.name})" for s in specs if s.port is not None and port_in_use(s.port)]
        if busy:
            raise UpError(
                "port(s) already in use by another program: "
                + ", ".join(busy)
                + ". Stop that program or choose other ports (see `crackseg up --help`)."
            )

    def start(self, spec: ServiceSpec) -> Running:
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.logs_dir / f"{spec.name}.log"
        log_file = open(log_path, "ab")  # noqa: SIM115 - closed in stop_all()
        self.echo(f"  starting {spec.name:<11} log: {log_path}")
        proc = subprocess.Popen(
            list(spec.cmd),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **spec.env},
            start_new_session=True,
        )
        running = Running(spec, proc, log_path, log_file)
        self.running.append(running)
        if spec.health_url:
            self.wait_healthy(running)
        return running

    def wait_healthy(self, running: Running) -> None:
        spec = running.spec
        t0 = time.monotonic()
        while time.monotonic() - t0 < spec.start_timeout:
            if running.proc.poll() is not None:
                raise UpError(
                    f"{spec.name} exited with code {running.proc.returncode} while starting; "
                    f"last lines of {running.log_path}:\n{tail(running.log_path)}"
                )
            with contextlib.suppress(httpx.HTTPError):
                assert spec.health_url is not None
                if httpx.get(spec.health_url, timeout=2.0).status_code == 200:
                    self.echo(f"  {spec.name:<11} healthy after {time.monotonic() - t0:.1f}s")
                    return
            time.sleep(0.5)
        raise UpError(
            f"{spec.name} not healthy at {spec.health_url} after {spec.start_timeout:.0f}s; "
            f"see {running.log_path}:\n{tail(running.log_path)}"
        )

    def run_once(self, name: str, cmd: Sequence[str], env: dict[str, str], timeout: float) -> int:
        """Run a short command to completion, logging to ``<name>.log``; returns its exit code."""
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        with open(self.logs_dir / f"{name}.log", "ab") as log_file:
            try:
                return subprocess.run(
                    list(cmd),
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
                    timeout=timeout,
                    check=False,
                    start_new_session=True,
                ).returncode
            except subprocess.TimeoutExpired:
                return 124

    def dead(self) -> list[Running]:
        return [r for r in self.running if r.proc.poll() is not None]

    def stop_all(self, timeout: float = 20.0) -> None:
        for r in reversed(self.running):
            if r.proc.poll() is None:
                self.echo(f"  stopping {r.spec.name}")
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(r.proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for r in reversed(self.running):
            try:
                r.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.echo(f"  {r.spec.name} ignored SIGTERM; killing it")
            # Whatever is left in the group (the leader or its children) is killed.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(r.proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                r.proc.wait(timeout=5)
            r.log_file.close()
        self.running.clear()


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"
