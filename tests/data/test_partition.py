from dataclasses import replace

import numpy as np
import pytest

from fednuclei.data.partition import (
    ClientConfigError,
    build_manifest,
    client_partitions,
    evaluation_tiles,
    split_counts,
    tile_generations,
)
from fednuclei.data.tiles import load_tile_sets, save_tile_sets

FRACTIONS = {"train": 0.6, "val": 0.2, "test": 0.2}
MIXED = [
    {"name": "full", "source": "synthetic", "groups": ["hospital_0"], "supervision": "pixel"},
    {"name": "boxes", "source": "synthetic", "groups": ["hospital_1"], "supervision": "bbox"},
    {"name": "dots", "source": "synthetic", "groups": ["hospital_2"], "supervision": "points"},
]


def test_weak_clients_hold_no_pixel_masks_in_memory_or_on_disk(tmp_path, synthetic_tiles):
    clients = MIXED[:2] + [{**MIXED[2], "name": "unlabelled", "supervision": "none"}]
    manifest = build_manifest(synthetic_tiles, clients, FRACTIONS, seed=0)
    partitions = client_partitions(synthetic_tiles, manifest)
    save_tile_sets(partitions, tmp_path / "partitions")
    for source in (partitions, load_tile_sets(tmp_path / "partitions")):
        assert all(t.instances is not None for t in source["full"])
        assert all(t.instances is None and t.points is None and len(t.boxes) > 0 for t in source["boxes"])
        assert all(t.instances is None and t.boxes is None and t.points is None for t in source["unlabelled"])
    for weak in ("boxes", "unlabelled"):
        assert list((tmp_path / "partitions" / weak / "instances").iterdir()) == []


def test_full_label_view_keeps_every_clients_masks(synthetic_tiles):
    manifest = build_manifest(synthetic_tiles, MIXED, FRACTIONS, seed=0)
    partitions = client_partitions(synthetic_tiles, manifest, full_labels=True)
    assert all(t.instances is not None for tiles in partitions.values() for t in tiles)
    assert {t.supervision for t in partitions["boxes"]} == {"bbox"}


def test_points_client_keeps_points_only(synthetic_tiles):
    manifest = build_manifest(synthetic_tiles, MIXED, FRACTIONS, seed=0)
    dots = client_partitions(synthetic_tiles, manifest)["dots"]
    assert all(t.instances is None and t.boxes is None and len(t.points) == t.n_nuclei > 0 for t in dots)


def test_partitions_hold_train_and_val_and_scoring_set_keeps_full_truth(synthetic_tiles):
    manifest = build_manifest(synthetic_tiles, MIXED, FRACTIONS, seed=0)
    partitions = client_partitions(synthetic_tiles, manifest)
    assert {t.split for tiles in partitions.values() for t in tiles} == {"train", "val"}
    held_out = evaluation_tiles(synthetic_tiles, manifest)
    assert {t.split for t in held_out} == {"val", "test"}
    assert all(t.instances is not None for t in held_out)


def test_splits_are_disjoint_complete_and_seeded(synthetic_tiles):
    first = build_manifest(synthetic_tiles, MIXED, FRACTIONS, seed=3)
    again = build_manifest(synthetic_tiles, MIXED, FRACTIONS, seed=3)
    assert first.equals(again)
    assert first["tile"].is_unique and len(first) == len(synthetic_tiles)
    for _, rows in first.groupby("client"):
        assert rows["split"].value_counts().to_dict() == {"train": 3, "val": 1, "test": 1}
    others = [build_manifest(synthetic_tiles, MIXED, FRACTIONS, seed=s)["split"].tolist() for s in range(4, 9)]
    assert any(o != first["split"].tolist() for o in others)


def test_clients_can_select_tiles_by_name(synthetic_tiles):
    chosen = [t.name for t in synthetic_tiles[:3]]
    clients = [{"name": "few", "source": "synthetic", "groups": ["hospital_0"], "tiles": chosen, "supervision": "pixel"}]
    manifest = build_manifest(synthetic_tiles, clients, FRACTIONS, seed=0)
    assert sorted(manifest["tile"]) == sorted(chosen)
    with pytest.raises(ClientConfigError, match=r"tiles \['nope'\] match no synthetic tile"):
        build_manifest(synthetic_tiles, [{**clients[0], "tiles": ["nope"]}], FRACTIONS, seed=0)


def test_split_by_group_keeps_each_group_in_one_split(synthetic_tiles):
    tiles = [replace(t, group=f"patient_{i // 2}") for i, t in enumerate(synthetic_tiles)]
    clients = [{"name": "all", "source": "synthetic", "supervision": "pixel", "split_by": "group"}]
    manifest = build_manifest(tiles, clients, FRACTIONS, seed=0)
    assert manifest.groupby("group")["split"].nunique().max() == 1
    assert set(manifest["split"]) == {"train", "val", "test"}


