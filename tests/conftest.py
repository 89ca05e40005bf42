"""Fixtures shared by every suite."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.procs import REPO, start_mlflow_server


@pytest.fixture(scope="session")
def datasets_root() -> Path:
    """The shared real datasets (CrackForest, DeepCrack); tests that need them skip where they are absent."""
    root = Path(os.environ.get("CRACKSEG_DATASETS", REPO.parent / "shared" / "datasets"))
    if not (root / "crackforest" / "split.json").is_file():
        pytest.skip(f"shared datasets not found under {root} (set CRACKSEG_DATASETS)")
    return root


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real MLflow server process for the whole session; yields its URL."""
    url, proc = start_mlflow_server(tmp_path_factory.mktemp("mlflow"))
    try:
        yield url
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def private_mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real MLflow server for one module, for tests that assert on the registry's absolute state."""
    url, proc = start_mlflow_server(tmp_path_factory.mktemp("mlflow-private"))
    try:
        yield url
    finally:
        proc.stop()
