"""Per-crack geometry of a binary crack mask: length along the skeleton, width, branch points, orientation.

Pure numpy + scipy (no torch, no scikit-image): the predictor, the batch command and the UI (which re-thresholds
the probability map in the browser session) all measure with this one module.

How each number is defined (all in pixels of the mask; :mod:`services.common.crackstats` converts to mm):

- **crack**: one 8-connected region of the mask whose length is at least ``min_length_px`` (shorter specks
  are noise). Ids count from 1, longest first.
- **length**: the skeleton (:func:`services.common.thinning.thin`, Lee's thinning) measured pixel by pixel along its local
  direction: a skeleton pixel whose tangent makes angle θ with the pixel grid stands for
  ``1 / max(|cos θ|, |sin θ|)`` pixels of length, so a straight run at any angle measures its true length instead
  of the 8-chain's up to 8 % over-count, and a 2×2 staircase corner is not counted twice. The tangent comes from
  the second moments of the skeleton within ``TANGENT_RADIUS`` pixels. Skeletonization stops about half a width
  short of each free end; each end point gives that back (its distance to the background, less the one pixel it
  already counts). Skeletons come from Lee's method: Zhang's erases two-pixel-thick diagonal lines.
- **width** at a skeleton pixel ``p``: ``d(p) + max d(q)`` over the 8-neighbours ``q`` of ``p`` that are not on
  the skeleton, where ``d`` is the Euclidean distance to the nearest background pixel centre. That is
  "2 × distance" with the half-pixel convention made exact: an odd width ``2k+1`` has one centre pixel
  (``d = k+1``) whose off-skeleton neighbours have ``d = k``; an even width ``2k`` has two centre pixels with
  ``d = k`` each. Both give the drawn width; a one-pixel line measures 1. Across an oblique edge the nearest
  background centre lies less than half a pixel outside, so oblique widths read up to ~0.5 px low.
- **max width**: the largest skeleton width. **mean width**: area / length, which holds at every angle (the
  skeleton widths are kept for the histogram).
- **branch points**: 8-connected clusters of skeleton pixels with three or more skeleton neighbours.
- **orientation**: the principal axis of the crack's skeleton pixels, as an angle from the image's x axis
  (0–180°). The class assumes the photo's vertical axis runs along the road (direction of travel):
  ``transverse`` within ``AXIS_TOLERANCE_DEG`` of horizontal, ``longitudinal`` within it of vertical, else
  ``diagonal``; a crack with ``NETWORK_BRANCH_POINTS`` or more branch points, or enclosing background (a closed
  cell), is ``network``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from scipy import ndimage

from services.common.thinning import thin

Orientation = Literal["longitudinal", "transverse", "diagonal", "network"]
ORIENTATIONS: tuple[str, ...] = ("longitudinal", "transverse", "diagonal", "network")
MIN_LENGTH_PX = 10.0
TANGENT_RADIUS = 4
AXIS_TOLERANCE_DEG = 30.0
NETWORK_BRANCH_POINTS = 2

_EIGHT = np.ones((3, 3), dtype=bool)
_OFFSETS = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx]


@dataclass(frozen=True)
class Crack:
    """One crack. ``bbox`` is ``(x0, y0, x1, y1)`` in image pixels, ``x1``/``y1`` exclusive."""

    id: int
    length_px: float
    mean_width_px: float
    max_width_px: float
    area_px: int
    n_branch_points: int
    angle_deg: float
    orientation: Orientation
    bbox: tuple[int, int, int, int]


@dataclass(frozen=True)
class Measurement:
    """Everything measured on one mask. ``widths_px`` holds the width at every skeleton pixel of every crack
    (for a histogram); ``labels`` is ``(H, W) int32``, 0 = background or noise, ``k`` = crack ``k``."""

    height: int
    width: int
    crack_pixels: int
    cracks: tuple[Crack, ...]
    widths_px: np.ndarray = field(repr=False)
    labels: np.ndarray = field(repr=False)

    @property
    def crack_ratio(self) -> float:
        return self.crack_pixels / float(self.height * self.width)

    @property
    def total_length_px(self) -> float:
        return float(sum(c.length_px for c in self.cracks))

    @property
    def max_width_px(self) -> float:
        return max((c.max_width_px for c in self.cracks), default=0.0)

    @property
    def mean_width_px(self) -> float:
        """Length-weighted over all cracks."""
        total = self.total_length_px
        return sum(c.mean_width_px * c.length_px for c in self.cracks) / total if total else 0.0

    @property
    def n_branch_points(self) -> int:
        return sum(c.n_branch_points for c in self.cracks)


def measure(mask: np.ndarray, min_length_px: float = MIN_LENGTH_PX) -> Measurement:
    """Measure an ``(H, W)`` crack mask (bool, or non-zero = crack)."""
    if mask.ndim != 2:
        raise ValueError(f"expected an (H, W) mask, got shape {mask.shape}")
    if min_length_px < 0:
        raise ValueError(f"min_length_px must be >= 0, got {min_length_px}")
    mask = mask.astype(bool, copy=False)
    h, w = mask.shape
    labels_full = np.zeros((h, w), dtype=np.int32)
    empty = Measurement(h, w, int(np.count_nonzero(mask)), (), np.zeros(0, np.float32), labels_full)
    if not mask.any():
        return empty
    # Work on the cracks' bounding box plus one pixel of background: thin sparse cracks cost a fraction of the
    # image, and the padding makes the image border count as background for the distance transform.
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    y0, x0 = int(rows[0]), int(cols[0])
    crop = np.pad(mask[y0 : rows[-1] + 1, x0 : cols[-1] + 1], 1)
    skeleton = thin(crop)
    distance = ndimage.distance_transform_edt(crop).astype(np.float32)
    neighbours = _neighbour_count(skeleton)
    theta = _tangent(skeleton)
    weights = _length_weights(skeleton, theta)
    widths = _widths(skeleton, distance, theta)
    ends = skeleton & (neighbours == 1)
    junctions, _ = ndimage.label(skeleton & (neighbours >= 3), structure=_EIGHT)
    components, n = ndimage.label(crop, structure=_EIGHT)

    # Per-component sums by bincount over the skeleton pixels: no Python loop over pixels.
    sk_labels = components[skeleton]
    sk_weights = weights[skeleton]
    length = np.bincount(sk_labels, weights=sk_weights, minlength=n + 1)
    length += np.bincount(components[ends], weights=distance[ends] - 1.0, minlength=n + 1)
    weight_sum = np.bincount(sk_labels, weights=sk_weights, minlength=n + 1)
    area = np.bincount(components.ravel(), minlength=n + 1)

    kept = [k for k in range(1, n + 1) if length[k] >= min_length_px and weight_sum[k] > 0]
    kept.sort(key=lambda k: -length[k])
    slices = ndimage.find_objects(components)
    cracks: list[Crack] = []
    remap = np.zeros(n + 1, dtype=np.int32)
    for new_id, k in enumerate(kept, start=1):
        remap[k] = new_id
        sl = slices[k - 1]
        assert sl is not None  # every label 1..n has pixels
        own = components[sl] == k
        own_skeleton = skeleton[sl] & own
        ys, xs = np.nonzero(own_skeleton)
        branch_points = int(np.unique(junctions[sl][own_skeleton & (junctions[sl] > 0)]).size)
        angle = _principal_angle(ys, xs)
        k_widths = widths[sl][own_skeleton]
        cracks.append(
            Crack(
                id=new_id,
                length_px=float(length[k]),
                mean_width_px=float(area[k] / length[k]),
                max_width_px=float(k_widths.max()),
                area_px=int(area[k]),
                n_branch_points=branch_points,
                angle_deg=angle,
                orientation=_orientation(angle, branch_points, _encloses_background(own)),
                # -1: the crop's padding; + the crop's origin in the image.
                bbox=(sl[1].start - 1 + x0, sl[0].start - 1 + y0, sl[1].stop - 1 + x0, sl[0].stop - 1 + y0),
            )
        )
    kept_skeleton = skeleton & (remap[components] > 0)
    crop_labels = remap[components][1:-1, 1:-1]
    labels_full[y0 : y0 + crop_labels.shape[0], x0 : x0 + crop_labels.shape[1]] = crop_labels
    return Measurement(
        height=h,
        width=w,
        crack_pixels=empty.crack_pixels,
        cracks=tuple(cracks),
        widths_px=widths[kept_skeleton],
        labels=labels_full,
    )


def _shifted(a: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``a`` shifted so that ``out[y, x] == a[y + dy, x + dx]`` (zero outside)."""
    h, w = a.shape
    padded = np.pad(a, 1)
    return padded[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]


