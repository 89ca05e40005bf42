"""Static checks of the Dockerfiles (no engine needed): base image argument, stages, user, health checks."""

from __future__ import annotations

import importlib.util
import re
import tomllib
from pathlib import Path

import pytest

from tests.helpers.procs import REPO

DOCKERFILES = {p.name.removesuffix(".Dockerfile"): p for p in (REPO / "docker").glob("*.Dockerfile")}


def _requirements(extras: list[str]) -> list[str]:
    spec = importlib.util.spec_from_file_location("docker_requirements", REPO / "docker" / "requirements.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    return list(module.requirements(data, extras))


def test_one_dockerfile_per_image() -> None:
    assert set(DOCKERFILES) == {"predictor", "ui", "trainer", "mlflow"}


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_dockerfile_shape(name: str) -> None:
    text = DOCKERFILES[name].read_text()
    assert re.search(r"^ARG BASE_IMAGE=python:3\.11-slim$", text, re.MULTILINE)
    stages = re.findall(r"^FROM (\S+)(?: AS (\w+))?$", text, re.MULTILINE)
    assert len(stages) == 2 and all(image == "${BASE_IMAGE}" for image, _ in stages), (
        "multi-stage from BASE_IMAGE"
    )
    final = text.split("\nFROM ${BASE_IMAGE}\n", 1)[1]
    assert "COPY --from=build /opt/venv /opt/venv" in final
    assert re.search(r"^USER 10001:10001$", final, re.MULTILINE), (
        "numeric non-root user (runAsNonRoot checks it)"
    )
    # The final stage installs nothing: no pip, no apt, no compiler.
    assert not re.search(
        r"\b(pip|apt-get|apt|gcc|build-essential)\b", final.split("USER")[0].replace("PIP_", "")
    )
    if name == "trainer":
        assert "HEALTHCHECK NONE" in final
    else:
        assert re.search(r"^HEALTHCHECK .*\n\s+CMD \[", final, re.MULTILINE)
    if name == "trainer":
        assert "ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu" in text
        assert "--constraint /opt/torch-constraint.txt" in text, "torch is pinned before the PyPI resolution"
    if name == "predictor":  # the lean predictor: crackseg[serve] only, and the build fails if torch got in
        assert "TORCH" not in text and "requirements.py pyproject.toml serve >" in text
        assert "torch must not be in the serve image" in text


def test_ui_image_requirements_have_no_torch() -> None:
    reqs = _requirements(["ui"])
    names = {re.split(r"[<>=!\[ ]", r, maxsplit=1)[0].lower() for r in reqs}
    assert not {"torch", "torchvision", "kserve", "mlflow"} & names, names
    assert {"streamlit", "httpx"} <= names


def test_image_requirements_resolve_self_references() -> None:
    serve = _requirements(["serve"])
    assert not any(r.startswith("torch") for r in serve), "the predictor runs on ONNX Runtime, without torch"
    assert any(r.startswith("onnxruntime") for r in serve) and any(r.startswith("kserve") for r in serve)
    assert not any(r.startswith("crackseg") for r in serve)
    trainer = _requirements(["ml", "k8s"])
    assert any(r.startswith("kubernetes") for r in trainer) and any(r.startswith("dvc") for r in trainer)
    assert any(r.startswith("torch") for r in trainer)
    with pytest.raises(SystemExit, match="unknown extra"):
        _requirements(["nope"])


def test_dockerignore_keeps_the_context_small() -> None:
    lines = [
        line
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert lines[0] == "**", "everything is excluded unless listed"
    allowed = {line[1:] for line in lines if line.startswith("!")}
    assert {"pyproject.toml", "README.md", "ml/**", "services/**", "docker/requirements.py"} <= allowed
    assert not any(a.startswith((".venv", "state", "data", ".git")) for a in allowed)


def test_model_dir_argument_points_into_the_context() -> None:
    text = DOCKERFILES["predictor"].read_text()
    assert "ARG MODEL_DIR=models/default" in text
    assert (
        "COPY ${MODEL_DIR} /model" in text and "COPY --from=build /model /opt/crackseg/models/default" in text
    )
    ignore = (REPO / ".dockerignore").read_text()
    assert "!models/default/**" in ignore and "!build/images/test-model/**" in ignore
    assert Path(REPO / "scripts" / "tiny_model.py").is_file()


@pytest.mark.parametrize("script", ["images-build.sh", "docker-base-image.sh", "dockerd.sh", "e2e.sh"])
def test_shell_scripts_parse(script: str) -> None:
    import subprocess

    path = REPO / "scripts" / script
    assert path.stat().st_mode & 0o111, f"{script} is not executable"
    result = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
