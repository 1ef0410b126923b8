"""Training targets for the two-channel U-Net, from an instance map."""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.segmentation import find_boundaries

_CROSS = ndimage.generate_binary_structure(2, 1)


def segmentation_targets(instances: np.ndarray, contour_width: int = 1) -> np.ndarray:
    """Foreground and contour maps of an instance map.

    Args:
        instances: (H, W) integer labels, 0 = background.
        contour_width: pixels of the contour ring inside each nucleus, >= 1.

    Returns:
        (2, H, W) float32 in {0, 1}: channel 0 the foreground (``instances > 0``), channel 1 the
        contour: nucleus pixels with a 4-neighbour of another label, background included
        (``find_boundaries(mode="inner")``), grown ``contour_width - 1`` px further into the
        foreground. Width 1 is 1 px along the background and 2 px (one per side) where two nuclei
        touch. A wider ring separates touching nuclei more surely but swallows the smallest
        nuclei whole; post-processing gives those their own instance (see
        :mod:`fednuclei.model.postprocess`).
    """
    if instances.ndim != 2:
        raise ValueError(f"expected an (H, W) instance map, got shape {instances.shape}")
    if contour_width < 1:
        raise ValueError(f"contour_width must be >= 1, got {contour_width}")
    foreground = instances > 0
    contour = find_boundaries(instances, connectivity=1, mode="inner") & foreground
    if contour_width > 1:
        contour = ndimage.binary_dilation(contour, _CROSS, iterations=contour_width - 1) & foreground
    return np.stack([foreground, contour]).astype(np.float32)
