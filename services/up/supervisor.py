"""``crackseg up``'s supervisor: health-gated start in order, logs per process, clean stop of every child.

The children are :class:`services.common.procs.ManagedProcess` (own process group, stopped whole). One
supervisor per state folder: a second one is refused by :class:`PidLock`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ml.fsutil import atomic_write_bytes
from services.common.procs import ManagedProcess, NotReadyError, tail


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
    proc: ManagedProcess

    @property
    def log_path(self) -> Path:
        return self.proc.log_path


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


class PidLock:
    """One supervisor per state folder: an ``flock`` on ``<name>.lock`` held for life, the PID in ``<name>.pid``.

    The kernel lock is the only truth (it dies with the process, ``kill -9`` included). The lock file is never
    deleted: deleting it would let a waiter lock the old inode while a newcomer locks a new file, two
    "exclusive" holders. The PID file is only a label, written atomically after the lock is taken and removed
    before it is released; readers poll it briefly, so they never report a live supervisor as gone.
    """

    def __init__(self, path: Path, wait_s: float = 1.0) -> None:
        self.path = path
        self.lock_path = path.with_suffix(".lock")
        self.wait_s = (
            wait_s  # a reader's probe holds the lock for microseconds: wait that out, not a supervisor
        )
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + self.wait_s
        while not _try_flock(fd, fcntl.LOCK_EX):
            if time.monotonic() >= deadline:
                os.close(fd)
                pid = read_supervisor_pid(self.path)
                raise UpError(
                    f"crackseg is already running (supervisor pid {pid or '?'}, lock {self.lock_path}); "
                    "stop it with `make down` or Ctrl-C in its terminal"
                )
            time.sleep(0.02)
        self._fd = fd
        atomic_write_bytes(self.path, f"{os.getpid()}\n".encode())

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                self.path.unlink()
            os.close(self._fd)  # closing the descriptor drops the lock
            self._fd = None


def _try_flock(fd: int, mode: int) -> bool:
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_supervisor_pid(path: Path, wait_s: float = 2.0) -> int | None:
    """PID of a running supervisor of ``path`` (its ``.pid`` file), or None when none holds the lock."""
    try:
        fd = os.open(path.with_suffix(".lock"), os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        if _try_flock(fd, fcntl.LOCK_SH):
            return None  # nobody holds it exclusively (closing our descriptor drops the shared probe)
        deadline = time.monotonic() + wait_s
        while True:  # held: the PID file may not be written yet, or still name a crashed predecessor
            with contextlib.suppress(OSError, ValueError):
                pid = int(path.read_text().strip())
                if _alive(pid):
                    return pid
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.02)
    finally:
        os.close(fd)


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
        log_path = self.logs_dir / f"{spec.name}.log"
        self.echo(f"  starting {spec.name:<11} log: {log_path}")
        running = Running(spec, ManagedProcess(spec.cmd, log_path, spec.env))
        self.running.append(running)
        if spec.health_url:
            self.wait_healthy(running)
        return running

    def wait_healthy(self, running: Running) -> None:
        spec = running.spec
        assert spec.health_url is not None
        try:
            took = running.proc.wait_http(spec.health_url, timeout=spec.start_timeout)
        except NotReadyError as e:
            code = running.proc.returncode
            if code is not None:
                raise UpError(
                    f"{spec.name} exited with code {code} while starting; "
                    f"last lines of {running.log_path}:\n{tail(running.log_path)}"
                ) from e
            raise UpError(
                f"{spec.name} not healthy at {spec.health_url} after {spec.start_timeout:.0f}s; "
                f"see {running.log_path}:\n{tail(running.log_path)}"
            ) from e
        self.echo(f"  {spec.name:<11} healthy after {took:.1f}s")

    def run_once(self, name: str, cmd: Sequence[str], env: dict[str, str], timeout: float) -> int:
        """Run a short command to completion, logging to ``<name>.log``; returns its exit code (124: timeout)."""
        proc = ManagedProcess(cmd, self.logs_dir / f"{name}.log", env)
        try:
            return proc.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return 124
        finally:
            proc.stop(timeout=5)

    def dead(self) -> list[Running]:
        return [r for r in self.running if r.proc.returncode is not None]

    def stop_all(self, timeout: float = 20.0) -> None:
        for r in reversed(self.running):
            if r.proc.returncode is None:
                self.echo(f"  stopping {r.spec.name}")
                r.proc.terminate()
        deadline = time.monotonic() + timeout
        for r in reversed(self.running):
            if not r.proc.stop(timeout=deadline - time.monotonic()):
                self.echo(f"  {r.spec.name} ignored SIGTERM; killed it")
        self.running.clear()
