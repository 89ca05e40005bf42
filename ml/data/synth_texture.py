"""Pavement textures, distractors and camera effects for :mod:`ml.data.synthetic`.

Everything works on float32 ``(H, W, 3)`` images in the 0–255 range and draws only from the ``rng`` it is given.
Nothing here ever touches the crack mask: distractors are exactly the things a model must learn are not cracks.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage as ndi

Size = tuple[int, int]  # (height, width)


def noise(rng: np.random.Generator, size: Size, scale: float) -> np.ndarray:
    """Smooth noise with features about ``scale`` px across, zero mean and unit standard deviation."""
    h, w = size
    if scale < 2.0:
        field = ndi.gaussian_filter(rng.standard_normal(size).astype(np.float32), scale / 2.0)
    else:
        gh, gw = int(h / scale) + 4, int(w / scale) + 4
        grid = rng.standard_normal((gh, gw)).astype(np.float32)
        # PIL's bicubic resize of a float image is ~50x faster than scipy's zoom and looks the same here.
        big = np.asarray(
            Image.fromarray(grid, mode="F").resize(
                (round(gw * scale), round(gh * scale)), Image.Resampling.BICUBIC
            )
        )
        oy, ox = rng.integers(0, int(scale) + 1, size=2)
        field = big[oy : oy + h, ox : ox + w]
    std = float(field.std())
    return (field - field.mean()) / std if std > 0 else field


def smooth_1d(rng: np.random.Generator, n: int, scale: float) -> np.ndarray:
    """A smooth random curve of ``n`` values in [0, 1] that changes over about ``scale`` samples."""
    knots = rng.random(int(n / scale) + 4)
    return np.clip(np.interp(np.arange(n) / scale, np.arange(len(knots)), knots), 0.0, 1.0)


def _tinted(gray: np.ndarray, tint: np.ndarray) -> np.ndarray:
    return gray[..., None] * tint[None, None, :]


def pavement(rng: np.random.Generator, size: Size) -> np.ndarray:
    """Asphalt (grainy, grey to bluish) or concrete (smoother, lighter, beige) texture."""
    concrete = rng.random() < 0.25
    base = rng.uniform(150, 195) if concrete else rng.uniform(100, 165)
    grain_amp = rng.uniform(4, 8) if concrete else rng.uniform(7, 14)
    gray = base + grain_amp * noise(rng, size, rng.uniform(1.0, 2.0))
    gray += rng.uniform(1, 3.5) * noise(rng, size, rng.uniform(6, 14))
    gray += rng.uniform(2, 8) * noise(rng, size, rng.uniform(50, 160))
    # Aggregate: bright stones and dark pits a few px across, the dominant texture of asphalt photos.
    stones = noise(rng, size, rng.uniform(1.5, 3.0))
    stone_q = rng.uniform(0.78, 0.93) if not concrete else rng.uniform(0.93, 0.99)
    cut = np.quantile(stones, stone_q)
    gray += rng.uniform(15, 45) * np.clip((stones - cut) / 0.8, 0.0, 1.0)
    pits = noise(rng, size, rng.uniform(1.2, 3.0))
    pit_cut = np.quantile(pits, rng.uniform(0.03, 0.12))
    gray -= rng.uniform(10, 35) * np.clip((pit_cut - pits) / 0.8, 0.0, 1.0)
    if concrete:
        tint = np.array([1.0 + rng.uniform(0, 0.06), 1.0 + rng.uniform(0, 0.03), 1.0 - rng.uniform(0, 0.06)])
    else:
        # CrackForest asphalt ranges from neutral grey to slightly blue (B up to ~12 % above R).
        blue = rng.uniform(-0.03, 0.12)
        tint = np.array([1.0 - blue / 2, 1.0, 1.0 + blue / 2])
    image = _tinted(gray, tint)
    # Stones are not all the same colour.
    image += rng.uniform(0.5, 2.0) * np.stack([noise(rng, size, 2.0) for _ in range(3)], axis=-1)
    return image.astype(np.float32)


def _blob(rng: np.random.Generator, size: Size, scale: float, coverage: float, softness: float) -> np.ndarray:
    """A soft random blob region (0–1) covering about ``coverage`` of the image."""
    h, w = size
    field = noise(rng, size, scale)
    # Centre the blob somewhere, so stains are local rather than spread over the picture.
    cy, cx = rng.uniform(0, h), rng.uniform(0, w)
    yy, xx = np.ogrid[:h, :w]
    radial = np.hypot((yy - cy) / h, (xx - cx) / w)
    field = field - 4.0 * radial
    cut = np.quantile(field, 1.0 - coverage)
    return ndi.gaussian_filter((field > cut).astype(np.float32), softness)


def _stain(rng: np.random.Generator, image: np.ndarray, size: Size) -> np.ndarray:
    region = _blob(rng, size, rng.uniform(15, 60), rng.uniform(0.02, 0.2), rng.uniform(1.5, 8))
    gain = rng.uniform(0.7, 1.2)
    colour = np.array([1.0, 1.0, 1.0]) + rng.normal(0, 0.012, 3)
    return image * (1.0 + region[..., None] * (gain * colour - 1.0))


def _oil(rng: np.random.Generator, image: np.ndarray, size: Size) -> np.ndarray:
    region = _blob(rng, size, rng.uniform(8, 30), rng.uniform(0.005, 0.05), rng.uniform(2, 6))
    region *= 0.6 + 0.4 * np.clip(noise(rng, size, 10.0), -1, 1)
    dark = rng.uniform(0.45, 0.75)
    return image * (1.0 - region[..., None] * (1.0 - dark * np.array([1.02, 1.0, 0.95])))


def _line_layer(size: Size, draw_fn: object) -> np.ndarray:
    layer = Image.new("L", (size[1], size[0]), 0)
    draw_fn(ImageDraw.Draw(layer))  # type: ignore[operator]
    return np.asarray(layer, dtype=np.float32) / 255.0


def _straight_band(rng: np.random.Generator, size: Size, width: float) -> np.ndarray:
    """A straight band across the image, mostly along or across the lane, as a 0–1 layer."""
    h, w = size
    angle = rng.choice([0.0, np.pi / 2]) + rng.normal(0, 0.12)
    cy, cx = rng.uniform(0.1, 0.9) * h, rng.uniform(0.1, 0.9) * w
    d = 2 * (h + w)
    dy, dx = np.sin(angle) * d, np.cos(angle) * d
    ends = [(cx - dx, cy - dy), (cx + dx, cy + dy)]
    return _line_layer(size, lambda draw: draw.line(ends, fill=255, width=max(1, round(width))))


def _joint(rng: np.random.Generator, image: np.ndarray, size: Size) -> np.ndarray:
    """A sealed joint or saw cut: straight, uniform, wider than most cracks, filled with dark sealant."""
    band = _straight_band(rng, size, rng.uniform(5, 14))
    band = ndi.gaussian_filter(band, rng.uniform(0.5, 1.2))
    fill = rng.uniform(30, 75) + 6 * noise(rng, size, 2.0)
    return image * (1 - band[..., None]) + fill[..., None] * band[..., None]


def _patch_edge(rng: np.random.Generator, image: np.ndarray, size: Size) -> np.ndarray:
    """A repair patch or slab edge: a straight boundary between two tones, often with a thin dark seam.

    Thin, dark and long like a crack, but straight: the model must learn that straightness means "joint".
    """
    h, w = size
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    angle = rng.choice([0.0, np.pi / 2]) + rng.normal(0, 0.2)
    offset = rng.uniform(0.1, 0.9) * (h if abs(np.sin(angle + np.pi / 2)) > 0.7 else w)
    along = np.cos(angle) * (yy - h / 2) - np.sin(angle) * (xx - w / 2)
    dist = along + (h / 2 if abs(np.cos(angle)) > 0.7 else w / 2) - offset
    side = (dist > 0).astype(np.float32)
    out = image * (1.0 + side[..., None] * (rng.uniform(0.85, 1.15) - 1.0))
    if rng.random() < 0.8:
        half = rng.uniform(0.5, 1.6)
        seam = np.clip(half + 0.5 - np.abs(dist), 0.0, 1.0) * rng.uniform(0.35, 0.7)
        out = out * (1.0 - seam[..., None])
    return out


def _lane_paint(rng: np.random.Generator, image: np.ndarray, size: Size) -> np.ndarray:
    band = _straight_band(rng, size, rng.uniform(18, 70))
    # Worn paint: aggregate shows through where the paint has gone.
    wear = np.clip(
        0.5 * noise(rng, size, 12.0) + 0.3 * noise(rng, size, 2.0) + rng.uniform(0.9, 1.8), 0.0, 1.0
    )
    band = ndi.gaussian_filter(band, 1.0) * wear
    colour = np.array([235, 235, 230.0]) if rng.random() < 0.7 else np.array([230, 195, 60.0])
    paint = colour * rng.uniform(0.8, 1.0) + 10 * noise(rng, size, 1.5)[..., None]
    return image * (1 - band[..., None]) + paint * band[..., None]


def _twigs(rng: np.random.Generator, image: np.ndarray, size: Size) -> np.ndarray:
    """Short dark curved strokes (twigs, hair, debris): thin and dark like cracks, but short and smooth."""
    h, w = size

    def draw(d: ImageDraw.ImageDraw) -> None:
        for _ in range(int(rng.integers(1, 4))):
            y, x = rng.uniform(0, h), rng.uniform(0, w)
            theta, bend = rng.uniform(-np.pi, np.pi), rng.normal(0, 0.04)
            pts = []
            for _ in range(int(rng.integers(10, 35))):
                pts.append((x, y))
                theta += bend
                y, x = y + np.sin(theta), x + np.cos(theta)
            d.line(pts, fill=255, width=int(rng.integers(1, 4)))

    layer = ndi.gaussian_filter(_line_layer(size, draw), 0.6)
    colour = np.array([70, 55, 40.0]) * rng.uniform(0.6, 1.4)
    return image * (1 - layer[..., None]) + colour * layer[..., None]


def _manhole(rng: np.random.Generator, image: np.ndarray, size: Size) -> np.ndarray:
    """A manhole or gully cover: a dark metal disc with a thin bright-and-dark rim, partly in frame."""
    h, w = size
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    cy, cx = rng.uniform(-0.1, 1.1) * h, rng.uniform(-0.1, 1.1) * w
    radius = rng.uniform(0.15, 0.45) * min(h, w)
    r = np.hypot(yy - cy, xx - cx)
    disc = np.clip(radius - r + 0.5, 0.0, 1.0)
    grid = 0.5 + 0.5 * np.sign(np.sin(xx / rng.uniform(4, 9)) * np.sin(yy / rng.uniform(4, 9)))
    metal = rng.uniform(45, 90) + 18 * grid + 6 * noise(rng, size, 3.0)
    out = image * (1 - disc[..., None]) + metal[..., None] * disc[..., None]
    rim = np.exp(-0.5 * np.square((r - radius - rng.uniform(1, 4)) / rng.uniform(0.8, 2.0)))
    return out * (1.0 - rng.uniform(0.3, 0.6) * rim[..., None])


def _kerb(rng: np.random.Generator, image: np.ndarray, size: Size) -> np.ndarray:
    """A kerb or slab edge: a long straight step in brightness with a dark gap line along it."""
    h, w = size
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    angle = rng.choice([0.0, np.pi / 2]) + rng.normal(0, 0.08)
    dist = np.cos(angle) * (yy - rng.uniform(0.2, 0.8) * h) - np.sin(angle) * (xx - rng.uniform(0.2, 0.8) * w)
    step = ndi.gaussian_filter((dist > 0).astype(np.float32), 0.8)
    out = image * (1.0 + step[..., None] * (rng.uniform(1.1, 1.45) - 1.0))
    gap = np.clip(rng.uniform(0.8, 2.5) - np.abs(dist), 0.0, 1.0) * rng.uniform(0.4, 0.75)
    return out * (1.0 - gap[..., None])


def _tyre_marks(rng: np.random.Generator, image: np.ndarray, size: Size) -> np.ndarray:
    """Skid or tyre marks: long, soft-edged, gently curved dark bands, in pairs."""
    h, w = size

    def draw(d: ImageDraw.ImageDraw) -> None:
        theta = rng.choice([0.0, np.pi / 2]) + rng.normal(0, 0.15)
        bend = rng.normal(0, 0.002)
        y, x = rng.uniform(0, h), rng.uniform(0, w)
        gap = rng.uniform(25, 80)
        width = int(rng.integers(8, 25))
        for k in (0, 1):
            py, px = y + k * gap * np.cos(theta), x - k * gap * np.sin(theta)
            pts, t = [], theta
            for _ in range(2 * (h + w)):
                pts.append((px, py))
                t += bend
                py, px = py + np.sin(t), px + np.cos(t)
            d.line(pts, fill=255, width=width)

    layer = ndi.gaussian_filter(_line_layer(size, draw), rng.uniform(2.0, 5.0))
    layer *= 0.6 + 0.4 * np.clip(noise(rng, size, 8.0), -1, 1)
    return image * (1.0 - rng.uniform(0.15, 0.4) * layer[..., None])


def add_distractors(
    rng: np.random.Generator, image: np.ndarray, size: Size, boost: float = 1.0
) -> np.ndarray:
    """Lane paint, stains, oil, joints, patch edges, twigs, manholes, kerbs and tyre marks.

    Args:
        boost: multiplies each distractor's probability (capped at 0.9): > 1 makes hard-negative-rich samples.
    """

    def chance(p: float) -> bool:
        return rng.random() < min(0.9, p * boost)

    if chance(0.12):
        image = _lane_paint(rng, image, size)
    for _ in range(int(rng.choice([0, 1, 2, 3], p=[0.5, 0.3, 0.15, 0.05]))):
        image = _stain(rng, image, size)
    if chance(0.15):
        image = _oil(rng, image, size)
    if chance(0.15):
        image = _joint(rng, image, size)
    if chance(0.15):
        image = _patch_edge(rng, image, size)
    if chance(0.15):
        image = _twigs(rng, image, size)
    if boost > 1.0:
        # The rarer hard negatives appear only in hard-negative mode, so the default pictures (and the starter
        # model's recipe, keyed on GENERATOR_VERSION) stay exactly as they were.
        if chance(0.04):
            image = _manhole(rng, image, size)
        if chance(0.05):
            image = _kerb(rng, image, size)
        if chance(0.05):
            image = _tyre_marks(rng, image, size)
    return image


def _shadow(rng: np.random.Generator, size: Size) -> np.ndarray:
    """A cast shadow (pole, car, person) as a 0–1 layer with a wavy, blurred edge."""
    h, w = size
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    angle = rng.uniform(-np.pi, np.pi)
    offset = rng.uniform(-0.35, 0.35) * (h + w) / 2
    edge = (yy - h / 2) * np.sin(angle) + (xx - w / 2) * np.cos(angle) - offset
    edge += rng.uniform(2, 25) * noise(rng, size, rng.uniform(30, 120))
    if rng.random() < 0.4:
        # A bar-shaped shadow (a pole): two parallel edges.
        width = rng.uniform(20, 120)
        layer = ((edge > 0) & (edge < width)).astype(np.float32)
    else:
        layer = (edge > 0).astype(np.float32)
    return ndi.gaussian_filter(layer, rng.uniform(1.0, 12.0))


def camera(rng: np.random.Generator, image: np.ndarray, size: Size) -> np.ndarray:
    """Shadows, uneven light, exposure, colour cast, gamma, blur and sensor noise."""
    h, w = size
    if rng.random() < 0.2:
        strength = rng.uniform(0.25, 0.6)
        image = image * (1.0 - strength * _shadow(rng, size))[..., None]
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    gy, gx = rng.normal(0, 0.1, 2)
    light = 1.0 + gy * (yy / h - 0.5) + gx * (xx / w - 0.5) + rng.uniform(0.0, 0.08) * noise(rng, size, 150.0)
    if rng.random() < 0.3:
        light *= 1.0 - rng.uniform(0.1, 0.35) * np.hypot(yy / h - 0.5, xx / w - 0.5) ** 2 * 2
    image = image * light[..., None] * rng.uniform(0.85, 1.15)
    image = image * (1.0 + rng.normal(0, 0.02, 3))
    gamma = rng.uniform(0.85, 1.15)
    image = 255.0 * np.power(np.clip(image, 0, 255) / 255.0, gamma)
    if rng.random() < 0.4:
        sigma = rng.uniform(0.3, 0.9)
        image = ndi.gaussian_filter(image, (sigma, sigma, 0))
    image = image + rng.uniform(0.5, 5.0) * rng.standard_normal(image.shape).astype(np.float32)
    return image.astype(np.float32)
