"""One tile's instances and metrics from its predicted probabilities: the part of scoring that
runs in worker processes (it imports no torch, so a worker starts in a fraction of a second)."""

from __future__ import annotations

import numpy as np

from fednuclei.metrics import image_metrics
from fednuclei.model.postprocess import Postprocess, instances_from_probabilities


def score_prediction(probs: np.ndarray, instances: np.ndarray, has_instances: bool,
                     postprocess: Postprocess | None = None) -> tuple[np.ndarray, dict[str, float]]:
    """The predicted instances of one tile and its metrics against the true ``instances``.

    Args:
        probs: (2, H, W) foreground and contour probabilities.
        instances: (H, W) true instance labels.
        has_instances: whether they are exact (object metrics NaN otherwise).
        postprocess: see :func:`~fednuclei.model.postprocess.instances_from_probabilities`.
    """
    predicted = instances_from_probabilities(probs, postprocess)
    return predicted, image_metrics(predicted, instances, has_instances)
