"""The lean predictor: ``crackseg[serve]`` alone in a fresh venv (no torch, no mlflow, no scikit-image) serves a
real photo, serves a version from a real MLflow registry (read over REST), and refuses a model folder without
``model.onnx`` with a clear message.

The venv is ``$CRACKSEG_LEAN_VENV`` when set (``make test-lean`` builds it once and also runs the whole server
suite against it through ``$CRACKSEG_PREDICTOR_BIN``), else it is built here with pip (minutes, network).
"""

from __future__ import annotations

import base64
import io
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.helpers.procs import REPO, ManagedProcess, start_predictor

pytestmark = [pytest.mark.integration, pytest.mark.slow]
SAMPLE = REPO / "services" / "ui" / "samples" / "concrete_single_crack.jpg"
STARTER = REPO / "models" / "starter"


@pytest.fixture(scope="module")
def lean_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    given = os.environ.get("CRACKSEG_LEAN_VENV")
    if given:
        return Path(given)
    sys.path.insert(0, str(REPO / "benchmarks"))
    from lean import build_venv  # type: ignore[import-not-found]

    venv = tmp_path_factory.mktemp("lean") / "venv"
    build_venv(venv, getattr(sys, "_base_executable", sys.executable))
    return venv


@pytest.fixture(scope="module")
def server(
    lean_venv: Path, mlflow_server: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, ManagedProcess]]:
    tmp = tmp_path_factory.mktemp("lean-server")
    env = {
        "CRACKSEG_FEEDBACK_DIR": str(tmp / "feedback"),
        "CRACKSEG_THREADS": "1",
        "MLFLOW_TRACKING_URI": mlflow_server,
        "CRACKSEG_MODEL_CACHE_DIR": str(tmp / "cache"),
    }
    previous = os.environ.get("CRACKSEG_PREDICTOR_BIN")
    os.environ["CRACKSEG_PREDICTOR_BIN"] = str(lean_venv / "bin" / "crackseg")
    try:
        url, proc = start_predictor(REPO / "models" / "starter", tmp / "server.log", env)
    finally:
        if previous is None:
            os.environ.pop("CRACKSEG_PREDICTOR_BIN")
        else:
            os.environ["CRACKSEG_PREDICTOR_BIN"] = previous
    yield url, proc
    proc.stop()


@pytest.mark.parametrize("package", ["torch", "mlflow", "skimage"])
def test_the_serve_extra_has_no_training_stack(lean_venv: Path, package: str) -> None:
    result = subprocess.run(
        [str(lean_venv / "bin" / "python"), "-c", f"import {package}"], capture_output=True
    )
    assert result.returncode != 0 and f"No module named '{package}'".encode() in result.stderr


def test_the_lean_predictor_serves_a_registry_version(
    server: tuple[str, ManagedProcess], mlflow_server: str
) -> None:
    """models:/crackseg/N resolved and downloaded over MLflow's REST API, in a venv without the mlflow package."""
    from services.up.bootstrap import ensure_champion

    version = ensure_champion(mlflow_server, STARTER)
    url, _ = server
    with httpx.Client(base_url=url, timeout=120) as c:
        r = c.post("/v2/repository/models/crackseg/load", json={"source": "models:/crackseg@champion"})
        assert r.status_code == 200, r.text
        assert r.json()["version"] == version
        assert c.get("/ping").json()["model_version"] == version
        body = c.post("/predict", files={"file": ("photo.jpg", SAMPLE.read_bytes())}).json()
        assert body["model_version"] == version
        r = c.post("/v2/repository/models/crackseg/load", json={"source": "models:/crackseg/999"})
        assert r.status_code == 422 and "cannot resolve models:/crackseg/999" in r.json()["error"]
        assert c.get("/ping").json()["model_version"] == version  # the loaded version keeps serving
        # The session's registry may hold other tests' tiny random models: serve the starter again.
        assert c.post("/v2/repository/models/crackseg/load", json={"path": str(STARTER)}).status_code == 200


def test_the_lean_predictor_serves_a_real_photo(server: tuple[str, ManagedProcess]) -> None:
    url, _ = server
    width, height = Image.open(SAMPLE).size
    with httpx.Client(base_url=url, timeout=120) as c:
        assert c.get("/ping").json()["runtime"] == "onnx"
        body = c.post("/predict", files={"file": ("photo.jpg", SAMPLE.read_bytes())}).json()
    mask = Image.open(io.BytesIO(base64.b64decode(body["mask_png"])))
    assert mask.size == (width, height) == (body["width"], body["height"])
    assert 0 < body["statistics"]["crack_ratio"] < 0.5  # a crack photo: some crack, not all of it


def test_a_model_without_onnx_is_refused_clearly(server: tuple[str, ManagedProcess], tmp_path: Path) -> None:
    url, _ = server
    old = tmp_path / "old-model"
    shutil.copytree(REPO / "models" / "starter", old)
    (old / "model.onnx").unlink()
    with httpx.Client(base_url=url, timeout=120) as c:
        before = c.get("/ping").json()["model_version"]
        r = c.post("/v2/repository/models/crackseg/load", json={"path": str(old)})
        assert r.status_code == 422
        assert "crackseg export-onnx" in r.json()["error"] and "crackseg[train]" in r.json()["error"]
        assert c.get("/ping").json()["model_version"] == before  # the old model keeps serving
