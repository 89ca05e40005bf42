"""``make down`` stops what ``make up`` started, including a retraining run that lives in its own session."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from contextlib import suppress
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

from services.common.feedback import FeedbackStore
from services.retrain.executors import LocalSubprocessExecutor
from services.retrain.journal import load_journal
from services.up.settings import UpSettings
from services.up.system import CRACKSEG, LocalSystem, retrain_journal_dir
from tests.services.retrain.conftest import TINY_TRAIN

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _group(pgid: int) -> list[int]:
    """Live (non-zombie) processes of process group ``pgid``."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                found.append(int(stat.parent.name))
    return found


def test_down_stops_a_running_retrain_and_its_children(mlflow_server: str, tmp_path: Path) -> None:
    """Issue 14 item 2: the run is started in its own session by the trigger; the old stop left it running."""
    from ml.data import synthetic

    synthetic.generate(4, tmp_path / "base", size=(32, 32), seed=1)
    synthetic.generate(2, tmp_path / "eval", size=(32, 32), seed=2)
    params = tmp_path / "params.yaml"  # a training that would run for hours: the stop must cut it short
    params.write_text(
        yaml.safe_dump({"train": {**TINY_TRAIN, "steps_per_epoch": 1_000_000, "num_workers": 1}})
    )
    settings = UpSettings(
        state_dir=tmp_path / "state",
        mlflow_port=int(urlparse(mlflow_server).port or 0),
        retrain_threshold=1,
        base_data=tmp_path / "base",
        eval_data=tmp_path / "eval",
        retrain_params=params,
    )
    system = LocalSystem(settings, echo=lambda _: None)
    env = {**os.environ, **system.env(), "CRACKSEG_ROLLOUT": "none"}
    store = FeedbackStore(Path(env["CRACKSEG_FEEDBACK_DIR"]))
    sample = tmp_path / "base" / "images" / "synth_00000.png"
    mask = tmp_path / "base" / "masks" / "synth_00000.png"
    store.save(sample.read_bytes(), "png", 32, 32, mask_png=mask.read_bytes(), verdict="missed_cracks")

    trigger = subprocess.run(
        [CRACKSEG, "retrain", "trigger"], env=env, capture_output=True, text=True, timeout=120
    )
    assert trigger.returncode == 0, trigger.stderr[-2000:]
    journal_dir = retrain_journal_dir(system.state)
    active = json.loads((journal_dir / "active.json").read_text())
    pid, run_name = int(active["pid"]), active["run"]
    try:
        deadline = time.monotonic() + 180
        while True:  # ready when training has begun: the snapshot step is journalled
            journal = load_journal(journal_dir, run_name)
            if journal is not None and journal.done("snapshot"):
                break
            log = Path(env["CRACKSEG_RETRAIN_LOG_DIR"]) / f"{run_name}.log"
            assert time.monotonic() < deadline, log.read_text()[-3000:] if log.exists() else "no log"
            assert _group(pid), log.read_text()[-3000:] if log.exists() else "run died"
            time.sleep(0.2)
        assert pid in _group(pid)

        system.stop_retrain()

        assert _group(pid) == []  # the run and every child in its group are gone
        executor = LocalSubprocessExecutor(journal_dir, [], tmp_path / "logs")
        assert executor.active_runs() == []  # the kernel dropped the lock
        after = load_journal(journal_dir, run_name)
        assert after is not None and after.completed == ["snapshot"]  # resumable where it stopped
    finally:
        with suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
