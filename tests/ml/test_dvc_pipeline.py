"""``dvc repro`` of prepare → train → evaluate on a tiny budget, ``dvc push`` to a local remote, ``dvc pull`` into a
fresh clone. Runs in a temporary git repository holding the pipeline files and a copy of ``ml/``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.helpers.procs import BIN, REPO

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TINY_TRAIN = {
    "base_width": 4,
    "depth": 2,
    "epochs": 1,
    "steps_per_epoch": 2,
    "batch_size": 2,
    "crop_size": 32,
    "num_workers": 0,
    "val_fraction": 0.25,
    "threads": 1,
    "n_overlays": 0,
}
TINY_PREPARE = {"source": "", "n_synthetic": 8, "height": 64, "width": 64, "test_fraction": 0.25, "seed": 0}


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done.stdout


def _git(cwd: Path, env: dict[str, str], *args: str) -> str:
    return _run(["git", "-c", "user.name=test", "-c", "user.email=test@example.com", *args], cwd, env)


def test_repro_push_pull(tmp_path: Path) -> None:
    repo, remote, clone = tmp_path / "repo", tmp_path / "remote", tmp_path / "clone"
    repo.mkdir()
    for name in ("dvc.yaml", ".dvcignore"):
        shutil.copy2(REPO / name, repo / name)
    shutil.copytree(
        REPO / ".dvc", repo / ".dvc", ignore=shutil.ignore_patterns("tmp", "cache", "config.local")
    )
    shutil.copytree(REPO / "ml", repo / "ml", ignore=shutil.ignore_patterns("__pycache__"))
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["prepare"].update(TINY_PREPARE)
    params["train"].update(TINY_TRAIN)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "MLFLOW_TRACKING_URI": "none",
        "OMP_NUM_THREADS": "1",
        "DVC_NO_ANALYTICS": "1",
        "GIT_TERMINAL_PROMPT": "0",
    }
    dvc = str(BIN / "dvc")
    _git(repo, env, "init", "-q")
    _run([dvc, "remote", "add", "--force", "--default", "local", str(remote)], repo, env)
    _git(repo, env, "add", "-A")
    _git(repo, env, "commit", "-q", "-m", "pipeline")

    _run([dvc, "repro"], repo, env)
    report = json.loads((repo / "metrics" / "eval.json").read_text())
    assert report["n_images"] == 2 and 0.0 <= report["f1_ods"] <= 1.0
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    assert set(lock["stages"]) == {"prepare", "train", "evaluate"}
    assert lock["stages"]["train"]["params"]["params.yaml"]["train"]["base_width"] == 4
    assert "Data and pipelines are up to date" in _run([dvc, "status"], repo, env)
    # Models and data are DVC outputs, ignored by git.
    ignored = _git(repo, env, "check-ignore", "data/prepared", "models/dvc")
    assert ignored.split() == ["data/prepared", "models/dvc"]

    _run([dvc, "push"], repo, env)
    _git(repo, env, "add", "-A")
    _git(repo, env, "commit", "-q", "-m", "lock")
    _git(tmp_path, env, "clone", "-q", str(repo), str(clone))
    assert not (clone / "models" / "dvc").exists()
    _run([dvc, "pull"], clone, env)
    for rel in (
        "models/dvc/model/model.safetensors",
        "models/dvc/model/config.json",
        "data/prepared/split.json",
    ):
        assert (clone / rel).read_bytes() == (repo / rel).read_bytes(), rel
    assert "Data and pipelines are up to date" in _run([dvc, "status"], clone, env)

    # A changed parameter invalidates train and evaluate, not prepare.
    params["train"]["seed"] = 1
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    status = _run([dvc, "status"], repo, env)
    assert "train:" in status and "prepare:" not in status
