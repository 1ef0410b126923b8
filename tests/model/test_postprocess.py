import numpy as np
import pytest
from skimage.draw import disk

from fednuclei.model.postprocess import Postprocess, instances_from_probabilities
from fednuclei.model.targets import segmentation_targets


def touching_discs() -> np.ndarray:
    """Two discs of radius 8 whose centres are 15 px apart, split along the column x = 20."""
    labels = np.zeros((32, 48), np.int32)
    for label, centre in ((1, (16, 13)), (2, (16, 28))):
        rr, cc = disk(centre, 8, shape=labels.shape)
        labels[rr, cc] = np.where(labels[rr, cc] == 0, label, labels[rr, cc])
    return labels


def test_contour_line_splits_touching_discs():
    labels = touching_discs()
    foreground = (labels > 0).astype(np.float32)
    contour = np.zeros_like(foreground)
    contour[:, 20:22] = foreground[:, 20:22]  # the line between them, as the model would mark it
    probs = np.stack([0.9 * foreground + 0.05, 0.9 * contour + 0.05])
    by_contour = Postprocess("contour", 0.5, 0.5)
    instances = instances_from_probabilities(probs, by_contour)
    assert instances.dtype == np.int32
    assert sorted(np.unique(instances)) == [0, 1, 2]
    np.testing.assert_array_equal(instances > 0, labels > 0)
    # each found instance matches one disc, up to the contour pixels split between them
    for found in (1, 2):
        overlap = np.bincount(labels[instances == found], minlength=3)
        assert overlap.max() >= 0.95 * overlap.sum()
    # without the line they merge
    merged = instances_from_probabilities(np.stack([probs[0], np.full_like(contour, 0.05)]), by_contour)
    assert merged.max() == 1


@pytest.mark.parametrize("watershed", ["distance", "blend"])
def test_distance_markers_split_touching_discs_without_a_contour(watershed):
    labels = touching_discs()
    weak_contour = np.stack([0.9 * (labels > 0) + 0.05, np.full(labels.shape, 0.05)]).astype(np.float32)
    contour_only = instances_from_probabilities(weak_contour, Postprocess("contour", 0.5, 0.5))
    split = instances_from_probabilities(weak_contour, Postprocess(watershed, 0.5, 0.5))
    assert contour_only.max() == 1 and split.max() == 2
    for found in (1, 2):
        overlap = np.bincount(labels[split == found], minlength=3)
        assert overlap.max() >= 0.9 * overlap.sum()


def test_blend_keeps_what_the_contour_separates():
    labels = touching_discs()
    probs = segmentation_targets(labels).astype(np.float32)
    assert instances_from_probabilities(probs, Postprocess("blend", 0.5, 0.5)).max() == 2
    with pytest.raises(ValueError, match="watershed must be one of"):
        Postprocess("voronoi", 0.5, 0.5)


def test_targets_of_an_instance_map_come_back_as_the_instances():
    labels = touching_discs()
    labels[2:5, 40:43] = 3  # a 9 px nucleus: all contour, kept by size 9 >= min_size 5
    instances = instances_from_probabilities(segmentation_targets(labels), min_size=5)
    assert instances.max() == 3
    for label in (1, 2, 3):
        assert len(np.unique(instances[labels == label])) == 1


def test_small_objects_are_removed_and_labels_are_consecutive():
    probs = np.zeros((2, 30, 30), np.float32)
    probs[0, 2:4, 2:4] = 1.0  # 4 px
    probs[0, 10:20, 10:20] = 1.0
    probs[0, 24:28, 24:28] = 1.0  # 16 px
    instances = instances_from_probabilities(probs, min_size=10)
    assert sorted(np.unique(instances)) == [0, 1, 2]
    assert (instances[2:4, 2:4] == 0).all()
    assert (np.bincount(instances.ravel())[1:] == [100, 16]).all()


def test_empty_prediction_gives_no_instances():
    assert instances_from_probabilities(np.zeros((2, 16, 16), np.float32)).max() == 0


def test_wrong_shape_is_refused():
    with pytest.raises(ValueError, match=r"\(2, H, W\)"):
        instances_from_probabilities(np.zeros((16, 16)))
