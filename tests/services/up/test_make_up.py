"""`make up` from a fresh clone: everything healthy, one predict + feedback, Ctrl-C, nothing left behind."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.helpers.procs import REPO, free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _fresh_clone(tmp_path: Path) -> Path:
    """Clone the committed repository and give it a venv that reuses this one's installed packages.

    The clone's own `make up` then runs its real install step (pip resolves every requirement as already
    satisfied and installs the clone itself in editable mode) without downloading gigabytes again.
    """
    clone = tmp_path / "crackseg"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    venv = clone / ".venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    site = next((venv / "lib").glob("python*/site-packages"))
    (site / "_parent_env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return clone


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def test_make_up_from_a_fresh_clone(tmp_path: Path) -> None:
    clone = _fresh_clone(tmp_path)
    ports = {name: free_port() for name in ("mlflow", "predictor", "ui", "prometheus")}
    env = {
        **os.environ,
        "CRACKSEG_UP_MLFLOW_PORT": str(ports["mlflow"]),
        "CRACKSEG_UP_PREDICTOR_PORT": str(ports["predictor"]),
        "CRACKSEG_UP_UI_PORT": str(ports["ui"]),
        "CRACKSEG_UP_PROMETHEUS_PORT": str(ports["prometheus"]),
        "CRACKSEG_UP_TRIGGER_INTERVAL_S": "5",
    }
    env.pop("VIRTUAL_ENV", None)
    log_path = tmp_path / "make-up.log"
    with open(log_path, "wb") as log:
        make = subprocess.Popen(
            ["make", "up"], cwd=clone, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    seen: set[int] = set()
    try:
        deadline = time.monotonic() + 420
        while b"crackseg is up" not in log_path.read_bytes():
            assert make.poll() is None, f"make up exited early:\n{log_path.read_text()[-4000:]}"
            assert time.monotonic() < deadline, f"not up in time:\n{log_path.read_text()[-4000:]}"
            time.sleep(1)
        seen = {p.pid for p in _descendants(make.pid)}
        base = f"http://127.0.0.1:{ports['predictor']}"
        assert httpx.get(f"{base}/ping", timeout=10).json()["model_version"] == "1"
        assert httpx.get(f"http://127.0.0.1:{ports['ui']}/_stcore/health", timeout=10).status_code == 200
        assert httpx.get(f"http://127.0.0.1:{ports['mlflow']}/health", timeout=10).status_code == 200
        assert httpx.get(f"http://127.0.0.1:{ports['prometheus']}/-/ready", timeout=10).status_code == 200

        image = (REPO / "services" / "ui" / "samples").glob("*.jpg").__next__().read_bytes()
        predicted = httpx.post(f"{base}/predict", files={"file": ("p.jpg", image)}, timeout=120)
        assert predicted.status_code == 200, predicted.text
        assert predicted.json()["model_version"] == "1"
        saved = httpx.post(
            f"{base}/save-for-retrain",
            files={"file": ("p.jpg", image)},
            data={"verdict": "correct"},
            timeout=120,
        )
        assert saved.status_code == 200, saved.text
        record = clone / "state" / "feedback" / "records" / f"{saved.json()['id']}.json"
        assert record.is_file()

        # The trigger ran on its interval and decided (below the threshold: no retraining).
        deadline = time.monotonic() + 60
        trigger_log = clone / "state" / "logs" / "trigger.log"
        while not (trigger_log.exists() and "below_threshold" in trigger_log.read_text()):
            assert time.monotonic() < deadline, "the retrain trigger never ran"
            time.sleep(1)

        # A second `make up` is refused instead of fighting for the ports.
        second = subprocess.run(
            ["make", "up"], cwd=clone, env=env, capture_output=True, text=True, timeout=120
        )
        assert second.returncode != 0
        assert "already running" in second.stdout + second.stderr
    finally:
        if make.poll() is None:
            os.killpg(make.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
        try:
            make.wait(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(make.pid, signal.SIGKILL)
            raise
    assert "crackseg: stopped" in log_path.read_text()

    def left() -> list[int]:
        alive = []
        for pid in seen:
            with contextlib.suppress(psutil.NoSuchProcess):
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    alive.append(pid)
        return alive

    deadline = time.monotonic() + 15  # children reaped by their parents' exit: poll, do not guess a delay
    while left() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not left(), f"processes left behind: {left()}"
    assert not (clone / "state" / "up.pid").exists()
