"""Object metrics of nuclei instance maps: AJI, AJI+, panoptic quality and detection scores,
all from one table of pairwise intersections."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment

from fednuclei.metrics.pixel import check_same_shape, ratio

OBJECT_METRICS = ("aji", "aji_plus", "pq", "dq", "sq", "f1", "object_precision", "object_recall")

_MATCH_IOU = 0.5


@dataclass(frozen=True)
class InstanceOverlap:
    """Pairwise overlaps of the ground-truth and predicted nuclei of one image.

    Rows are ground-truth nuclei, columns predicted ones, both in increasing label order.

    Attributes:
        true_ids: (n_true,) ground-truth labels present, increasing, background excluded.
        pred_ids: (n_pred,) predicted labels present, increasing, background excluded.
        true_areas: (n_true,) int64 pixels of each ground-truth nucleus.
        pred_areas: (n_pred,) int64 pixels of each predicted nucleus.
        intersections: (n_true, n_pred) int64 pixels shared by each pair.
    """

    true_ids: np.ndarray
    pred_ids: np.ndarray
    true_areas: np.ndarray
    pred_areas: np.ndarray
    intersections: np.ndarray

    @property
    def n_true(self) -> int:
        return len(self.true_ids)

    @property
    def n_pred(self) -> int:
        return len(self.pred_ids)

    @property
    def unions(self) -> np.ndarray:
        """(n_true, n_pred) int64 |G ∪ S| of each pair (>= 1: every listed nucleus has pixels)."""
        return self.true_areas[:, None] + self.pred_areas[None, :] - self.intersections

    @property
    def iou(self) -> np.ndarray:
        """(n_true, n_pred) float64 IoU of each pair, in [0, 1]."""
        return self.intersections / self.unions


def _index_labels(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Dense indices of a label map's nuclei.

    Returns:
        ids: (n,) labels present, increasing, 0 excluded; index: (H*W,) int64 per pixel, 0 for
        background and ``1 + position in ids`` for a nucleus; areas: (n,) int64 pixels per nucleus.
    """
    # hash-based factorize is O(H*W) for any id range, where np.unique sorts all pixels (~10x slower)
    codes, uniques = pd.factorize(labels.ravel(), sort=True)
    counts = np.bincount(codes, minlength=len(uniques))
    if len(uniques) and uniques[0] < 0:
        raise ValueError(f"labels must be >= 0 (0 = background), found {uniques[0]}")
    if len(uniques) and uniques[0] == 0:
        return uniques[1:], codes, counts[1:]
    return uniques, codes + 1, counts


def check_instances(pred: np.ndarray, true: np.ndarray) -> None:
    check_same_shape(pred, true)
    for name, labels in (("pred_instances", pred), ("true_instances", true)):
        if not np.issubdtype(np.asarray(labels).dtype, np.integer):
            raise TypeError(f"{name} must be an integer label map, got dtype {np.asarray(labels).dtype}")


def overlap_table(pred_instances: np.ndarray, true_instances: np.ndarray) -> InstanceOverlap:
    """Areas and pairwise intersections of the nuclei of two instance label maps.

    One ``np.bincount`` over ``true_index * (n_pred + 1) + pred_index`` counts every pair at once;
    memory is O(H*W + n_true * n_pred).

    Args:
        pred_instances: (H, W) integer labels, 0 = background; ids need not be contiguous.
        true_instances: (H, W) integer labels, same convention.
    """
    check_instances(pred_instances, true_instances)
    true_ids, true_index, true_areas = _index_labels(np.asarray(true_instances))
    pred_ids, pred_index, pred_areas = _index_labels(np.asarray(pred_instances))
    width = len(pred_ids) + 1
    pairs = np.bincount(true_index * width + pred_index, minlength=(len(true_ids) + 1) * width)
    intersections = pairs.reshape(len(true_ids) + 1, width)[1:, 1:]
    return InstanceOverlap(true_ids, pred_ids, true_areas, pred_areas, intersections)


def aji(overlap: InstanceOverlap) -> float:
    """Aggregated Jaccard Index, the original MoNuSeg definition (Kumar et al., IEEE TMI 2017).

    Each ground-truth nucleus G_i takes the prediction S_j of highest IoU with it (ties: the smaller
    predicted label); C += |G_i ∩ S_j| and U += |G_i ∪ S_j|. A G_i that overlaps no prediction adds
    |G_i| to U only. Every prediction chosen by no G_i adds its area to U. AJI = C / U, in [0, 1].

    One prediction may be chosen by several nuclei (a merge): its pixels then enter U once per
    nucleus, which is what the original definition does. AJI+ (:func:`aji_plus`) forbids that reuse.
    Because of the tie rule, AJI can depend on the label order when a nucleus has two predictions
    of exactly equal IoU.

    Args:
        overlap: from :func:`overlap_table`.

    Returns:
        1.0 when there are no nuclei in either map; 0.0 when only one map has nuclei.
    """
    if overlap.n_pred == 0:
        return 1.0 if overlap.n_true == 0 else 0.0
    intersections, unions = overlap.intersections, overlap.unions
    rows = np.arange(overlap.n_true)
    best = overlap.iou.argmax(axis=1)  # first maximum: the smaller predicted label wins a tie
    matched = intersections[rows, best] > 0
    rows, best = rows[matched], best[matched]
    used = np.zeros(overlap.n_pred, dtype=bool)
    used[best] = True
    common = intersections[rows, best].sum()
    union = unions[rows, best].sum() + overlap.true_areas[~matched].sum() + overlap.pred_areas[~used].sum()
    return ratio(common, union)


