import json

import numpy as np
import pytest

from fednuclei.data.partition import restrict_labels
from fednuclei.data.tiles import load_tile_sets, load_tiles, save_tile_sets, save_tiles


def test_round_trip_keeps_pixels_labels_and_metadata(tmp_path, synthetic_tiles):
    tiles = synthetic_tiles[:3]
    save_tiles(tiles, tmp_path / "set")
    loaded = load_tiles(tmp_path / "set")
    assert [t.name for t in loaded] == [t.name for t in tiles]
    for before, after in zip(tiles, loaded):
        np.testing.assert_array_equal(after.image, before.image)
        np.testing.assert_array_equal(after.instances, before.instances)
        np.testing.assert_allclose(after.boxes, before.boxes)
        np.testing.assert_allclose(after.points, before.points)
        assert (after.source, after.organ, after.group, after.has_instances) == (
            before.source, before.organ, before.group, before.has_instances)


def test_weak_tile_is_stored_without_an_instance_file(tmp_path, synthetic_tiles):
    weak = restrict_labels(synthetic_tiles[0], "bbox")
    save_tiles([weak], tmp_path / "set")
    assert list((tmp_path / "set" / "instances").iterdir()) == []
    (loaded,) = load_tiles(tmp_path / "set")
    assert loaded.instances is None and loaded.points is None
    assert len(loaded.boxes) == len(synthetic_tiles[0].boxes)


def test_failed_save_keeps_the_previous_folder_and_leaves_no_staging(tmp_path, synthetic_tiles):
    save_tiles(synthetic_tiles[:2], tmp_path / "set")
    with pytest.raises(ValueError, match="duplicate tile names"):
        save_tiles([synthetic_tiles[0], synthetic_tiles[0]], tmp_path / "set")
    assert [p.name for p in tmp_path.iterdir()] == ["set"]
    assert len(json.loads((tmp_path / "set" / "tiles.json").read_text())) == 2


def test_tile_sets_are_keyed_by_folder(tmp_path, synthetic_tiles):
    save_tile_sets({"a": synthetic_tiles[:2], "b": synthetic_tiles[2:3]}, tmp_path / "sets")
    loaded = load_tile_sets(tmp_path / "sets")
    assert {k: len(v) for k, v in loaded.items()} == {"a": 2, "b": 1}


def test_loading_a_folder_that_is_no_tile_set_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a tile set folder"):
        load_tiles(tmp_path)
