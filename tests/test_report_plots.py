"""The report figures of the method pipelines, drawn from small hand-made tables and tiles."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fednuclei.drawing import client_rounds, cross_site_heatmap, overlay
from fednuclei.pipelines.training.nodes import plot_best_and_worst


def test_client_rounds_draws_each_clients_weight_and_usable_images_per_round():
    history = pd.DataFrame({"round": [1, 2, 3],
                            "clients.a.weight": [0.5, 0.7, 0.9], "clients.a.usable_images": [4, 4, 4],
                            "clients.b.weight": [0.5, 0.3, 0.1], "clients.b.usable_images": [0, 2, 3]})
    weights, usable = client_rounds(history).axes[:2]
    assert [line.get_label() for line in weights.lines] == ["a", "b"]
    np.testing.assert_array_equal(weights.lines[1].get_ydata(), [0.5, 0.3, 0.1])
    np.testing.assert_array_equal(usable.lines[1].get_ydata(), [0, 2, 3])


def test_cross_site_heatmap_writes_every_models_dice_on_every_clients_tiles():
    matrix = pd.DataFrame({"model": ["a", "b"], "a": [0.91, 0.42], "b": [0.55, 0.88]})
    axis = cross_site_heatmap(matrix).axes[0]
    assert [text.get_text() for text in axis.texts] == ["0.91", "0.55", "0.42", "0.88"]
    np.testing.assert_allclose(axis.images[0].get_array(), [[0.91, 0.55], [0.42, 0.88]])


def test_best_and_worst_show_each_clients_extreme_test_tiles_beside_their_ground_truth(synthetic_tiles):
    tiles = [replace(t, client=t.group, split="test") for t in synthetic_tiles if t.group in ("hospital_0", "hospital_1")]
    dice = {tile.name: 0.1 * (k + 1) for k, tile in enumerate(tiles)}
    per_image = pd.DataFrame({"tile": [t.name for t in tiles], "client": [t.client for t in tiles],
                              "split": "test", "dice": [dice[t.name] for t in tiles]})
    predictions = {t.name: (lambda t=t: Image.fromarray(np.roll(t.instances, 3, axis=1).astype(np.uint16)))
                   for t in tiles}
    figure = plot_best_and_worst(per_image, tiles, predictions)
    titles = [axis.get_title() for axis in figure.axes[::3]]
    for client in ("hospital_0", "hospital_1"):
        own = [t.name for t in tiles if t.client == client]
        assert f"{client}, best (Dice {max(dice[n] for n in own):.2f}): image" in titles
        assert f"{client}, worst (Dice {min(dice[n] for n in own):.2f}): image" in titles
    # The first row: hospital_0's best tile, its ground truth, and the (shifted) prediction.
    best = max((t for t in tiles if t.client == "hospital_0"), key=lambda t: dice[t.name])
    truth_panel, prediction_panel = (figure.axes[1].images[0].get_array(), figure.axes[2].images[0].get_array())
    np.testing.assert_array_equal(truth_panel, overlay(best.image, best.instances))
    np.testing.assert_array_equal(prediction_panel, overlay(best.image, np.roll(best.instances, 3, axis=1)))
    assert len(figure.axes) == 3 * 4


@pytest.mark.parametrize("shift", [0, 3])
def test_overlay_outlines_only_the_instances(synthetic_tiles, shift):
    tile = synthetic_tiles[0]
    drawn = overlay(tile.image, np.roll(tile.instances, shift, axis=0))
    changed = np.any(drawn != tile.image, axis=-1)
    assert changed.any() and not changed[np.roll(tile.instances, shift, axis=0) == 0].any()