def aji_plus(overlap: InstanceOverlap) -> float:
    """AJI+ (Graham et al., HoVer-Net, Medical Image Analysis 2019): AJI with one-to-one pairs.

    Ground-truth and predicted nuclei are paired by the assignment of maximal total IoU (Hungarian
    algorithm); pairs that do not overlap are dropped. C sums the intersections and U the unions
    of the pairs, and every unpaired nucleus of either map adds its area to U. AJI+ = C / U.
    When several assignments reach the maximal total IoU, which one is taken is unspecified.

    Args:
        overlap: from :func:`overlap_table`.

    Returns:
        In [0, 1]; 1.0 when there are no nuclei in either map.
    """
    if overlap.n_true == 0 and overlap.n_pred == 0:
        return 1.0
    rows, cols = linear_sum_assignment(overlap.iou, maximize=True)
    paired = overlap.intersections[rows, cols] > 0
    rows, cols = rows[paired], cols[paired]
    common = overlap.intersections[rows, cols].sum()
    union = (
        overlap.unions[rows, cols].sum()
        + overlap.true_areas.sum() - overlap.true_areas[rows].sum()
        + overlap.pred_areas.sum() - overlap.pred_areas[cols].sum()
    )
    return ratio(common, union)


def _match(overlap: InstanceOverlap, iou_threshold: float) -> tuple[int, int, int, float]:
    """True positives, false positives, false negatives and summed IoU of the matched pairs.

    With a threshold >= 0.5 the match is unique by construction: nuclei of one map are disjoint,
    so a nucleus has more than half its union with at most one nucleus of the other map.
    """
    if iou_threshold < _MATCH_IOU:
        raise ValueError(f"iou_threshold must be >= 0.5 for a unique match, got {iou_threshold}")
    iou = overlap.iou
    matched = iou > iou_threshold
    tp = int(matched.sum())
    return tp, overlap.n_pred - tp, overlap.n_true - tp, float(iou[matched].sum())


def panoptic_quality(overlap: InstanceOverlap, iou_threshold: float = _MATCH_IOU) -> dict[str, float]:
    """Panoptic quality of nuclei (Kirillov et al., CVPR 2019; as in HoVer-Net's ``get_fast_pq``).

    Pairs with IoU > ``iou_threshold`` are true positives (TP); unmatched predictions are false
    positives (FP) and unmatched ground-truth nuclei false negatives (FN).

    Args:
        overlap: from :func:`overlap_table`.
        iou_threshold: strict IoU threshold of a match, >= 0.5.

    Returns:
        ``dq`` = TP / (TP + FP/2 + FN/2) (detection quality), ``sq`` = mean IoU of the TP pairs
        (segmentation quality, 0.0 when TP = 0) and ``pq`` = DQ x SQ, each in [0, 1]. All are 1.0
        when there are no nuclei in either map.
    """
    if overlap.n_true == 0 and overlap.n_pred == 0:
        return dict.fromkeys(("pq", "dq", "sq"), 1.0)
    tp, fp, fn, iou_sum = _match(overlap, iou_threshold)
    dq = ratio(tp, tp + 0.5 * fp + 0.5 * fn)
    sq = ratio(iou_sum, tp)
    return {"pq": dq * sq, "dq": dq, "sq": sq}


def detection_scores(overlap: InstanceOverlap, iou_threshold: float = _MATCH_IOU) -> dict[str, float]:
    """Detection F1, precision and recall of nuclei at the matching of :func:`panoptic_quality`.

    Args:
        overlap: from :func:`overlap_table`.
        iou_threshold: strict IoU threshold of a match, >= 0.5.

    Returns:
        ``f1`` = 2 TP / (2 TP + FP + FN) (equal to DQ), ``object_precision`` = TP / (TP + FP),
        ``object_recall`` = TP / (TP + FN), each in [0, 1]. All are 1.0 when there are no nuclei in
        either map; any other 0/0 is 0.0 (no prediction: precision 0.0).
    """
    if overlap.n_true == 0 and overlap.n_pred == 0:
        return dict.fromkeys(("f1", "object_precision", "object_recall"), 1.0)
    tp, fp, fn, _ = _match(overlap, iou_threshold)
    return {
        "f1": ratio(2 * tp, 2 * tp + fp + fn),
        "object_precision": ratio(tp, tp + fp),
        "object_recall": ratio(tp, tp + fn),
    }


def object_metrics(pred_instances: np.ndarray, true_instances: np.ndarray) -> dict[str, float]:
    """Every object metric of one image (keys :data:`OBJECT_METRICS`), from one overlap table.

    Args:
        pred_instances: (H, W) integer labels, 0 = background.
        true_instances: (H, W) integer labels, 0 = background.
    """
    overlap = overlap_table(pred_instances, true_instances)
    return {
        "aji": aji(overlap),
        "aji_plus": aji_plus(overlap),
        **panoptic_quality(overlap),
        **detection_scores(overlap),
    }
