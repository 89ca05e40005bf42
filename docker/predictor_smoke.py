"""Build-time check of the predictor image's venv: serve a real photo through every API, in-process.

    python predictor_smoke.py MODEL_DIR PHOTO

Run in the image's build stage, after the venv is installed and pruned (docker/predictor.Dockerfile), it fails the
build when serving needs something the pruning removed. Run with bytecode writing on, it also leaves compiled
bytecode for exactly the modules that serving imports, and for nothing else: the root filesystem is read-only at
run time, so what is not compiled here is compiled in memory at each start, and compiling all of site-packages
(kubernetes' API models, pandas' unused parts) would add over 100 MB of .pyc files to the image that no request
reads.
"""

from __future__ import annotations

import base64
import sys
from pathlib import Path


def main(model_dir: str, photo: str) -> None:
    sys.argv = sys.argv[:1]  # kserve parses sys.argv when imported
    from fastapi.testclient import TestClient

    # The init container's entry point: imported here so its modules get compiled too (it runs no request).
    import services.up.bootstrap  # noqa: F401
    from services.predictor.app import create_app
    from services.predictor.model import CracksegModel
    from services.predictor.settings import Settings

    image = Path(photo).read_bytes()
    b64 = base64.b64encode(image).decode("ascii")
    settings = Settings(model_source=model_dir, runtime="onnx", feedback_dir=Path("/tmp/smoke-feedback"))
    model = CracksegModel(settings)
    model.load()
    checks = {
        "predict": ("post", "/predict", {"files": {"file": ("photo.jpg", image, "image/jpeg")}}),
        "predict overlay": (
            "post",
            "/predict?format=overlay&pixel_size_mm=0.5",
            {"files": {"file": ("photo.jpg", image, "image/jpeg")}},
        ),
        "v1": ("post", "/v1/models/crackseg:predict", {"json": {"instances": [{"b64": b64}]}}),
        "v2": (
            "post",
            "/v2/models/crackseg/infer",
            {"json": {"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": [b64]}]}},
        ),
        "metrics": ("get", "/metrics", {}),
        "ready": ("get", "/v2/health/ready", {}),
        "ping": ("get", "/ping", {}),
        "bad input": ("post", "/predict", {"files": {"file": ("x.jpg", b"not an image", "image/jpeg")}}),
    }
    with TestClient(create_app(model, settings)) as client:
        for name, (method, path, kwargs) in checks.items():
            response = getattr(client, method)(path, **kwargs)
            expected = 415 if name == "bad input" else 200
            if response.status_code != expected:
                raise SystemExit(f"{name}: {path} answered {response.status_code}: {response.text[:300]}")
    model.stop()
    print(f"predictor smoke: {len(checks)} checks passed")


if __name__ == "__main__":
    main(*sys.argv[1:3])
