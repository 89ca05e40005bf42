"""Topology-preserving thinning of a binary mask to a one-pixel-wide 8-connected skeleton, in numpy alone.

The predictor and the UI measure cracks on a skeleton; this module gives it without scikit-image (which, with its
dependencies, would be a fifth of the lean predictor image). The algorithm is a directional, subfield-sequential
parallel thinning in the manner of Lee et al. (1994) restricted to 2-D:

* one **iteration** runs four directional sweeps (north, south, east, west border points) so the skeleton stays
  centred;
* a sweep chooses, on the image as it is when the sweep starts, the foreground pixels whose neighbour on that side
  is background, that have at least two foreground 8-neighbours (free line ends stay) and that are **simple**:
  removing one changes neither the 8-connected foreground nor the 4-connected background of its 3×3
  neighbourhood (a 256-entry table computed once below);
* it then deletes them subfield by subfield (the four 2×2 parities), re-checking only that each is still simple:
  points of one subfield are never 8-adjacent, so deleting them together is as safe as deleting them one by one,
  as Lee's sequential re-check does. That is what keeps two-pixel-thick diagonal lines, which fully parallel
  two-pass schemes such as Zhang–Suen's erase.

Iterations repeat until a full iteration deletes nothing. Work is proportional to the foreground pixels (their
neighbourhoods are gathered by flat index), not to the image, so sparse cracks on large photos stay cheap.
"""

from __future__ import annotations

import numpy as np

__all__ = ["SIMPLE", "thin"]

# Neighbour k of pixel (r, c) in this order: N, NE, E, SE, S, SW, W, NW; bit k of a neighbourhood code.
_STEPS = ((-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1))
_NORTH, _EAST, _SOUTH, _WEST = 0, 2, 4, 6


def _components(
    cells: set[tuple[int, int]], steps: tuple[tuple[int, int], ...]
) -> list[set[tuple[int, int]]]:
    out: list[set[tuple[int, int]]] = []
    todo = set(cells)
    while todo:
        seed = todo.pop()
        group, stack = {seed}, [seed]
        while stack:
            r, c = stack.pop()
            for dr, dc in steps:
                q = (r + dr, c + dc)
                if q in todo:
                    todo.discard(q)
                    group.add(q)
                    stack.append(q)
        out.append(group)
    return out


def _is_simple(code: int) -> bool:
    """Whether the centre of a 3×3 neighbourhood (bits: see ``_STEPS``) can be deleted without changing topology.

    Exactly one 8-component of foreground neighbours is 8-adjacent to the centre, and exactly one 4-component of
    background neighbours (4-connected within the 3×3 ring) is 4-adjacent to it.
    """
    ring = [_STEPS[k] for k in range(8)]
    fg = {ring[k] for k in range(8) if code >> k & 1}
    bg = {ring[k] for k in range(8) if not code >> k & 1}
    eight = tuple(_STEPS)
    four = ((-1, 0), (1, 0), (0, -1), (0, 1))
    fg_parts = _components(fg, eight)
    bg_parts = [part for part in _components(bg, four) if part & set(four)]
    return len(fg_parts) == 1 and len(bg_parts) == 1


SIMPLE = np.array([_is_simple(code) for code in range(256)], dtype=bool)


def _codes(around: np.ndarray) -> np.ndarray:
    """Neighbourhood codes (bit k = neighbour k) of ``(n, 8)`` 0/1 rows."""
    return np.packbits(around, axis=1, bitorder="little")[:, 0]


def thin(mask: np.ndarray) -> np.ndarray:
    """The skeleton of an ``(H, W)`` mask (bool or non-zero = foreground) as a bool array of the same shape.

    Topology is kept: the skeleton has the mask's 8-connected components and the same holes. Isolated pixels
    stay, and so do the free ends of lines.
    """
    if mask.ndim != 2:
        raise ValueError(f"expected an (H, W) mask, got shape {mask.shape}")
    image = np.pad(mask.astype(bool, copy=False), 1).astype(np.uint8)
    width = image.shape[1]
    flat = image.ravel()
    offsets = np.array([dr * width + dc for dr, dc in _STEPS], dtype=np.int64)
    pixels = np.flatnonzero(flat)

    def subfield_of(index: np.ndarray) -> np.ndarray:
        return (index // width % 2) * 2 + index % 2

    deleted = True
    while deleted:
        deleted = False
        for side in (_NORTH, _SOUTH, _EAST, _WEST):
            # The sweep's candidates are chosen on the image as it is when the sweep starts (border on this side,
            # not a line end, simple); deletions then re-check only simplicity, subfield by subfield. Re-checking
            # "not a line end" as well would keep every pixel that a neighbour's deletion just turned into an end,
            # and grow a spur from each bump of the outline.
            border = pixels[
                flat[pixels + offsets[side]] == 0
            ]  # one gather for all, eight for the border only
            around = flat[border[:, None] + offsets]
            ok = (around.sum(axis=1) >= 2) & SIMPLE[_codes(around)]
            chosen, chosen_part = border[ok], subfield_of(border[ok])
            for part in range(4):
                candidates = chosen[chosen_part == part]
                if candidates.size == 0:
                    continue
                remove = candidates[SIMPLE[_codes(flat[candidates[:, None] + offsets])]]
                if remove.size:
                    flat[remove] = 0
                    deleted = True
            pixels = pixels[flat[pixels].astype(bool)]
    return image[1:-1, 1:-1].astype(bool)
