"""The Beer–Lambert stain of a simulated hospital."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Reference stain vectors (unit optical density over R, G, B) as Macenko estimates them on real
# H&E slides; Ruifrok's skimage ``hed2rgb`` vectors render a too-magenta eosin.
REFERENCE_HEMATOXYLIN = (0.5626, 0.7201, 0.4062)
REFERENCE_EOSIN = (0.2159, 0.8012, 0.5581)

# A hospital's stain has its own seed stream, so it never shares random numbers with its tiles.
STAIN_STREAM = 0


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
    rng = np.random.default_rng([seed, STAIN_STREAM, hospital])

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
