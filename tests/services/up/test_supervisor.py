import os
import socket
import sys
import time
from pathlib import Path

import pytest

from services.up.supervisor import PidLock, ServiceSpec, Supervisor, UpError, port_in_use, read_supervisor_pid
from tests.helpers.procs import free_port

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


def test_run_once_returns_the_exit_code_and_logs(tmp_path):
    sup = Supervisor(tmp_path, echo=lambda _: None)
    assert (
        sup.run_once("job", [sys.executable, "-c", "print('hi'); raise SystemExit(4)"], {}, timeout=30) == 4
    )
    assert "hi" in (tmp_path / "job.log").read_text()
    assert sup.run_once("slow", [sys.executable, "-c", "import time; time.sleep(30)"], {}, timeout=0.5) == 124
