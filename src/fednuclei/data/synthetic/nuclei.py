"""Nuclei of a synthetic tile: wobbly ellipses of three kinds, some touching, none overlapping."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

# Nucleus kinds: lymphocyte-like (small, round, dark), epithelial (large, pale, coarse chromatin),
# spindle (elongated along the stroma fibres).
_KIND_PROBS = (0.3, 0.55, 0.15)


def blob(
    size: int, cy: float, cx: float, a: float, b: float, theta: float, wobble: np.ndarray, phase: np.ndarray
) -> tuple[tuple[slice, slice], np.ndarray, np.ndarray] | None:
    """A wobbly ellipse rasterised in its bounding crop of a (size, size) image.

    ``a``, ``b`` are semi-axes in px, ``theta`` the orientation of ``a``; the boundary radius is
    scaled by ``1 + sum_k wobble[k] cos((k + 2) phi + phase[k])`` (k = 0 would shift it, 1 stretch it).

    Returns:
        the crop's slices, its (h, w) bool inside mask and its (h, w) float32 relative radius
        (0 at the centre, 1 on the boundary), or None when the crop misses the image.
    """
    reach = a * (1.0 + np.abs(wobble).sum()) + 1.0
    y0, y1 = max(int(cy - reach), 0), min(int(cy + reach) + 2, size)
    x0, x1 = max(int(cx - reach), 0), min(int(cx + reach) + 2, size)
    if y0 >= y1 or x0 >= x1:
        return None
    dy = (np.arange(y0, y1, dtype=np.float32) - cy)[:, None]
    dx = (np.arange(x0, x1, dtype=np.float32) - cx)[None, :]
    cos, sin = np.cos(theta), np.sin(theta)
    u = (dx * cos + dy * sin) / a
    v = (dy * cos - dx * sin) / b
    phi = np.arctan2(v, u)
    orders = np.arange(2, 2 + len(wobble), dtype=np.float32)[:, None, None]
    boundary = 1.0 + (wobble[:, None, None] * np.cos(orders * phi + phase[:, None, None])).sum(axis=0)
    relative = np.hypot(u, v) / boundary
    return (slice(y0, y1), slice(x0, x1)), relative <= 1.0, relative.astype(np.float32)


@dataclass(frozen=True)
class _Attempts:
    """Per placement attempt: shape, orientation, wobble, darkness, coarseness, centre, and the
    draws that decide whether it is kept and whether it touches a neighbour."""

    semi_major: np.ndarray
    semi_minor: np.ndarray
    theta: np.ndarray
    wobble: np.ndarray
    phase: np.ndarray
    dark: np.ndarray
    coarse: np.ndarray
    centre: np.ndarray
    keep_draw: np.ndarray
    touch: np.ndarray
    neighbour_draw: np.ndarray
    touch_angle: np.ndarray
    touch_gap: np.ndarray
    equivalent: np.ndarray


def _draw_attempts(rng: np.random.Generator, tries: int, size: int, fibre_angle: float) -> _Attempts:
    """The parameters of every placement attempt, drawn at once: fewer generator calls, and the
    stream stays simple. Fields are arrays of length ``tries`` (``wobble`` and ``phase``: (tries, 3),
    ``centre``: (tries, 2))."""
    kind = rng.choice(3, size=tries, p=_KIND_PROBS)
    semi_major = np.choose(
        kind, [rng.uniform(3.0, 5.5, tries), rng.uniform(5.5, 12.0, tries), rng.uniform(6.0, 12.0, tries)]
    )
    aspect = np.choose(
        kind, [rng.uniform(0.8, 1.0, tries), rng.uniform(0.55, 0.95, tries), rng.uniform(0.25, 0.45, tries)]
    )
    semi_minor = np.maximum(semi_major * aspect, 2.5)
    theta = np.where(kind == 2, fibre_angle + rng.normal(0, 0.25, tries), rng.uniform(0, np.pi, tries))
    wobble = rng.normal(0, 1, (tries, 3)) * np.choose(kind, [0.03, 0.07, 0.05])[:, None] / np.array([1.0, 1.5, 2.0])
    phase = rng.uniform(0, 2 * np.pi, (tries, 3))
    dark = np.choose(
        kind, [rng.uniform(0.95, 1.3, tries), rng.uniform(0.5, 0.85, tries), rng.uniform(0.75, 1.05, tries)]
    )
    coarse = np.choose(kind, [0.15, 0.5, 0.25]).astype(np.float32)
    centre = rng.uniform(0, size, (tries, 2))
    keep_draw = rng.random(tries)
    touch = rng.random(tries) < 0.2
    neighbour_draw = rng.random(tries)
    touch_angle = rng.uniform(0, 2 * np.pi, tries)
    touch_gap = rng.uniform(0.7, 0.95, tries)
    equivalent = np.sqrt(semi_major * semi_minor)
    return _Attempts(semi_major, semi_minor, theta, wobble, phase, dark, coarse,
                     centre, keep_draw, touch, neighbour_draw, touch_angle, touch_gap, equivalent)


def place_nuclei(
    rng: np.random.Generator,
    size: int,
    n_nuclei: int,
    lumen: np.ndarray,
    density: np.ndarray,
    fibre_angle: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Place up to ``n_nuclei`` non-overlapping wobbly ellipses, about a fifth placed touching another.

    A touching nucleus is placed overlapping an earlier one and keeps only the free pixels, so the
    two share an exact border and no pixel. Crowded or tiny tiles may hold fewer nuclei.

    Returns:
        (size, size) int32 labels 1..N in placement order, and per-pixel float32 maps of each
        nucleus's darkness (hematoxylin concentration), chromatin coarseness and relative radius.
    """
    occupied = np.zeros((size, size), np.int32)
    occupied[lumen] = -1  # nuclei avoid lumens like they avoid each other
    darkness = np.zeros((size, size), np.float32)
    coarseness = np.zeros((size, size), np.float32)
    relative_radius = np.zeros((size, size), np.float32)

    attempt = _draw_attempts(rng, 12 * n_nuclei + 20, size, fibre_angle)
    placed: list[tuple[float, float, float]] = []
    misses = 0
    for t in range(len(attempt.centre)):
        if len(placed) == n_nuclei or misses > 300:  # done, or the tile is full
            break
        misses += 1
        touching = bool(attempt.touch[t]) and bool(placed)
        if touching:
            ny, nx, nr = placed[int(attempt.neighbour_draw[t] * len(placed))]
            distance = (nr + attempt.equivalent[t]) * attempt.touch_gap[t]
            angle = attempt.touch_angle[t]
            cy, cx = ny + distance * np.sin(angle), nx + distance * np.cos(angle)
        else:
            cy, cx = attempt.centre[t]
        if not (0 <= cy < size and 0 <= cx < size) or occupied[int(cy), int(cx)] != 0:
            continue
        if not touching and attempt.keep_draw[t] > density[int(cy), int(cx)]:
            continue  # thin out sparse regions so nuclei cluster
        found = blob(size, cy, cx, attempt.semi_major[t], attempt.semi_minor[t], attempt.theta[t], attempt.wobble[t],
                      attempt.phase[t])
        if found is None:
            continue
        crop, inside, relative = found
        region = occupied[crop]
        free = inside & (region == 0)
        n_inside, n_free = int(inside.sum()), int(free.sum())
        if n_free < max(6.0, 0.2 * np.pi * attempt.semi_major[t] * attempt.semi_minor[t]):
            continue  # mostly off the tile: a sliver, not a nucleus
        if n_free < n_inside:
            if not touching or n_free < 0.55 * n_inside:
                continue
            parts, n_parts = ndimage.label(free)
            if n_parts > 1:  # clipping split it: keep the largest piece so the instance stays connected
                free = parts == 1 + int(np.argmax(np.bincount(parts.ravel())[1:]))
        label = len(placed) + 1
        region[free] = label
        darkness[crop][free] = attempt.dark[t]
        coarseness[crop][free] = attempt.coarse[t]
        relative_radius[crop][free] = relative[free]
        placed.append((cy, cx, attempt.equivalent[t]))
        misses = 0
    return np.maximum(occupied, 0), darkness, coarseness, relative_radius
