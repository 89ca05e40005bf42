import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from services.up.supervisor import PidLock, ServiceSpec, Supervisor, UpError, port_in_use, read_supervisor_pid
from tests.helpers.procs import REPO, free_port

HTTP_SERVER = [sys.executable, "-m", "http.server", "--bind", "127.0.0.1"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); its state says it is gone.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_health_gated_start_and_clean_stop(tmp_path):
    port = free_port()
    sup = Supervisor(tmp_path / "logs", echo=lambda _: None)
    running = sup.start(
        ServiceSpec("web", [*HTTP_SERVER, str(port)], port=port, health_url=f"http://127.0.0.1:{port}/")
    )
    pid = running.proc.pid
    assert _alive(pid)
    sup.stop_all()
    assert not _alive(pid)
    assert (tmp_path / "logs" / "web.log").exists()


def test_children_of_a_service_are_stopped_too(tmp_path):
    pidfile = tmp_path / "child.pid"
    script = f"import subprocess,sys,time; p=subprocess.Popen([sys.executable,'-c','import time; time.sleep(300)']); open({str(pidfile)!r},'w').write(str(p.pid)); time.sleep(300)"
    sup = Supervisor(tmp_path / "logs", echo=lambda _: None)
    sup.start(ServiceSpec("parent", [sys.executable, "-c", script]))
    deadline = time.monotonic() + 20
    while not pidfile.exists() or not pidfile.read_text():
        assert time.monotonic() < deadline
        time.sleep(0.1)
    child = int(pidfile.read_text())
    sup.stop_all()
    assert not _alive(child)


def test_a_service_that_dies_while_starting_is_reported_with_its_log(tmp_path):
    sup = Supervisor(tmp_path / "logs", echo=lambda _: None)
    spec = ServiceSpec(
        "broken",
        [sys.executable, "-c", "import sys; print('bad config value'); sys.exit(3)"],
        health_url=f"http://127.0.0.1:{free_port()}/",
    )
    with pytest.raises(UpError, match=r"(?s)broken exited with code 3.*bad config value"):
        sup.start(spec)
    sup.stop_all()


def test_busy_ports_are_reported_by_name(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert port_in_use(port)
        sup = Supervisor(tmp_path, echo=lambda _: None)
        with pytest.raises(UpError, match=rf"{port} \(predictor\)"):
            sup.check_ports([ServiceSpec("predictor", ["true"], port=port)])


def test_second_supervisor_is_refused_and_pid_is_readable(tmp_path):
    first = PidLock(tmp_path / "up.pid")
    first.acquire()
    try:
        assert read_supervisor_pid(tmp_path / "up.pid") == os.getpid()
        with pytest.raises(UpError, match="already running"):
            PidLock(tmp_path / "up.pid").acquire()
    finally:
        first.release()
    assert read_supervisor_pid(tmp_path / "up.pid") is None
    PidLock(tmp_path / "up.pid").acquire()  # free again


RACER = """
import sys, time
from pathlib import Path
from services.up.supervisor import PidLock, UpError
go = float(sys.argv[2])
while time.time() < go:
    pass
lock = PidLock(Path(sys.argv[1]), wait_s=0.2)
try:
    lock.acquire()
except UpError:
    print("refused", flush=True)
else:
    print("won", flush=True)
    time.sleep(1.5)
    lock.release()
"""


def test_racing_supervisors_exactly_one_wins(tmp_path):
    """Issue 14 item 10: many processes start at the same instant; the OS lock admits exactly one."""
    go = time.time() + 2.0
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, str(tmp_path / "up.pid"), str(go)],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        for _ in range(6)
    ]
    outcomes = sorted(p.communicate(timeout=60)[0].strip() for p in racers)
    assert outcomes == ["refused"] * 5 + ["won"]


def test_a_waiter_on_a_released_lock_keeps_newcomers_out(tmp_path):
    """The old lock deleted its file on release: a waiter then held the old inode, a newcomer a new file."""
    first = PidLock(tmp_path / "up.pid")
    first.acquire()
    waiter = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, sys, time; f = open(sys.argv[1], 'a'); fcntl.flock(f, fcntl.LOCK_EX); "
            "print('locked', flush=True); time.sleep(30)",
            str(first.lock_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        first.release()
        assert waiter.stdout is not None and waiter.stdout.readline().strip() == "locked"
        with pytest.raises(UpError, match="already running"):
            PidLock(tmp_path / "up.pid", wait_s=0.1).acquire()
    finally:
        waiter.kill()
        waiter.wait()


def test_a_reader_probing_never_makes_a_starting_supervisor_fail(tmp_path):
    stop = time.monotonic() + 1.5
    lock = PidLock(tmp_path / "up.pid")
    lock.acquire()
    lock.release()
    reader = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from services.up.supervisor import read_supervisor_pid\n"
            "end = time.monotonic() + 3\nwhile time.monotonic() < end: read_supervisor_pid(Path(sys.argv[1]))",
            str(tmp_path / "up.pid"),
        ],
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        while time.monotonic() < stop:
            lock.acquire()  # never refused by a reader's momentary probe
            assert read_supervisor_pid(tmp_path / "up.pid") == os.getpid()
            lock.release()
    finally:
        reader.kill()
        reader.wait()


def test_run_once_returns_the_exit_code_and_logs(tmp_path):
    sup = Supervisor(tmp_path, echo=lambda _: None)
    assert (
        sup.run_once("job", [sys.executable, "-c", "print('hi'); raise SystemExit(4)"], {}, timeout=30) == 4
    )
    assert "hi" in (tmp_path / "job.log").read_text()
    assert sup.run_once("slow", [sys.executable, "-c", "import time; time.sleep(30)"], {}, timeout=0.5) == 124