def _neighbour_count(skeleton: np.ndarray) -> np.ndarray:
    s = skeleton.astype(np.uint8)
    return sum((_shifted(s, dy, dx) for dy, dx in _OFFSETS), np.zeros_like(s))


def _tangent(skeleton: np.ndarray) -> np.ndarray:
    """Local tangent angle θ at each skeleton pixel (radians; ``(dy, dx) = (sin θ, cos θ)``), 0 elsewhere.

    From the second moments of the skeleton pixels within ``TANGENT_RADIUS``; computed at the skeleton pixels
    only (a few per cent of the image), one window offset at a time."""
    r = TANGENT_RADIUS
    ys, xs = np.nonzero(skeleton)
    padded = np.pad(skeleton, r)
    cyy = np.zeros(ys.size, np.float32)
    cxx = np.zeros(ys.size, np.float32)
    cxy = np.zeros(ys.size, np.float32)
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            hit = padded[ys + r + dy, xs + r + dx]
            cyy[hit] += dy * dy
            cxx[hit] += dx * dx
            cxy[hit] += dy * dx
    theta = np.zeros(skeleton.shape, np.float32)
    theta[ys, xs] = 0.5 * np.arctan2(2.0 * cxy, cxx - cyy)
    return theta


def _length_weights(skeleton: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Length each skeleton pixel stands for, ``1 / max(|cos θ|, |sin θ|)`` for its local tangent angle θ.

    An isolated pixel has θ = 0 (no moments) and so stands for one pixel."""
    weights = 1.0 / np.maximum(np.abs(np.cos(theta)), np.abs(np.sin(theta)))
    return np.where(skeleton, weights, 0.0).astype(np.float32)


def _widths(skeleton: np.ndarray, distance: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Width at each skeleton pixel: ``d(p) + max(d(p + n), d(p − n))`` for the unit normal ``n`` (docstring)."""
    ys, xs = np.nonzero(skeleton)
    t = theta[ys, xs]
    ny, nx = np.cos(t), -np.sin(t)  # the tangent is (dy, dx) = (sin θ, cos θ)
    across = [
        ndimage.map_coordinates(distance, [ys + s * ny, xs + s * nx], order=1, mode="constant")
        for s in (1.0, -1.0)
    ]
    out = np.zeros_like(distance)
    out[ys, xs] = distance[ys, xs] + np.maximum(across[0], across[1])
    return out


def _principal_angle(ys: np.ndarray, xs: np.ndarray) -> float:
    """Angle of the principal axis of the points from the x axis, in degrees within [0, 180)."""
    if ys.size < 2:
        return 0.0
    y = ys - ys.mean()
    x = xs - xs.mean()
    # Image rows grow downwards; negate y so angles read as on a map (counter-clockwise from the x axis).
    theta = 0.5 * math.atan2(-2.0 * float((x * y).mean()), float((x * x).mean() - (y * y).mean()))
    return round(math.degrees(theta) % 180.0, 2)


def _orientation(angle: float, branch_points: int, closed: bool) -> Orientation:
    if branch_points >= NETWORK_BRANCH_POINTS or closed:
        return "network"
    from_horizontal = min(angle, 180.0 - angle)
    if from_horizontal <= AXIS_TOLERANCE_DEG:
        return "transverse"
    if from_horizontal >= 90.0 - AXIS_TOLERANCE_DEG:
        return "longitudinal"
    return "diagonal"


def _encloses_background(own: np.ndarray) -> bool:
    """True when the crack surrounds background (a closed cell): a hole not connected to the box's border."""
    _, n = ndimage.label(np.pad(~own, 1, constant_values=True))
    return n > 1