def test_official_test_tiles_become_the_external_test_set(synthetic_tiles):
    tiles = [replace(t, subset="test") if t.group == "hospital_0" else t for t in synthetic_tiles]
    clients = [{"name": "rest", "source": "synthetic", "supervision": "pixel"}]
    manifest = build_manifest(tiles, clients, FRACTIONS, seed=0)
    external = manifest[manifest["group"] == "hospital_0"]
    assert (external["split"] == "external_test").all() and (external["client"] == "").all()
    assert (manifest.loc[manifest["group"] != "hospital_0", "client"] == "rest").all()


@pytest.mark.parametrize(
    "n, expected",
    [(10, (6, 2, 2)), (6, (4, 1, 1)), (5, (3, 1, 1)), (3, (1, 1, 1)), (2, (1, 1, 0)), (1, (1, 0, 0))],
)
def test_split_counts(n, expected):
    counts = split_counts(n, FRACTIONS)
    assert (counts["train"], counts["val"], counts["test"]) == expected


@pytest.mark.parametrize(
    "change, message",
    [
        ({"supervision": "scribbles"}, "unknown supervision level 'scribbles'"),
        ({"organs": ["lung"]}, r"organs \['lung'\] match no synthetic tile"),
        ({"source": "tnbc"}, "source 'tnbc' has no tile"),
        ({"colour": "blue"}, r"unknown setting\(s\) \['colour'\]"),
        ({"join_round": -1}, "join_round must be a non-negative integer"),
        ({"split_by": "organ"}, "split_by must be 'tile' or 'group'"),
    ],
)
def test_bad_client_settings_are_named(synthetic_tiles, change, message):
    clients = [{**MIXED[0], **change}, MIXED[1]]
    with pytest.raises(ClientConfigError, match=message) as error:
        build_manifest(synthetic_tiles, clients, FRACTIONS, seed=0)
    assert "full" in str(error.value)


def test_a_tile_given_to_two_clients_is_refused(synthetic_tiles):
    clients = [MIXED[0], {**MIXED[1], "groups": ["hospital_0", "hospital_1"]}]
    with pytest.raises(ClientConfigError, match="'boxes' selects tiles already given to another client"):
        build_manifest(synthetic_tiles, clients, FRACTIONS, seed=0)


def test_duplicate_client_names_are_refused(synthetic_tiles):
    with pytest.raises(ClientConfigError, match="duplicate client name 'full'"):
        build_manifest(synthetic_tiles, [MIXED[0], MIXED[0]], FRACTIONS, seed=0)


def test_manifest_columns(synthetic_tiles):
    manifest = build_manifest(synthetic_tiles, MIXED, FRACTIONS, seed=0)
    expected = {"tile", "source", "organ", "client", "split", "supervision", "has_instances", "n_nuclei", "height", "width"}
    assert expected <= set(manifest.columns)
    assert (manifest["n_nuclei"] > 0).all()
    assert np.array_equal(manifest["height"].unique(), [64])


# --- data that arrives later ---------------------------------------------------------------------

def test_new_tiles_form_a_new_generation_and_known_ones_keep_theirs():
    first = tile_generations({}, ["a", "b"])
    assert first == {"a": 1, "b": 1}
    assert tile_generations(first, ["b", "a", "c", "d"]) == {"a": 1, "b": 1, "c": 2, "d": 2}
    assert tile_generations(first, ["a"]) == first  # a tile that disappeared stays known


def test_tiles_that_arrive_later_keep_the_earlier_splits_and_train_in_the_incremental_stage(synthetic_tiles):
    clients = [{"name": "h0", "source": "synthetic", "groups": ["hospital_0", "hospital_1"], "supervision": "pixel"},
               {"name": "late", "source": "synthetic", "groups": ["hospital_2"], "supervision": "bbox",
                "join_round": 3}]
    fractions = {"train": 0.6, "val": 0.2, "test": 0.2}
    early = [t for t in synthetic_tiles if t.name[-1] in "0123" or t.group == "hospital_2"]
    before = build_manifest(early, clients, fractions, seed=0)
    generations = tile_generations(tile_generations({}, [t.name for t in early]), [t.name for t in synthetic_tiles])
    after = build_manifest(synthetic_tiles, clients, fractions, seed=0, generations=generations)
    kept = after.set_index("tile").loc[before["tile"], "split"]
    assert list(kept) == list(before["split"])  # new data moved no tile to another split
    new = after[after["generation"] == 2]
    assert len(new) == 2 and set(new["client"]) == {"h0"} and new["incremental"].all()
    assert after.loc[after["client"] == "late", "incremental"].all()  # a joiner's tiles are all incremental
    assert not after.loc[(after["client"] == "h0") & (after["generation"] == 1), "incremental"].any()
    first_stage = client_partitions(synthetic_tiles, after, incremental=False)
    added = client_partitions(synthetic_tiles, after, incremental=True)
    assert set(first_stage) == set(added) == {"h0", "late"} and first_stage["late"] == []
    assert {t.name for t in added["h0"]} <= set(new["tile"])
