from dataclasses import replace

import pytest

from fednuclei.data.tiles import load_tile_sets, save_tile_sets
from fednuclei.methods.client_data import cached_tiles, load_client_data


def test_training_tiles_come_from_every_root_and_validation_from_val_tiles(client_data_root, tiny_settings):
    patches = load_tile_sets(client_data_root / "05_model_input/client_patches")
    # A second root (augmented copies) with one masked and one weakly labelled patch.
    augmented = {name: [replace(tiles[0], name=f"aug_{tiles[0].name}"),
                        replace(tiles[1], name=f"weak_{tiles[1].name}", instances=None)]
                 for name, tiles in patches.items()}
    save_tile_sets(augmented, client_data_root / "augmented")
    settings = tiny_settings(client_data_root, train_roots=("05_model_input/client_patches", "augmented"))
    data = load_client_data("alpha", client_data_root, settings)
    assert [t.name for t in data.train] == [t.name for t in patches["alpha"]] + [f"aug_{patches['alpha'][0].name}"]
    assert [t.split for t in data.val] == ["val"] and data.val[0].instances is not None


def test_missing_client_folder_is_named(client_data_root, tiny_settings):
    with pytest.raises(FileNotFoundError, match="gamma"):
        load_client_data("gamma", client_data_root, tiny_settings(client_data_root, clients=("alpha", "gamma")))


def test_tiles_are_cached_until_the_folder_is_rewritten(client_data_root):
    folder = client_data_root / "04_feature/client_partitions"
    first = cached_tiles(folder / "alpha")
    assert cached_tiles(folder / "alpha") is first
    save_tile_sets({"alpha": first[:1]}, folder)
    assert len(cached_tiles(folder / "alpha")) == 1
