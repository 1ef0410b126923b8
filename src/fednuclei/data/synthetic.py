"""Seeded synthetic H&E-like tiles with exact nuclei instance masks.

The project's offline default data source and the fixture of fast tests. A tile is rendered from
two stain concentration maps (hematoxylin, eosin) by Beer–Lambert mixing: pink eosin stroma with
fibres and a few white lumen-like gaps, purple hematoxylin nuclei of varied size, shape and density,
some exactly touching. Each simulated hospital stains with its own perturbed stain vectors and
strengths, so hospitals differ in colour the way real sites do, while tiles of one hospital share
a stain up to a small per-tile jitter.

Everything is drawn from seeded ``numpy`` generators: the same arguments give identical arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import scipy.fft
from scipy import ndimage
from skimage import draw

from fednuclei.data.tiles import Tile, annotated_tile

# Reference stain vectors (unit optical density over R, G, B) as Macenko estimates them on real
# H&E slides; Ruifrok's skimage ``hed2rgb`` vectors render a too-magenta eosin.
REFERENCE_HEMATOXYLIN = (0.5626, 0.7201, 0.4062)
REFERENCE_EOSIN = (0.2159, 0.8012, 0.5581)

# Separate seed streams, so a hospital's stain never shares random numbers with its tiles, and
# inking a hospital leaves every tile's rendering as it was.
_STAIN_STREAM = 0
_TILE_STREAM = 1
_INK_STREAM = 2

# Tissue-marking ink as it shows after staining: blue-black, letting a quarter of the light through.
_INK_RGB = np.array([20.0, 25.0, 35.0], np.float32)
_INK_OPACITY = 0.75

# Nucleus kinds: lymphocyte-like (small, round, dark), epithelial (large, pale, coarse chromatin),
# spindle (elongated along the stroma fibres).
_KIND_PROBS = (0.3, 0.55, 0.15)


@dataclass(frozen=True)
class StainProfile:
    """The Beer–Lambert stain of one hospital.

    Attributes:
        hematoxylin, eosin: unit optical-density vectors over (R, G, B).
        hematoxylin_strength, eosin_strength: multipliers of the stain concentrations (1 = reference).
        illumination: white level per channel in (0, 1], the scanner's light.
    """

    hematoxylin: tuple[float, float, float] = REFERENCE_HEMATOXYLIN
    eosin: tuple[float, float, float] = REFERENCE_EOSIN
    hematoxylin_strength: float = 1.0
    eosin_strength: float = 1.0
    illumination: tuple[float, float, float] = (1.0, 1.0, 1.0)

    def render(self, hematoxylin: np.ndarray, eosin: np.ndarray) -> np.ndarray:
        """RGB from concentration maps.

        Args:
            hematoxylin, eosin: (H, W) float concentrations, >= 0, in optical density units (base 10).

        Returns:
            (H, W, 3) float32 intensities in [0, 255].
        """
        h = np.asarray(self.hematoxylin, np.float32) * np.float32(self.hematoxylin_strength)
        e = np.asarray(self.eosin, np.float32) * np.float32(self.eosin_strength)
        density = hematoxylin[..., None] * h + eosin[..., None] * e
        white = 255.0 * np.asarray(self.illumination, np.float32)
        return white * np.exp(np.float32(-np.log(10.0)) * density)


def hospital_stain(seed: int, hospital: int) -> StainProfile:
    """The stain of simulated hospital ``hospital``, drawn from ``seed`` and the hospital index only.

    Vectors are the reference ones perturbed by ~0.04 (at most 0.08) per channel and renormalised;
    strengths vary by roughly +-35 %, illumination by up to 8 % per channel.
    """
    rng = np.random.default_rng([seed, _STAIN_STREAM, hospital])

    def perturb(vector: tuple[float, float, float]) -> tuple[float, float, float]:
        # Clipped at 2 sd: a larger shift could turn hematoxylin red and nuclei no longer purple.
        v = np.asarray(vector) + np.clip(rng.normal(0.0, 0.04, 3), -0.08, 0.08)
        return tuple(float(x) for x in v / np.linalg.norm(v))

    return StainProfile(
        hematoxylin=perturb(REFERENCE_HEMATOXYLIN),
        eosin=perturb(REFERENCE_EOSIN),
        hematoxylin_strength=float(rng.uniform(0.7, 1.35)),
        eosin_strength=float(rng.uniform(0.65, 1.4)),
        illumination=tuple(float(x) for x in rng.uniform(0.92, 1.0, 3)),
    )


def _smooth_noise(
    rng: np.random.Generator, size: int, scales: list[float | tuple[float, float]], angle: float = 0.0
) -> np.ndarray:
    """(len(scales), size, size) float32 Gaussian-filtered white noise, zero mean, about unit std.

    Args:
        scales: per field, the filter's sigma in px, or an ``(along, across)`` pair for streaks
            running along ``angle`` (radians from the x axis, y pointing down).

    The noise is drawn directly in Fourier space and only where the filter passes anything, so a
    smooth field costs a few random numbers instead of size**2; the fields tile periodically.
    """
    sigmas = [(float(s), float(s)) if np.isscalar(s) else (float(s[0]), float(s[1])) for s in scales]
    fy = scipy.fft.fftfreq(size).astype(np.float32)[:, None]
    fx = scipy.fft.rfftfreq(size).astype(np.float32)[None, :]
    k = np.float32(-2.0 * np.pi**2)
    transfer = np.empty((len(sigmas), size, fx.shape[1]), np.float32)
    for i, (sigma_along, sigma_across) in enumerate(sigmas):
        if sigma_along == sigma_across:  # isotropic: separable, two short exps instead of size**2/2
            transfer[i] = np.exp(k * sigma_along**2 * fy**2) * np.exp(k * sigma_along**2 * fx**2)
        else:
            along = fx * np.cos(angle) + fy * np.sin(angle)
            across = fy * np.cos(angle) - fx * np.sin(angle)
            transfer[i] = np.exp(k * (sigma_along**2 * along**2 + sigma_across**2 * across**2))
    transfer[:, 0, 0] = 0.0  # no DC term: zero mean
    passed = transfer > 1e-6
    draws = rng.standard_normal((2, int(passed.sum())), dtype=np.float32)
    spectrum = np.zeros(transfer.shape, np.complex64)
    spectrum[passed] = (draws[0] + 1j * draws[1]) * transfer[passed]
    # Parseval gives the std without the inverse transform; rfft columns other than the first
    # (and the Nyquist one of an even size) stand for two conjugate bins.
    weight = np.full(transfer.shape[-1], 2.0, np.float32)
    weight[0] = 1.0
    if size % 2 == 0:
        weight[-1] = 1.0
    std = np.sqrt((np.abs(spectrum) ** 2 * weight).sum(axis=(1, 2))) / size**2
    spectrum /= std[:, None, None] + 1e-12
    return scipy.fft.irfft2(spectrum, s=(size, size)).astype(np.float32, copy=False)


def _blob(
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


def _lumen_mask(rng: np.random.Generator, size: int) -> np.ndarray:
    """(size, size) bool: zero to two irregular white gaps, each a few percent of the tile."""
    mask = np.zeros((size, size), bool)
    for _ in range(rng.choice(3, p=(0.45, 0.4, 0.15))):
        a = rng.uniform(0.05, 0.12) * size
        b = a * rng.uniform(0.4, 0.9)
        cy, cx = rng.uniform(0, size, 2)
        theta = rng.uniform(0, np.pi)
        found = _blob(size, cy, cx, a, b, theta, rng.normal(0, 0.08, 4), rng.uniform(0, 2 * np.pi, 4))
        if found is not None:
            crop, inside, _ = found
            mask[crop] |= inside
    return mask


def _place_nuclei(
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

    # Draw every attempt's parameters at once: fewer generator calls, and the stream stays simple.
    tries = 12 * n_nuclei + 20
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

    placed: list[tuple[float, float, float]] = []
    misses = 0
    for t in range(tries):
        if len(placed) == n_nuclei or misses > 300:  # done, or the tile is full
            break
        misses += 1
        touching = bool(touch[t]) and bool(placed)
        if touching:
            ny, nx, nr = placed[int(neighbour_draw[t] * len(placed))]
            distance = (nr + equivalent[t]) * touch_gap[t]
            cy, cx = ny + distance * np.sin(touch_angle[t]), nx + distance * np.cos(touch_angle[t])
        else:
            cy, cx = centre[t]
        if not (0 <= cy < size and 0 <= cx < size) or occupied[int(cy), int(cx)] != 0:
            continue
        if not touching and keep_draw[t] > density[int(cy), int(cx)]:
            continue  # thin out sparse regions so nuclei cluster
        found = _blob(size, cy, cx, semi_major[t], semi_minor[t], theta[t], wobble[t], phase[t])
        if found is None:
            continue
        crop, inside, relative = found
        region = occupied[crop]
        free = inside & (region == 0)
        n_inside, n_free = int(inside.sum()), int(free.sum())
        if n_free < max(6.0, 0.2 * np.pi * semi_major[t] * semi_minor[t]):
            continue  # mostly off the tile: a sliver, not a nucleus
        if n_free < n_inside:
            if not touching or n_free < 0.55 * n_inside:
                continue
            parts, n_parts = ndimage.label(free)
            if n_parts > 1:  # clipping split it: keep the largest piece so the instance stays connected
                free = parts == 1 + int(np.argmax(np.bincount(parts.ravel())[1:]))
        label = len(placed) + 1
        region[free] = label
        darkness[crop][free] = dark[t]
        coarseness[crop][free] = coarse[t]
        relative_radius[crop][free] = relative[free]
        placed.append((cy, cx, equivalent[t]))
        misses = 0
    return np.maximum(occupied, 0), darkness, coarseness, relative_radius


def synthetic_tile(
    rng: np.random.Generator, size: int, stain: StainProfile, n_nuclei: int
) -> tuple[np.ndarray, np.ndarray]:
    """Render one H&E-like tile.

    Args:
        rng: the generator every random choice is drawn from.
        size: side in px (>= 32); nuclei radii (3-12 px) do not scale with it.
        stain: the hospital's stain, jittered by a few percent for this tile.
        n_nuclei: nuclei to place (>= 0); fewer when the tile cannot hold them.

    Returns:
        image: (size, size, 3) uint8 RGB.
        instances: (size, size) int32, 0 = background, nuclei labelled 1..N contiguously, none empty.
    """
    size = _require_int("size", size, 32)
    n_nuclei = _require_int("n_nuclei", n_nuclei, 0)
    fibre_angle = float(rng.uniform(0, np.pi))
    broad, patches, region, warp_y, warp_x, streaks, grain, chromatin = _smooth_noise(
        rng, size, [14.0, 18.0, 22.0, 24.0, 24.0, (9.0, 1.1), 0.9, 0.8], fibre_angle
    )
    # Stroma fibres: streaks along the fibre angle, bent by a smooth warp, only in some regions.
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    streaks = ndimage.map_coordinates(streaks, [yy + 6.0 * warp_y, xx + 6.0 * warp_x], order=1, mode="grid-wrap")
    fibres = np.clip(streaks, 0.0, None) ** 1.5 * np.clip(0.5 + 0.6 * region, 0.0, 1.0)

    lumen = _lumen_mask(rng, size)
    density = np.clip(0.55 + 0.35 * patches, 0.1, 1.0)
    instances, darkness, coarseness, relative_radius = _place_nuclei(
        rng, size, n_nuclei, lumen, density, fibre_angle
    )
    nuclei = instances > 0

    # Background: eosin stroma with a faint hematoxylin counterstain, pinker cytoplasm around nuclei.
    halo = ndimage.gaussian_filter(nuclei.astype(np.float32), 3.0)
    eosin = 0.3 * (1.0 + 0.18 * broad) * (0.75 + 0.35 * fibres) + 0.03 * grain + 0.12 * halo
    hematox = 0.06 * (1.0 + 0.3 * broad) + 0.06 * halo
    clear = 1.0 - 0.95 * ndimage.gaussian_filter(lumen.astype(np.float32), 1.2)
    eosin, hematox = eosin * clear, hematox * clear

    # Nuclei: darker rim (membrane-bound chromatin), mottled inside, a little eosin left.
    rim = np.clip((relative_radius - 0.65) / 0.35, 0.0, 1.0) ** 2
    nuclear = darkness * (1.0 + coarseness * np.clip(chromatin, -1.5, 2.0) * 0.5) * (1.0 + 0.35 * rim)
    hematox = np.where(nuclei, nuclear, hematox)
    eosin = np.where(nuclei, 0.4 * eosin, eosin)

    tile_stain = replace(
        stain,
        hematoxylin_strength=stain.hematoxylin_strength * float(rng.uniform(0.96, 1.04)),
        eosin_strength=stain.eosin_strength * float(rng.uniform(0.96, 1.04)),
    )
    rgb = tile_stain.render(np.maximum(hematox, 0.0), np.maximum(eosin, 0.0))
    # Optics blur the light, not the stain; then sensor noise.
    sigma = rng.uniform(0.5, 0.9)
    rgb = ndimage.gaussian_filter(rgb, (sigma, sigma, 0))
    rgb += 2.0 * rng.standard_normal(rgb.shape, dtype=np.float32)
    image = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
    return image, instances.astype(np.int32)


def mark_with_ink(rng: np.random.Generator, image: np.ndarray, instances: np.ndarray) -> np.ndarray:
    """The image with 4 to 8 spots of tissue-marking ink on its stroma.

    Surgeons ink resection margins and some labs ink every slide, so one hospital's tiles can hold
    dark blue-black spots that another hospital's never show: a model trained elsewhere takes them
    for nuclei. The spots are ellipses (semi-axes 6-16 by 4-10 px, any angle) painted only outside
    nuclei, so the instance labels stay exact.

    Args:
        rng: the generator the spots are drawn from.
        image: (H, W, 3) uint8 RGB.
        instances: (H, W) int instance labels of the image, 0 = background.

    Returns:
        A new (H, W, 3) uint8 image.
    """
    height, width = instances.shape
    spots = np.zeros((height, width), bool)
    for _ in range(int(rng.integers(4, 9))):
        rows, cols = draw.ellipse(rng.uniform(0, height), rng.uniform(0, width), rng.uniform(6, 16),
                                  rng.uniform(4, 10), shape=spots.shape, rotation=rng.uniform(0, np.pi))
        spots[rows, cols] = True
    spots &= instances == 0
    inked = image.astype(np.float32)
    inked[spots] = (1 - _INK_OPACITY) * inked[spots] + _INK_OPACITY * _INK_RGB
    return np.clip(np.rint(inked), 0, 255).astype(np.uint8)


def _require_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def generate_synthetic_tiles(
    n_hospitals: int = 4,
    tiles_per_hospital: int = 8,
    size: int = 256,
    seed: int = 0,
    nuclei_per_tile: tuple[int, int] = (25, 60),
    inked_hospitals: tuple[int, ...] | list[int] = (),
) -> list[Tile]:
    """Synthetic H&E tiles from ``n_hospitals`` simulated hospitals, each with its own stain.

    Tile ``i`` of hospital ``k`` depends only on ``seed``, ``k``, ``i``, ``size`` and
    ``nuclei_per_tile``, so adding hospitals or tiles leaves the existing ones unchanged.

    Args:
        n_hospitals: hospitals, >= 1.
        tiles_per_hospital: tiles each, >= 1.
        size: tile side in px, >= 32.
        seed: non-negative integer.
        nuclei_per_tile: inclusive (low, high) range of nuclei per tile, 0 <= low <= high
            <= size**2 / 16; crowded or small tiles hold fewer.
        inked_hospitals: indices of hospitals whose tiles carry tissue-marking ink
            (:func:`mark_with_ink`): a difference between sites that colour augmentation does not
            remove. Their tiles are otherwise the same as without ink.

    Returns:
        ``n_hospitals * tiles_per_hospital`` tiles, hospital-major, named ``synthetic_h{k}_{i:03d}``,
        group ``hospital_{k}``, with (size, size, 3) uint8 images, exact (size, size) int32
        instances, and boxes and points derived from them.
    """
    n_hospitals = _require_int("n_hospitals", n_hospitals, 1)
    tiles_per_hospital = _require_int("tiles_per_hospital", tiles_per_hospital, 1)
    size = _require_int("size", size, 32)
    seed = _require_int("seed", seed, 0)
    if not isinstance(nuclei_per_tile, (tuple, list)) or len(nuclei_per_tile) != 2:
        raise ValueError(f"nuclei_per_tile must be a (low, high) pair, got {nuclei_per_tile!r}")
    low = _require_int("nuclei_per_tile low", nuclei_per_tile[0], 0)
    high = _require_int("nuclei_per_tile high", nuclei_per_tile[1], low)
    if high > size * size // 16:  # denser than a nucleus per 4x4 px is impossible with radii >= 3 px
        raise ValueError(f"nuclei_per_tile high must be <= size**2 / 16 = {size * size // 16}, got {high}")

    inked = {_require_int("inked_hospitals entry", k, 0) for k in inked_hospitals}
    if inked - set(range(n_hospitals)):
        raise ValueError(f"inked_hospitals {sorted(inked)} name hospitals outside 0..{n_hospitals - 1}")

    tiles = []
    for k in range(n_hospitals):
        stain = hospital_stain(seed, k)
        for i in range(tiles_per_hospital):
            rng = np.random.default_rng([seed, _TILE_STREAM, k, i])
            image, instances = synthetic_tile(rng, size, stain, int(rng.integers(low, high + 1)))
            if k in inked:
                image = mark_with_ink(np.random.default_rng([seed, _INK_STREAM, k, i]), image, instances)
            tiles.append(
                annotated_tile(
                    f"synthetic_h{k}_{i:03d}",
                    image,
                    instances,
                    source="synthetic",
                    organ="synthetic",
                    group=f"hospital_{k}",
                    subset="train",
                    has_instances=True,
                )
            )
    return tiles
