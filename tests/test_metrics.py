"""Nuclei metrics: hand-worked cases, a brute-force transcription of the definitions, summaries."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest

from fednuclei.metrics import (
    METRICS,
    OBJECT_METRICS,
    PIXEL_METRICS,
    aji,
    image_metrics,
    object_metrics,
    overlap_table,
    panoptic_quality,
    pixel_metrics,
    summarise,
)

F = Fraction


def grid(text: str) -> np.ndarray:
    """Label map from rows of space-separated tokens: ``.`` is background, integers are labels."""
    rows = [line.split() for line in text.strip().splitlines()]
    return np.array([[0 if token == "." else int(token) for token in row] for row in rows], dtype=np.int32)


def assert_metrics(actual: dict[str, float], expected: dict[str, Fraction | float]) -> None:
    for key, value in expected.items():
        assert actual[key] == pytest.approx(float(value), abs=1e-12), key


# --------------------------------------------------------------------------------------------
# hand-worked cases

# Ground truth: nuclei 1 and 2 (4 px each), 3 (6 px), 5 (4 px; ids need not be contiguous).
TRUE = grid(
    """
    . . . . . . . . . .
    . 1 1 . 2 2 . . . .
    . 1 1 . 2 2 . . . .
    . . . . . . . . . .
    . . . . . . . . . .
    . 3 3 3 . . . 5 5 .
    . 3 3 3 . . . 5 5 .
    . . . . . . . . . .
    """
)
# Prediction: 10 merges 1 and 2 (10 px), 4 covers 3 and one row more (9 px), 7 is spurious (4 px),
# and 5 is missed.
PRED = grid(
    """
    .  .  .  .  .  .  .  .  .  .
    .  10 10 10 10 10 .  .  .  .
    .  10 10 10 10 10 .  7  7  .
    .  .  .  .  .  .  .  7  7  .
    .  4  4  4  .  .  .  .  .  .
    .  4  4  4  .  .  .  .  .  .
    .  4  4  4  .  .  .  .  .  .
    .  .  .  .  .  .  .  .  .  .
    """
)


def test_merge_miss_and_spurious_prediction():
    # |T| = 18, |P| = 23, |P∩T| = 4 + 4 + 6 = 14.
    # IoU(1,10) = IoU(2,10) = 4/10; IoU(3,4) = 6/9; everything else 0.
    # AJI: 1->10 and 2->10 (C += 4 + 4, U += 10 + 10), 3->4 (C += 6, U += 9), 5 unmatched (U += 4),
    #      7 never chosen (U += 4): 14 / 37.
    # AJI+: 10 pairs with one of 1, 2 only: C = 4 + 6, U = 10 + 9 + 4 (other of 1, 2) + 4 (5) + 4 (7) = 31.
    # PQ: only (3, 4) has IoU > 1/2: TP = 1, FP = 2 (10, 7), FN = 3 (1, 2, 5);
    #     DQ = 1 / (1 + 1 + 3/2) = 2/7, SQ = 2/3, PQ = 4/21.
    expected = {
        "dice": F(28, 41), "iou": F(14, 27), "pixel_precision": F(14, 23), "pixel_recall": F(14, 18),
        "aji": F(14, 37), "aji_plus": F(10, 31), "pq": F(4, 21), "dq": F(2, 7), "sq": F(2, 3),
        "f1": F(2, 7), "object_precision": F(1, 3), "object_recall": F(1, 4),
    }
    assert_metrics(image_metrics(PRED, TRUE, has_instances=True), expected)


def test_one_prediction_covering_two_nuclei():
    true = grid(
        """
        . . . . . . . .
        . 1 1 . 2 2 . .
        . 1 1 . 2 2 . .
        . . . . . . . .
        """
    )
    pred = grid(
        """
        . . . . . . . .
        . 7 7 7 7 7 . .
        . 7 7 7 7 7 . .
        . . . . . . . .
        """
    )
    # IoU(1,7) = IoU(2,7) = 4/10, so nothing is matched at IoU > 1/2.
    # AJI: both nuclei choose 7, which enters U twice: (4 + 4) / (10 + 10) = 2/5.
    # AJI+: 7 pairs with one nucleus: 4 / (10 + 4) = 2/7.
    expected = {
        "dice": F(16, 18), "iou": F(8, 10), "pixel_precision": F(8, 10), "pixel_recall": 1,
        "aji": F(2, 5), "aji_plus": F(2, 7), "pq": 0, "dq": 0, "sq": 0,
        "f1": 0, "object_precision": 0, "object_recall": 0,
    }
    assert_metrics(image_metrics(pred, true, has_instances=True), expected)


def test_missed_nucleus_and_false_positive():
    true = grid(
        """
        1 1 . . . 3 3
        1 1 . . . 3 3
        . . . . . . .
        """
    )
    pred = grid(
        """
        2 2 . . . . .
        2 2 . . . . .
        . . . 9 . . .
        """
    )
    # 2 is exactly 1; 3 is missed; 9 (1 px) is spurious. |P∩T| = 4, |P| = 5, |T| = 8.
    # AJI = AJI+ = 4 / (4 + 4 + 1). TP = FP = FN = 1: DQ = 1/2, SQ = 1.
    expected = {
        "dice": F(8, 13), "iou": F(4, 9), "pixel_precision": F(4, 5), "pixel_recall": F(1, 2),
        "aji": F(4, 9), "aji_plus": F(4, 9), "pq": F(1, 2), "dq": F(1, 2), "sq": 1,
        "f1": F(1, 2), "object_precision": F(1, 2), "object_recall": F(1, 2),
    }
    assert_metrics(image_metrics(pred, true, has_instances=True), expected)


def test_perfect_prediction_scores_one_whatever_its_labels():
    relabelled = np.select([TRUE == 1, TRUE == 2, TRUE == 3, TRUE == 5], [40, 17, 99, 2], 0)
    assert_metrics(image_metrics(relabelled, TRUE, has_instances=True), dict.fromkeys(METRICS, 1))


def test_empty_prediction_scores_zero():
    empty = np.zeros_like(TRUE)
    # precision is 0/0 here, and 0.0 by convention: 1.0 is kept for "both empty".
    assert_metrics(image_metrics(empty, TRUE, has_instances=True), dict.fromkeys(METRICS, 0))


def test_prediction_on_empty_truth_scores_zero():
    empty = np.zeros_like(TRUE)
    assert_metrics(image_metrics(PRED, empty, has_instances=True), dict.fromkeys(METRICS, 0))


def test_both_empty_scores_one():
    empty = np.zeros((5, 7), np.int32)
    assert_metrics(image_metrics(empty, empty, has_instances=True), dict.fromkeys(METRICS, 1))


@pytest.mark.parametrize(
    ("pred_row", "expected"),
    [
        # IoU exactly 1/2 is not a match (strict threshold): TP = 0, FP = FN = 1.
        ("2 2 . .", {"pq": 0, "dq": 0, "sq": 0, "aji": F(1, 2)}),
        # IoU 3/4 is a match.
        ("2 2 2 .", {"pq": F(3, 4), "dq": 1, "sq": F(3, 4), "aji": F(3, 4)}),
    ],
)
def test_match_needs_iou_strictly_above_one_half(pred_row, expected):
    true = grid("1 1 1 1")
    assert_metrics(object_metrics(grid(pred_row), true), expected)


@pytest.mark.parametrize(("a", "b", "expected"), [(2, 5, F(1, 6)), (5, 2, F(3, 11))])
def test_aji_breaks_an_iou_tie_with_the_smaller_predicted_label(a, b, expected):
    true = grid("1 1 1 1 1 1 . . .")
    pred = grid(f"{a} {a} . {b} {b} {b} {b} {b} {b}")
    # IoU(1, a) = 2/6 = IoU(1, b) = 3/9.
    # a chosen: C = 2, U = 6 + |b| 6 = 12.  b chosen: C = 3, U = 9 + |a| 2 = 11.
    assert aji(overlap_table(pred, true)) == pytest.approx(float(expected), abs=1e-12)


def test_overlap_table_with_sparse_ids_and_no_background():
    true = grid(
        """
        3 3 .
        3 . 700
        """
    )
    pred = grid(
        """
        5 5 8
        5 8 8
        """
    )
    table = overlap_table(pred, true)
    np.testing.assert_array_equal(table.true_ids, [3, 700])
    np.testing.assert_array_equal(table.pred_ids, [5, 8])
    np.testing.assert_array_equal(table.true_areas, [3, 1])
    np.testing.assert_array_equal(table.pred_areas, [3, 3])
    np.testing.assert_array_equal(table.intersections, [[3, 0], [0, 1]])
    np.testing.assert_allclose(table.iou, [[1, 0], [0, 1 / 3]])


def test_without_exact_instances_only_pixel_metrics_are_given():
    metrics = image_metrics(PRED, TRUE, has_instances=False)
    assert list(metrics) == list(METRICS)
    assert all(math.isnan(metrics[key]) for key in OBJECT_METRICS)
    # pixel metrics do not need exact instances: merged nuclei have the same foreground
    assert {key: metrics[key] for key in PIXEL_METRICS} == pixel_metrics(PRED > 0, TRUE > 0)


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match="shape"):
        image_metrics(TRUE[:-1], TRUE, has_instances=True)
    with pytest.raises(TypeError, match="integer"):
        overlap_table(TRUE.astype(float), TRUE)
    with pytest.raises(ValueError, match=">= 0"):
        overlap_table(-TRUE, TRUE)
    with pytest.raises(ValueError, match="unique match"):
        panoptic_quality(overlap_table(PRED, TRUE), iou_threshold=0.4)


# --------------------------------------------------------------------------------------------
# brute force: the definitions transcribed literally, over sets of pixels


def pixel_sets(labels: np.ndarray) -> dict[int, set[tuple[int, int]]]:
    sets: dict[int, set[tuple[int, int]]] = {}
    for (r, c), label in np.ndenumerate(labels):
        if label:
            sets.setdefault(int(label), set()).add((r, c))
    return sets


def jaccard(a: set, b: set) -> Fraction:
    return Fraction(len(a & b), len(a | b))


def ratio(num, den) -> Fraction:
    return Fraction(num) / Fraction(den) if den else Fraction(0)


def reference_metrics(pred: np.ndarray, true: np.ndarray) -> dict[str, Fraction]:
    """Every metric but AJI+, exactly, with the conventions of the module docstring."""
    G, S = pixel_sets(true), pixel_sets(pred)
    P, T = set().union(*S.values()), set().union(*G.values())
    if not P and not T:
        return dict.fromkeys([m for m in METRICS if m != "aji_plus"], Fraction(1))
    out = {
        "dice": ratio(2 * len(P & T), len(P) + len(T)),
        "iou": ratio(len(P & T), len(P | T)),
        "pixel_precision": ratio(len(P & T), len(P)),
        "pixel_recall": ratio(len(P & T), len(T)),
    }
    # AJI, Kumar et al. 2017
    C, U, used = 0, 0, set()
    for g in sorted(G):
        best = None
        for s in sorted(S):
            if jaccard(G[g], S[s]) > 0 and (best is None or jaccard(G[g], S[s]) > jaccard(G[g], S[best])):
                best = s
        if best is None:
            U += len(G[g])
        else:
            C += len(G[g] & S[best])
            U += len(G[g] | S[best])
            used.add(best)
    for s in S:
        if s not in used:
            U += len(S[s])
    out["aji"] = ratio(C, U)
    # PQ and detection at IoU > 1/2
    pairs = [(g, s) for g in G for s in S if jaccard(G[g], S[s]) > Fraction(1, 2)]
    assert len({g for g, _ in pairs}) == len({s for _, s in pairs}) == len(pairs)  # unique by construction
    tp = len(pairs)
    fp = len([s for s in S if all(s != t for _, t in pairs)])
    fn = len([g for g in G if all(g != t for t, _ in pairs)])
    out["dq"] = ratio(tp, tp + Fraction(fp, 2) + Fraction(fn, 2))
    out["sq"] = ratio(sum(jaccard(G[g], S[s]) for g, s in pairs), tp)
    out["pq"] = out["dq"] * out["sq"]
    out["f1"] = ratio(2 * tp, 2 * tp + fp + fn)
    out["object_precision"] = ratio(tp, tp + fp)
    out["object_recall"] = ratio(tp, tp + fn)
    return out


def reference_aji_plus_values(pred: np.ndarray, true: np.ndarray) -> set[Fraction]:
    """AJI+ of every one-to-one pairing of maximal total IoU (enumerated over overlapping pairs)."""
    G, S = pixel_sets(true), pixel_sets(pred)
    if not G and not S:
        return {Fraction(1)}
    gs = sorted(G)
    candidates = {g: [s for s in sorted(S) if G[g] & S[s]] for g in gs}
    by_total: dict[Fraction, set[Fraction]] = {}

    def visit(i: int, pairs: list[tuple[int, int]]) -> None:
        if i == len(gs):
            paired_g, paired_s = {g for g, _ in pairs}, {s for _, s in pairs}
            C = sum(len(G[g] & S[s]) for g, s in pairs)
            U = sum(len(G[g] | S[s]) for g, s in pairs)
            U += sum(len(G[g]) for g in G if g not in paired_g) + sum(len(S[s]) for s in S if s not in paired_s)
            total = sum((jaccard(G[g], S[s]) for g, s in pairs), Fraction(0))
            by_total.setdefault(total, set()).add(ratio(C, U))
            return
        visit(i + 1, pairs)
        for s in candidates[gs[i]]:
            if all(s != t for _, t in pairs):
                visit(i + 1, [*pairs, (gs[i], s)])

    visit(0, [])
    return by_total[max(by_total)]


def paint(labels: np.ndarray, label: int, shape: tuple[str, int, int, int, int]) -> None:
    kind, cy, cx, ry, rx = shape
    yy, xx = np.ogrid[: labels.shape[0], : labels.shape[1]]
    if kind == "rect":
        inside = (abs(yy - cy) <= ry) & (abs(xx - cx) <= rx)
    else:
        inside = ((yy - cy) / (ry + 0.5)) ** 2 + ((xx - cx) / (rx + 0.5)) ** 2 <= 1
    labels[inside] = label


def random_pair(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(pred, true) of random rectangles and ellipses with sparse random ids.

    Later shapes overwrite earlier ones (touching, irregular, even split nuclei). The prediction
    perturbs each true shape (kept, shifted, grown, shrunk, dropped, or merged with the previous
    prediction) and adds spurious shapes, so overlaps range from none to exact.
    """
    rng = np.random.default_rng(seed)
    h, w = (int(n) for n in rng.integers(12, 33, size=2))

    def random_shape():
        return (
            str(rng.choice(["rect", "ellipse"])), int(rng.integers(0, h)), int(rng.integers(0, w)),
            int(rng.integers(0, 5)), int(rng.integers(0, 5)),
        )

    n_true = int(rng.integers(1, 11))
    ids = iter(int(i) for i in rng.choice(10**6, size=2 * n_true + 8, replace=False) + 1)
    true, pred = np.zeros((h, w), np.int64), np.zeros((h, w), np.int64)
    label = next(ids)
    for _ in range(n_true):
        kind, cy, cx, ry, rx = shape = random_shape()
        paint(true, next(ids), shape)
        action = rng.choice(["keep", "shift", "grow", "shrink", "drop", "merge"])
        if action == "drop":
            continue
        if action != "merge":
            label = next(ids)
        if action in ("shift", "merge"):
            cy, cx = cy + int(rng.integers(-3, 4)), cx + int(rng.integers(-3, 4))
        ry, rx = (max(0, r + {"grow": 1, "shrink": -1}.get(action, 0)) for r in (ry, rx))
        paint(pred, label, (kind, cy, cx, ry, rx))
    for _ in range(int(rng.integers(0, 4))):
        paint(pred, next(ids), random_shape())
    return pred, true


