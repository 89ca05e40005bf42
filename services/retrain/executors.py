"""Where a retraining run executes: a local subprocess or a Kubernetes Job. Both start at most one run.

Local: the run holds an exclusive ``flock`` on ``<feedback>/state/retrain/.run.lock`` for its whole life. The
trigger takes that lock itself and hands the locked file to the child (inherited descriptor), so there is no window
in which a second trigger could start another run. The kernel drops the lock when the run exits or is killed
(``kill -9`` included), so a dead run can never leave a stale lock; ``active.json`` beside it only names the run
for humans and is believed only while the lock is held.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel

from ml.fsutil import atomic_write_json
from services.retrain import events
from services.retrain.errors import AlreadyRunningError
from services.retrain.jobtemplate import RETRAIN_SELECTOR, launch_job
from services.retrain.journal import load_journal
from services.retrain.kube import Kube
from services.retrain.plan import RetrainPlan

LOCK_FD_ENV = "CRACKSEG_RETRAIN_LOCK_FD"


class LaunchResult(BaseModel):
    """What ``launch`` did: ``created`` is False when the run exists (409, finished journal), is in progress,
    or gave up (out of attempts: only new feedback or ``crackseg retrain retry`` starts it again)."""

    run_name: str
    created: bool
    detail: str
    outcome: Literal["launched", "exists", "in_progress", "gave_up"] = "launched"
    pid: int | None = None


class Executor(Protocol):
    """Starts a retraining run and tells whether one is in progress."""

    name: str

    def active_runs(self) -> list[str]: ...

    def launch(self, plan: RetrainPlan) -> LaunchResult: ...


# -- local --------------------------------------------------------------------------------------------------------
def _lock_path(journal_dir: Path) -> Path:
    journal_dir.mkdir(parents=True, exist_ok=True)
    return journal_dir / ".run.lock"


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True


@contextlib.contextmanager
def run_lock(journal_dir: Path, run_name: str) -> Iterator[None]:
    """Hold the local run lock for a run's lifetime (the run's side of the protocol).

    Uses the descriptor inherited from the trigger when ``CRACKSEG_RETRAIN_LOCK_FD`` names one; otherwise takes
    the lock itself. Raises :class:`AlreadyRunningError` when another run holds it. Filesystems without ``flock``
    (some network volumes) degrade to no lock, with an event: on Kubernetes the Job controller already ensures one
    pod per run.
    """
    inherited = os.environ.pop(LOCK_FD_ENV, None)
    if inherited is not None:
        fd = int(inherited)
        os.fstat(fd)  # fails loudly if the trigger did not really pass it
    else:
        fd = os.open(_lock_path(journal_dir), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if not _try_lock(fd):
                os.close(fd)
                holder = _read_active(journal_dir)
                raise AlreadyRunningError(
                    f"another retraining run holds {journal_dir / '.run.lock'}: {holder}"
                )
        except OSError as e:
            events.emit("run_lock_unavailable", path=str(journal_dir), error=str(e))
    try:
        atomic_write_json(
            journal_dir / "active.json",
            {"run": run_name, "pid": os.getpid(), "since": datetime.now(UTC).isoformat()},
        )
        yield
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)


def _read_active(journal_dir: Path) -> dict[str, Any]:
    try:
        return dict(json.loads((journal_dir / "active.json").read_text()))
    except (OSError, ValueError):
        return {}


def launch_refusal(journal_dir: Path, run_name: str) -> LaunchResult | None:
    """Why the journal forbids starting ``run_name`` (finished, or out of attempts), or None."""
    journal = load_journal(journal_dir, run_name)
    refusal = journal.refusal() if journal is not None else None
    if journal is None or refusal is None:
        return None
    return LaunchResult(
        run_name=run_name, created=False, detail=refusal, outcome="exists" if journal.finished else "gave_up"
    )


def _live_group_members(pgid: int) -> list[int]:
    """PIDs of the live (non-zombie) processes in process group ``pgid`` (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                found.append(int(stat.parent.name))
    return found


def _is_retrain_run(pid: int) -> bool:
    """``pid`` is alive, leads its own group (as a launched run does) and runs ``retrain run``."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"retrain\x00run" in cmdline and pid in _live_group_members(pid)


def stop_active_run(journal_dir: Path, timeout: float = 30.0) -> int | None:
    """Stop the local run that holds the lock, with its whole process group; returns its PID (None: none ran).

    The run is started in its own session (it outlives the trigger), so whoever started the trigger must stop it
    this way: SIGTERM to the group, SIGKILL after ``timeout``, done when the kernel has dropped the lock. The
    journal keeps what was done; the next launch resumes.
    """
    fd = os.open(_lock_path(journal_dir), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        pid = _read_active(journal_dir).get("pid")
        # A free lock alone does not mean no run: between two attempts of its in-process retries a run can be
        # waiting (backing off) without the lock. Its process group still lives; stop it all the same.
        if _try_lock(fd) and not (isinstance(pid, int) and _is_retrain_run(pid)):
            return None
        if not isinstance(pid, int):
            raise AlreadyRunningError(f"a run holds {journal_dir / '.run.lock'} but active.json names no pid")
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, sig)  # the run leads its own session: its group id is its pid
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                # Done when the run let go of the lock AND no process of its group lives on (its children get
                # the same signal but may take longer to exit than the run itself).
                if _try_lock(fd) and not _live_group_members(pid):
                    events.emit("run_stopped", run=_read_active(journal_dir).get("run"), pid=pid)
                    return pid
                time.sleep(0.1)
        raise AlreadyRunningError(f"run pid {pid} still holds {journal_dir / '.run.lock'} after SIGKILL")
    finally:
        os.close(fd)


class LocalSubprocessExecutor:
    """Runs ``crackseg retrain run --name <run>`` as a detached child process (for ``make up`` and tests)."""

    name = "local"

    def __init__(
        self, journal_dir: Path, command: list[str], log_dir: Path, env: dict[str, str] | None = None
    ):
        self.journal_dir = journal_dir
        self.command = command
        self.log_dir = log_dir
        self.env = env or {}

    def active_runs(self) -> list[str]:
        fd = os.open(_lock_path(self.journal_dir), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if _try_lock(fd):
                return []
            return [str(_read_active(self.journal_dir).get("run", "unknown"))]
        finally:
            os.close(fd)  # closing our own descriptor releases a lock we took just to probe

    def launch(self, plan: RetrainPlan) -> LaunchResult:
        refused = launch_refusal(self.journal_dir, plan.run_name)
        if refused is not None:
            return refused
        fd = os.open(_lock_path(self.journal_dir), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if not _try_lock(fd):
                holder = _read_active(self.journal_dir).get("run", "unknown")
                return LaunchResult(
                    run_name=plan.run_name,
                    created=False,
                    detail=f"run {holder} is in progress",
                    outcome="in_progress",
                )
            self.log_dir.mkdir(parents=True, exist_ok=True)
            with open(self.log_dir / f"{plan.run_name}.log", "ab") as log:
                proc = subprocess.Popen(
                    [*self.command, "--name", plan.run_name],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env={**os.environ, **self.env, LOCK_FD_ENV: str(fd)},
                    pass_fds=(fd,),
                    start_new_session=True,  # the run outlives the trigger
                )
            atomic_write_json(
                self.journal_dir / "active.json",
                {"run": plan.run_name, "pid": proc.pid, "since": datetime.now(UTC).isoformat()},
            )
            return LaunchResult(run_name=plan.run_name, created=True, detail="started", pid=proc.pid)
        finally:
            os.close(fd)  # the child keeps the lock through its inherited descriptor


# -- Kubernetes ---------------------------------------------------------------------------------------------------
def job_is_running(job: dict[str, Any]) -> bool:
    """A Job counts as running while it has active pods or has not reached Complete/Failed."""
    status = job.get("status") or {}
    if (status.get("active") or 0) > 0:
        return True
    finished = {c.get("type") for c in status.get("conditions") or [] if c.get("status") == "True"} & {
        "Complete",
        "Failed",
    }
    return not finished


class KubernetesJobExecutor:
    """Creates the retraining Job from the chart's template: one Job per attempt (jobtemplate.launch_job)."""

    name = "kubernetes"

    def __init__(self, kube: Kube, template: dict[str, Any]) -> None:
        self.kube = kube
        self.template = template

    def active_runs(self) -> list[str]:
        jobs = self.kube.list_jobs(RETRAIN_SELECTOR)
        return sorted(j["metadata"]["name"] for j in jobs if job_is_running(j))

    def launch(self, plan: RetrainPlan) -> LaunchResult:
        result = launch_job(self.kube, self.template, plan)
        # No Job named: the run used up retrain.job.maxAttempts Jobs (launch_job's only such answer).
        outcome = "launched" if result.created else ("gave_up" if result.job_name is None else "exists")
        return LaunchResult(
            run_name=plan.run_name, created=result.created, detail=result.detail, outcome=outcome
        )
