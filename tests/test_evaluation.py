from dataclasses import replace

import numpy as np
import pandas as pd
import torch

from fednuclei.drawing import overlay
from fednuclei.evaluation import cross_site_dice, score_tiles, segment_image
from fednuclei.metrics import METRICS


class DarknessModel(torch.nn.Module):
    """A fixed 'model': foreground where the pixel is dark (hematoxylin), no contour.

    Real computations end to end (sliding windows, watershed, metrics) without training.
    """

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(40.0))

    def forward(self, x):
        darkness = 0.55 - x.mean(dim=1, keepdim=True)
        return torch.cat([self.scale * darkness, torch.full_like(darkness, -10.0)], dim=1)


def test_segmenting_dark_nuclei_finds_them(synthetic_tiles):
    tile = synthetic_tiles[0]
    predicted = segment_image(DarknessModel(), tile.image, patch=32, overlap=0.25)
    assert predicted.shape == tile.instances.shape and predicted.dtype == np.int32
    dice = 2 * ((predicted > 0) & (tile.instances > 0)).sum() / ((predicted > 0).sum() + (tile.instances > 0).sum())
    assert dice > 0.7


def test_score_tiles_reports_every_metric_per_tile(synthetic_tiles):
    tiles = [replace(t, client=t.group, split="test") for t in synthetic_tiles[:4]]
    tiles[1] = replace(tiles[1], has_instances=False)
    per_image, predictions = score_tiles(lambda tile: DarknessModel(), tiles, patch=32)
    assert list(per_image["tile"]) == [t.name for t in tiles] and set(predictions) == set(per_image["tile"])
    assert set(METRICS) <= set(per_image.columns)
    assert per_image.loc[1, ["aji", "pq"]].isna().all() and per_image.loc[0, ["aji", "pq"]].notna().all()
    assert (per_image["dice"] > 0.7).all()
    assert (per_image["n_true"] == [t.n_nuclei for t in tiles]).all()


def test_post_processing_in_worker_threads_gives_what_one_thread_gives(synthetic_tiles):
    tiles = [replace(t, client=t.group, split="test") for t in synthetic_tiles[:6]]
    one, one_predictions = score_tiles(lambda tile: DarknessModel(), tiles, patch=32, workers=1)
    many, many_predictions = score_tiles(lambda tile: DarknessModel(), tiles, patch=32, workers=2)
    pd.testing.assert_frame_equal(one, many)
    assert all(np.array_equal(one_predictions[name], many_predictions[name]) for name in one_predictions)


def test_cross_site_matrix_has_a_row_per_model_and_a_column_per_client(synthetic_tiles):
    tiles = [replace(t, client=t.group, split="test") for t in synthetic_tiles]
    matrix = cross_site_dice({"a": DarknessModel(), "b": DarknessModel()}, tiles, patch=32)
    assert list(matrix.index) == ["a", "b"] and list(matrix.columns) == ["hospital_0", "hospital_1", "hospital_2"]
    assert ((matrix > 0.7) & (matrix <= 1)).all().all()


def test_overlay_outlines_nuclei_in_green():
    image = np.full((8, 8, 3), 200, np.uint8)
    labels = np.zeros((8, 8), np.int32)
    labels[2:6, 2:6] = 1
    drawn = overlay(image, labels)
    assert (drawn[2, 2] == [0, 255, 0]).all() and (drawn[3, 3] == 200).all() and (drawn[0, 0] == 200).all()
    assert (image == 200).all()
