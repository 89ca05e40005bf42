"""docker/prune-venv.sh: what the lean predictor image drops, and the guards that keep it from dropping too much.

No Docker needed: the script runs on a fake venv here, as it does on /opt/venv in the predictor's build stage.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.helpers.procs import REPO

SCRIPT = REPO / "docker" / "prune-venv.sh"


def _venv(tmp_path: Path, extra: dict[str, str] | None = None) -> tuple[Path, Path]:
    venv = tmp_path / "venv"
    site = venv / "lib" / "python3.11" / "site-packages"
    files = {
        "kubernetes/__init__.py": "from kubernetes import client\n",
        "kubernetes/aio/__init__.py": "import asyncio\n",
        "onnxruntime/capi/libonnxruntime.so.1.32.0": "",
        "onnxruntime/capi/onnxruntime_pybind11_state.so": "",
        "uvloop/__init__.py": "",
        "uvloop-0.21.0.dist-info/METADATA": "",
        "uvicorn/loops/uvloop.py": "import uvloop\n",
        "aiohttp/__init__.py": "",
        "aiohttp_retry/client.py": "from aiohttp import ClientSession\n",
        "yarl/__init__.py": "",
        "multidict/__init__.py": "",
        "cryptography/__init__.py": "",
        "jwt/algorithms.py": "try:\n    from cryptography import x509\nexcept ImportError:\n    pass\n",
        "numpy/_core/include/numpy/ndarraytypes.h": "",
        "numpy/tests/test_x.py": "",
        "scipy/ndimage/__init__.py": "",
        "kserve/__init__.py": "import kubernetes\n",
        **(extra or {}),
    }
    for name, text in files.items():
        path = site / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return venv, site


def _prune(venv: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", str(SCRIPT), str(venv)], capture_output=True, text=True, timeout=60)


def test_removes_what_serving_never_loads(tmp_path: Path) -> None:
    venv, site = _venv(tmp_path)
    result = _prune(venv)
    assert result.returncode == 0, result.stderr
    for gone in (
        "kubernetes/aio",
        "onnxruntime/capi/libonnxruntime.so.1.32.0",
        "uvloop",
        "uvloop-0.21.0.dist-info",
        "aiohttp",
        "aiohttp_retry",
        "yarl",
        "multidict",
        "cryptography",
        "numpy/_core/include/numpy/ndarraytypes.h",
        "numpy/tests",
    ):
        assert not (site / gone).exists(), gone
    for kept in (
        "kubernetes/__init__.py",
        "onnxruntime/capi/onnxruntime_pybind11_state.so",
        "scipy/ndimage/__init__.py",
        "kserve/__init__.py",
    ):
        assert (site / kept).exists(), kept


def test_refuses_to_remove_what_something_imports(tmp_path: Path) -> None:
    for importer, name in [
        ("kserve/api/watch.py", "from kubernetes import aio\n"),
        ("kserve/logging.py", "import uvloop\n"),
        ("kserve/storage.py", "from aiohttp import ClientSession\n"),
        ("services/auth.py", "from cryptography.fernet import Fernet\n"),
    ]:
        venv, _ = _venv(tmp_path / importer.replace("/", "_"), {importer: name})
        result = _prune(venv)
        assert result.returncode == 1, importer
        assert "keep it" in result.stderr and importer in result.stderr
