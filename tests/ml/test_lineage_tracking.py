"""Lineage (git commit) and tracking-URI resolution."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ml.lineage import git_commit
from ml.tracking import resolve_model_version, resolve_tracking_uri


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=cwd, check=True, capture_output=True
    )


def test_git_commit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CRACKSEG_GIT_COMMIT", raising=False)
    assert git_commit(tmp_path) == "unknown"
    _git(tmp_path, "init", "-q")
    assert git_commit(tmp_path) == "unknown"  # no commit yet
    (tmp_path / "f.txt").write_text("1")
    _git(tmp_path, "add", "f.txt")
    _git(tmp_path, "commit", "-q", "-m", "c")
    sha = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True
    ).stdout.strip()
    assert git_commit(tmp_path) == sha
    (tmp_path / "f.txt").write_text("2")
    assert git_commit(tmp_path) == f"{sha}+dirty"
    monkeypatch.setenv("CRACKSEG_GIT_COMMIT", "abc123")
    assert git_commit(tmp_path) == "abc123"


def test_resolve_tracking_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert resolve_tracking_uri() == f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    assert resolve_tracking_uri("http://127.0.0.1:5000") == "http://127.0.0.1:5000"
    assert resolve_tracking_uri("none") is None and resolve_tracking_uri("OFF") is None
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5001")
    assert resolve_tracking_uri() == "http://127.0.0.1:5001"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "none")
    assert resolve_tracking_uri() is None


def test_model_uri_parsing() -> None:
    assert resolve_model_version("models:/crackseg/12") == ("crackseg", "12")
    for bad in ("models:/crackseg", "models:/crackseg/latest/1", "runs:/abc/model", "models:/a b/1"):
        with pytest.raises(ValueError, match="not a model URI"):
            resolve_model_version(bad)