SEEDS = range(20)


@pytest.mark.parametrize("seed", SEEDS)
def test_matches_brute_force_reference(seed):
    pred, true = random_pair(seed)
    actual = image_metrics(pred, true, has_instances=True)
    expected = reference_metrics(pred, true)
    for key, value in expected.items():
        assert actual[key] == pytest.approx(float(value), abs=1e-9), key
    assert any(actual["aji_plus"] == pytest.approx(float(v), abs=1e-9) for v in reference_aji_plus_values(pred, true))


def test_random_pairs_cover_the_interesting_cases():
    # guards the reference test against a generator that drifted into trivial maps
    pairs = [random_pair(seed) for seed in SEEDS]
    metrics = [reference_metrics(pred, true) for pred, true in pairs]
    assert sum(0 < m["aji"] < 1 for m in metrics) >= 10
    assert sum(0 < m["pq"] < 1 for m in metrics) >= 5
    assert any(reference_aji_plus_values(*pair) != {m["aji"]} for m, pair in zip(metrics, pairs))  # AJI+ != AJI


def relabel(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The same nuclei under new random ids in a large range (a random permutation of their order)."""
    old = np.unique(labels[labels > 0])
    new = rng.choice(2**40, size=len(old), replace=False) + 1
    out = np.zeros_like(labels, dtype=np.int64)
    for o, n in zip(old, new):
        out[labels == o] = n
    return out


def aji_has_tie(pred: np.ndarray, true: np.ndarray) -> bool:
    """Whether some true nucleus has two predictions of equal, positive, maximal IoU."""
    G, S = pixel_sets(true), pixel_sets(pred)
    for g in G:
        ious = [jaccard(G[g], S[s]) for s in S]
        if ious and max(ious) > 0 and ious.count(max(ious)) > 1:
            return True
    return False


def test_relabelling_changes_no_metric():
    rng = np.random.default_rng(123)
    checked_aji = checked_aji_plus = 0
    for seed in SEEDS:
        pred, true = random_pair(seed)
        before = image_metrics(pred, true, has_instances=True)
        after = image_metrics(relabel(pred, rng), relabel(true, rng), has_instances=True)
        # AJI and AJI+ pick among equally good predictions by label: compare them only without such ties
        invariant = [m for m in METRICS if m not in ("aji", "aji_plus")]
        if not aji_has_tie(pred, true):
            invariant.append("aji")
            checked_aji += 1
        if len(reference_aji_plus_values(pred, true)) == 1:
            invariant.append("aji_plus")
            checked_aji_plus += 1
        for key in invariant:
            assert after[key] == pytest.approx(before[key], abs=1e-12), (seed, key)
    assert checked_aji >= 15 and checked_aji_plus >= 15


# --------------------------------------------------------------------------------------------
# summaries


def test_summarise_by_level_within_method():
    per_image = pd.DataFrame(
        {
            "method": ["a", "a", "a", "b"],
            "client": ["c1", "c1", "c2", "c1"],
            "organ": ["x", "y", "x", "x"],
            "dice": [0.2, 0.4, 0.9, 1.0],
            "aji": [0.1, math.nan, 0.5, 0.3],  # NaN: a tile without exact instances
            "n_nuclei": [10, 20, 30, 40],  # not a metric: ignored by default
        }
    )
    summary = summarise(per_image, by=["client", "organ"], within=["method"])
    nan = math.nan
    expected = pd.DataFrame(
        [
            # method, level, group, metric, n_images, mean, std (sample)
            ("a", "overall", "all", "dice", 3, 0.5, math.sqrt(0.13)),  # (.09 + .01 + .16) / 2
            ("a", "overall", "all", "aji", 2, 0.3, math.sqrt(0.08)),
            ("a", "client", "c1", "dice", 2, 0.3, math.sqrt(0.02)),
            ("a", "client", "c1", "aji", 1, 0.1, nan),
            ("a", "client", "c2", "dice", 1, 0.9, nan),
            ("a", "client", "c2", "aji", 1, 0.5, nan),
            ("a", "organ", "x", "dice", 2, 0.55, math.sqrt(0.245)),
            ("a", "organ", "x", "aji", 2, 0.3, math.sqrt(0.08)),
            ("a", "organ", "y", "dice", 1, 0.4, nan),
            ("a", "organ", "y", "aji", 0, nan, nan),
            ("b", "overall", "all", "dice", 1, 1.0, nan),
            ("b", "overall", "all", "aji", 1, 0.3, nan),
            ("b", "client", "c1", "dice", 1, 1.0, nan),
            ("b", "client", "c1", "aji", 1, 0.3, nan),
            ("b", "organ", "x", "dice", 1, 1.0, nan),
            ("b", "organ", "x", "aji", 1, 0.3, nan),
        ],
        columns=["method", "level", "group", "metric", "n_images", "mean", "std"],
    )
    pd.testing.assert_frame_equal(summary, expected, check_dtype=False, rtol=1e-12)


def test_summarise_overall_only_and_missing_columns():
    per_image = pd.DataFrame({"client": [1, 2], "pq": [0.25, 0.75], "dice": [0.5, 1.0]})
    summary = summarise(per_image, by=[])
    assert summary[["level", "group", "metric"]].values.tolist() == [
        ["overall", "all", "dice"],  # order of METRICS, not of the table
        ["overall", "all", "pq"],
    ]
    assert summary["mean"].tolist() == pytest.approx([0.75, 0.5])
    assert summary["n_images"].tolist() == [2, 2]
    groups = summarise(per_image, by=["client"], metrics=["pq"])
    assert groups.loc[groups["level"] == "client", "group"].tolist() == ["1", "2"]
    with pytest.raises(KeyError, match="organ"):
        summarise(per_image, by=["organ"])
