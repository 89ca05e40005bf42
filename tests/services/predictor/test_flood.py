"""A flood of 40 concurrent 12-megapixel uploads against a real server: it sheds with 503, stays small and live."""

from __future__ import annotations

import io
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.helpers.procs import start_predictor
from tests.services.predictor.samples import make_tiny_model

pytestmark = [pytest.mark.integration, pytest.mark.slow]
CLIENTS, IN_FLIGHT = 40, 4


def _photo_12mp() -> bytes:
    """A smooth 4000×3000 photo-like JPEG (a few MB, like a camera's), with dark crack-like strokes."""
    rng = np.random.default_rng(0)
    small = rng.integers(60, 200, (30, 40, 3), dtype=np.uint8)
    img = np.asarray(Image.fromarray(small).resize((4000, 3000), Image.Resampling.BICUBIC)).copy()
    for _ in range(20):
        y, x = rng.integers(0, 2990), rng.integers(0, 3600)
        img[y : y + 6, x : x + 400] = 20
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


_PINGER = """
import sys, threading, time, httpx
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.readline(), stop.set()), daemon=True).start()
with httpx.Client(base_url=sys.argv[1], timeout=10) as c:
    while not stop.is_set():
        t = time.perf_counter()
        assert c.get("/ping").status_code == 200
        print((time.perf_counter() - t) * 1000, flush=True)
        time.sleep(0.02)
"""


def _start_pinger(url: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _PINGER, url], stdout=subprocess.PIPE, stdin=subprocess.PIPE, text=True
    )


def _stop_pinger(pinger: subprocess.Popen[str]) -> list[float]:
    out, _ = pinger.communicate("stop\n", timeout=60)
    return [float(x) for x in out.split()]


def _pings(url: str, seconds: float) -> list[float]:
    pinger = _start_pinger(url)
    try:
        time.sleep(seconds)
        return _stop_pinger(pinger)
    finally:
        pinger.kill()


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def test_a_flood_of_large_uploads_is_shed_not_fatal(tmp_path: Path) -> None:
    from ml.data.imageio import read_image
    from ml.segmenter import open_segmenter

    model_dir = make_tiny_model(tmp_path / "m", version="1")
    body = _photo_12mp()
    env = {
        "CRACKSEG_FEEDBACK_DIR": str(tmp_path / "feedback"),
        "CRACKSEG_MAX_INFLIGHT": str(IN_FLIGHT),
        "CRACKSEG_TILE_BATCH": "2",
        "OMP_WAIT_POLICY": "PASSIVE",
    }
    url, proc = start_predictor(model_dir, tmp_path / "server.log", env)
    # /ping is timed from another process: 40 upload threads here would hold the GIL and inflate the timings.
    # First on the idle server: what this (shared) machine adds by itself, whatever the predictor does.
    idle = _pings(url, seconds=5)
    pinger = _start_pinger(url)

    def upload(_: int) -> httpx.Response:
        with httpx.Client(base_url=url, timeout=600) as c:
            return c.post(
                "/predict", params={"format": "png"}, files={"file": ("big.jpg", body, "image/jpeg")}
            )

    try:
        with ThreadPoolExecutor(CLIENTS) as pool:
            responses = list(pool.map(upload, range(CLIENTS)))
        rss = _peak_rss_mib(proc.pid)
        pings = _stop_pinger(pinger)
    finally:
        pinger.kill()
        proc.stop()

    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {200, 503}, statuses
    assert IN_FLIGHT <= statuses.count(200) < CLIENTS  # some were served, the rest shed
    assert all(r.headers["retry-after"] for r in responses if r.status_code == 503)
    expected = open_segmenter(model_dir, "onnx", threads=1).predict_mask(read_image(body))
    for r in responses:
        if r.status_code == 200:
            mask = np.asarray(Image.open(io.BytesIO(r.content))) > 0
            np.testing.assert_array_equal(mask, expected)
    assert rss <= 2048, f"peak RSS {rss:.0f} MiB"
    # The goal is p99 < 50 ms on a quiet machine; on a shared one the idle server's own p99 is added.
    p99, idle_p99 = float(np.percentile(pings, 99)), float(np.percentile(idle, 99))
    assert len(pings) > 20 and p99 < 50.0 + max(0.0, idle_p99 - 5.0), (
        f"/ping p99 {p99:.1f} ms under the flood, {idle_p99:.1f} ms idle"
    )
