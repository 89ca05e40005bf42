"""The hostile-input corpus: each case is a request that must get a clear 4xx and write nothing.

Used by the in-process tests (TestClient) and by the integration test against the real server process.
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from tests.services.predictor.samples import jpeg_bytes, png_bytes


@dataclass
class Case:
    id: str
    method: str
    path: str
    status: int
    files: dict[str, Any] | None = None
    data: dict[str, str] | None = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)


def _bomb_png(width: int, height: int) -> bytes:
    """A valid PNG header claiming a huge size, with a tiny compressed body (a decompression bomb)."""
    raw = zlib.compress(b"\x00" * 1024)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


def _gif_animated() -> bytes:
    frames = [Image.new("P", (40, 30), i) for i in (1, 50, 100)]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    return buf.getvalue()


def hostile_cases(max_body: int, max_side: int) -> list[Case]:
    jpg = jpeg_bytes(96, 64)
    png = png_bytes(np.zeros((64, 96, 3), dtype=np.uint8))
    good_mask = png_bytes(np.zeros((64, 96), dtype=np.uint8))
    wrong_size_mask = png_bytes(np.zeros((32, 48), dtype=np.uint8))
    grey_mask = png_bytes(np.arange(64 * 96, dtype=np.uint32).reshape(64, 96).astype(np.uint8))
    rgb_mask_levels = png_bytes(np.dstack([np.full((64, 96), v, np.uint8) for v in (10, 20, 30)]))
    big_side = jpeg_bytes(max_side + 8, 4)
    f = lambda b, name="photo.jpg", ct="image/jpeg": {"file": (name, b, ct)}  # noqa: E731
    cases = [
        Case("empty-file", "POST", "/predict", 400, files=f(b"")),
        Case("text-file", "POST", "/predict", 415, files=f(b"hello, I am not an image")),
        Case("html-as-jpeg", "POST", "/predict", 415, files=f(b"<html><body>x</body></html>", "x.jpg")),
        Case(
            "pdf",
            "POST",
            "/predict",
            415,
            files=f(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj", "x.pdf"),
        ),
        Case("zip", "POST", "/predict", 415, files=f(b"PK\x03\x04" + b"\x00" * 40, "x.zip")),
        Case("truncated-jpeg", "POST", "/predict", 400, files=f(jpg[: len(jpg) // 2])),
        Case("truncated-png", "POST", "/predict", 400, files=f(png[: len(png) // 2], "x.png")),
        Case("jpeg-magic-only", "POST", "/predict", 400, files=f(b"\xff\xd8\xff\xe0" + b"\x00" * 20)),
        Case(
            "png-garbage-body", "POST", "/predict", 400, files=f(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "x.png")
        ),
        Case("decompression-bomb", "POST", "/predict", 413, files=f(_bomb_png(60_000, 60_000), "bomb.png")),
        Case("too-many-pixels", "POST", "/predict", 413, files=f(_bomb_png(1500, 1500), "big.png")),
        Case("side-over-limit", "POST", "/predict", 413, files=f(big_side)),
        Case(
            "one-pixel", "POST", "/predict", 400, files=f(png_bytes(np.zeros((1, 1, 3), np.uint8)), "1.png")
        ),
        Case(
            "body-over-limit", "POST", "/predict", 413, files=f(b"\xff\xd8\xff" + b"\x00" * (max_body + 10))
        ),
        Case("missing-file-field", "POST", "/predict", 422, data={"other": "x"}),
        Case("no-body", "POST", "/predict", 422),
        Case(
            "json-instead-of-multipart",
            "POST",
            "/predict",
            422,
            content=b'{"file": "x"}',
            headers={"content-type": "application/json"},
        ),
        Case("bad-format-param", "POST", "/predict?format=gif", 422, files=f(jpg)),
        Case("wrong-method-predict", "GET", "/predict", 405),
        Case("wrong-method-ping", "DELETE", "/ping", 405),
        Case("unknown-verdict", "POST", "/save-for-retrain", 400, files=f(jpg), data={"verdict": "maybe"}),
        Case(
            "verdict-injection",
            "POST",
            "/save-for-retrain",
            400,
            files=f(jpg),
            data={"verdict": "correct\n../../etc"},
        ),
        Case(
            "mask-wrong-size",
            "POST",
            "/save-for-retrain",
            400,
            files={**f(jpg), "mask": ("m.png", wrong_size_mask, "image/png")},
        ),
        Case(
            "mask-not-binary",
            "POST",
            "/save-for-retrain",
            400,
            files={**f(jpg), "mask": ("m.png", grey_mask, "image/png")},
        ),
        Case(
            "mask-rgb-levels",
            "POST",
            "/save-for-retrain",
            400,
            files={**f(jpg), "mask": ("m.png", rgb_mask_levels, "image/png")},
        ),
        Case(
            "mask-is-jpeg",
            "POST",
            "/save-for-retrain",
            400,
            files={**f(jpg), "mask": ("m.png", jpg, "image/png")},
        ),
        Case(
            "mask-empty",
            "POST",
            "/save-for-retrain",
            400,
            files={**f(jpg), "mask": ("m.png", b"", "image/png")},
        ),
        Case(
            "mask-text",
            "POST",
            "/save-for-retrain",
            415,
            files={**f(jpg), "mask": ("m.png", b"not a mask", "image/png")},
        ),
        Case(
            "save-not-an-image",
            "POST",
            "/save-for-retrain",
            415,
            files={**f(b"MZ\x90\x00 executable", "../../../etc/passwd")},
            data={"verdict": "correct"},
        ),
        Case(
            "save-truncated-with-good-mask",
            "POST",
            "/save-for-retrain",
            400,
            files={**f(jpg[:300]), "mask": ("m.png", good_mask, "image/png")},
        ),
        Case(
            "save-comment-too-long",
            "POST",
            "/save-for-retrain",
            400,
            files=f(jpg),
            data={"comment": "x" * 3000},
        ),
        Case("save-missing-file", "POST", "/save-for-retrain", 422, data={"verdict": "correct"}),
        Case(
            "path-traversal-name",
            "POST",
            "/save-for-retrain",
            415,
            files=f(b"../../etc/shadow", "../../../../etc/cron.d/x"),
        ),
        Case("absurd-filename", "POST", "/save-for-retrain", 400, files=f(b"", "A" * 5000 + "\x00.jpg")),
        Case(
            "v1-not-base64",
            "POST",
            "/v1/models/crackseg:predict",
            400,
            content=b'{"instances": [{"b64": "%%%"}]}',
            headers={"content-type": "application/json"},
        ),
        Case(
            "v1-no-instances",
            "POST",
            "/v1/models/crackseg:predict",
            400,
            content=b'{"foo": 1}',
            headers={"content-type": "application/json"},
        ),
        Case(
            "v1-broken-json",
            "POST",
            "/v1/models/crackseg:predict",
            400,
            content=b'{"instances": [',
            headers={"content-type": "application/json"},
        ),
        Case(
            "v2-wrong-datatype",
            "POST",
            "/v2/models/crackseg/infer",
            400,
            content=b'{"inputs": [{"name": "image", "shape": [1], "datatype": "FP32", "data": [1.0]}]}',
            headers={"content-type": "application/json"},
        ),
        Case(
            "v2-two-images",
            "POST",
            "/v2/models/crackseg/infer",
            400,
            content=b'{"inputs": [{"name": "image", "shape": [2], "datatype": "BYTES", "data": ["a", "b"]}]}',
            headers={"content-type": "application/json"},
        ),
        Case(
            "v2-bad-binary-header",
            "POST",
            "/v2/models/crackseg/infer",
            400,
            content=b"{}garbage",
            headers={"content-type": "application/octet-stream", "inference-header-content-length": "999"},
        ),
        Case(
            "v2-unknown-model",
            "POST",
            "/v2/models/nope/infer",
            404,
            content=b'{"inputs": []}',
            headers={"content-type": "application/json"},
        ),
        Case(
            "load-bad-version",
            "POST",
            "/v2/repository/models/crackseg/load",
            422,
            content=b'{"version": "../1"}',
            headers={"content-type": "application/json"},
        ),
        Case(
            "load-missing-dir",
            "POST",
            "/v2/repository/models/crackseg/load",
            422,
            content=b'{"path": "/nonexistent/model"}',
            headers={"content-type": "application/json"},
        ),
        Case(
            "load-unknown-field",
            "POST",
            "/v2/repository/models/crackseg/load",
            400,
            content=b'{"weights": "http://evil"}',
            headers={"content-type": "application/json"},
        ),
    ]
    return cases


def animated_gif() -> bytes:
    return _gif_animated()
