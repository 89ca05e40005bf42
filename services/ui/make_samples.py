"""Draw the bundled sample photos (``python -m services.ui.make_samples``): synthetic cracks on concrete.

Deterministic (fixed seeds), numpy + Pillow only, so the samples can be regenerated and no dataset file is copied.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

OUT = Path(__file__).with_name("samples")
SAMPLES = {
    "concrete_single_crack.jpg": (1, 3),
    "asphalt_branching.jpg": (2, 7),
    "concrete_crack_network.jpg": (3, 11),
}


def _surface(rng: np.random.Generator, size: tuple[int, int], base: int) -> Image.Image:
    height, width = size
    coarse = rng.normal(0, 18, (height // 8 + 1, width // 8 + 1))
    coarse_img = Image.fromarray(np.clip(coarse + 128, 0, 255).astype(np.uint8)).resize((width, height))
    grain = rng.normal(0, 10, (height, width))
    gray = np.asarray(coarse_img, dtype=np.float32) - 128 + base + grain
    # Aggregate: a few darker and lighter specks, as in concrete and asphalt.
    for _ in range(width * height // 400):
        y, x = rng.integers(0, height), rng.integers(0, width)
        gray[max(0, y - 1) : y + 2, max(0, x - 1) : x + 2] += rng.normal(0, 25)
    rgb = np.stack([gray, gray * 0.98, gray * 0.95], axis=-1)
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(0.6))


def _crack(
    draw: ImageDraw.ImageDraw,
    rng: np.random.Generator,
    start: tuple[float, float],
    angle: float,
    steps: int,
    width: float,
) -> None:
    x, y = start
    for _ in range(steps):
        angle += rng.normal(0, 0.35)
        nx, ny = x + 6 * np.cos(angle), y + 6 * np.sin(angle)
        draw.line([(x, y), (nx, ny)], fill=(35, 32, 30), width=max(1, round(width)))
        width = float(np.clip(width + rng.normal(0, 0.4), 1, 6))
        x, y = nx, ny


def draw_sample(seed: int, branches: int, size: tuple[int, int] = (320, 480)) -> Image.Image:
    rng = np.random.default_rng(seed)
    img = _surface(rng, size, base=int(rng.integers(120, 170)))
    draw = ImageDraw.Draw(img)
    height, width = size
    for _ in range(branches):
        start = (float(rng.uniform(0, width * 0.3)), float(rng.uniform(height * 0.2, height * 0.8)))
        _crack(
            draw, rng, start, float(rng.normal(0, 0.4)), int(rng.integers(40, 80)), float(rng.uniform(1, 4))
        )
    return img.filter(ImageFilter.GaussianBlur(0.5))


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, (seed, branches) in SAMPLES.items():
        draw_sample(seed, branches).save(OUT / name, quality=88)


if __name__ == "__main__":
    main()
