"""One synthetic H&E tile: stroma, lumens, nuclei, stain, optics; and tissue-marking ink."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import scipy.fft
from scipy import ndimage
from skimage import draw

from fednuclei.data.synthetic.nuclei import blob, place_nuclei
from fednuclei.data.synthetic.stain import StainProfile

# Tissue-marking ink as it shows after staining: blue-black, letting a quarter of the light through.
_INK_RGB = np.array([20.0, 25.0, 35.0], np.float32)
_INK_OPACITY = 0.75


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
    size = require_int("size", size, 32)
    n_nuclei = require_int("n_nuclei", n_nuclei, 0)
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
    instances, darkness, coarseness, relative_radius = place_nuclei(
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


def _lumen_mask(rng: np.random.Generator, size: int) -> np.ndarray:
    """(size, size) bool: zero to two irregular white gaps, each a few percent of the tile."""
    mask = np.zeros((size, size), bool)
    for _ in range(rng.choice(3, p=(0.45, 0.4, 0.15))):
        a = rng.uniform(0.05, 0.12) * size
        b = a * rng.uniform(0.4, 0.9)
        cy, cx = rng.uniform(0, size, 2)
        theta = rng.uniform(0, np.pi)
        found = blob(size, cy, cx, a, b, theta, rng.normal(0, 0.08, 4), rng.uniform(0, 2 * np.pi, 4))
        if found is not None:
            crop, inside, _ = found
            mask[crop] |= inside
    return mask


def require_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)
