import json
from dataclasses import replace

import pandas as pd
import pytest
from kedro.io import DatasetError
from PIL import Image

from fednuclei.data.tiles import load_tile_sets
from fednuclei.datasets import TileSourcesDataset
from fednuclei.pipelines.data_processing.nodes import ingest_tiles

from ..conftest import shared_data_or_skip


def _check(completed):
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-5000:]


def test_duplicate_tile_names_across_sources_are_named(synthetic_tiles):
    renamed = [replace(synthetic_tiles[1], name=synthetic_tiles[0].name)]
    with pytest.raises(ValueError, match=f"{synthetic_tiles[0].name} \\(a and b\\)"):
        ingest_tiles({"a": synthetic_tiles[:1], "b": renamed}, clients=[], patches={"size": 32})


def test_raw_sources_skip_an_absent_optional_folder_and_name_a_missing_one(tmp_path):
    sources = {
        "extra": {"format": "tnbc", "path": str(tmp_path / "absent"), "optional": True},
        "synthetic": {"format": "synthetic", "n_hospitals": 1, "tiles_per_hospital": 1, "size": 32},
    }
    assert list(TileSourcesDataset(sources=sources).load()) == ["synthetic"]
    sources["extra"]["optional"] = False
    with pytest.raises(DatasetError, match=f"raw source 'extra': folder {tmp_path / 'absent'} does not exist"):
        TileSourcesDataset(sources=sources).load()
    with pytest.raises(DatasetError, match="unknown format 'zarr'"):
        TileSourcesDataset(sources={"x": {"format": "zarr", "path": "p"}})


@pytest.mark.slow
def test_default_data_processing_and_augmentation_on_synthetic_data(kedro_project):
    _check(kedro_project("run", "--pipeline", "data_processing"))
    _check(kedro_project("run", "--pipeline", "augmentation"))
    data = kedro_project.path / "data"

    manifest = pd.read_parquet(data / "03_primary" / "tile_manifest.parquet")
    assert len(manifest) == 40 and set(manifest["source"]) == {"synthetic"}
    assert manifest.groupby("client")["split"].value_counts().unstack()[["train", "val", "test"]].min().min() >= 1

    supervision_of = manifest.groupby("client")["supervision"].first()
    # hospital_4 joins later: its tiles are in the incremental stage's part, the others' in the first
    parts = {"client_partitions": "augmented_patches", "incremental_partitions": "incremental_augmented_patches"}
    for view in ("supervised", "full"):
        for part, patches_part in parts.items():
            partitions = load_tile_sets(data / "04_feature" / view / part)
            augmented = load_tile_sets(data / "02_augmented" / view / part)
            patches = load_tile_sets(data / "05_model_input" / view / patches_part)
            for client in (client for client in supervision_of.index if partitions[client]):
                supervision = supervision_of[client]
                holds_masks = view == "full" or supervision == "pixel"
                for folder in ("04_feature", "02_augmented"):
                    stored = list((data / folder / view / part / client / "instances").iterdir())
                    assert bool(stored) == holds_masks, (view, folder, part, client)
                assert all((p.instances is not None) == holds_masks for p in patches[client])
                assert {t.supervision for t in partitions[client]} == {supervision}
                training = {t.name for t in partitions[client] if t.split == "train"}
                assert len(augmented[client]) == 4 * len(training)
                assert {t.extra["augmented_from"] for t in augmented[client]} == training
            assert all(p.image.shape == (128, 128, 3) for tiles in patches.values() for p in tiles)
    assert {client for client in supervision_of.index
            if load_tile_sets(data / "04_feature" / "full" / "incremental_partitions")[client]} == {"hospital_4"}
    assert Image.open(data / "08_reporting" / "augmentation_contact_sheet.png").mode == "RGB"


@pytest.mark.real_data
@pytest.mark.slow
def test_real_data_processing_ingests_monuseg_and_tnbc(kedro_project):
    raw = kedro_project.path / "data" / "01_raw"
    (raw / "monuseg").symlink_to(shared_data_or_skip("monuseg"))
    (raw / "tnbc").symlink_to(shared_data_or_skip("tnbc"))
    _check(kedro_project("run", "--env", "real", "--pipeline", "data_processing"))

    manifest = pd.read_parquet(kedro_project.path / "data" / "03_primary" / "tile_manifest.parquet")
    monuseg, tnbc = manifest[manifest["source"] == "monuseg"], manifest[manifest["source"] == "tnbc"]
    # Every MoNuSeg tile has exact instances: XML polygons for 13, instance maps for 17.
    assert len(monuseg) == 30 and monuseg["has_instances"].all()
    assert monuseg["label_source"].value_counts().to_dict() == {"instance_map": 17, "polygons": 13}
    assert len(tnbc) == 50 and tnbc["has_instances"].all() and set(tnbc["label_source"]) == {"separated_mask"}
    assert set(manifest["client"]) == {"breast", "kidney", "liver", "prostate", "bladder_colon_stomach", "tnbc"}
    assert manifest.groupby("client")["split"].nunique().eq(3).all()
    assert (tnbc.groupby("group")["split"].nunique() == 1).all()
    partitions = kedro_project.path / "data" / "04_feature" / "supervised" / "client_partitions"
    index = json.loads((partitions / "liver" / "tiles.json").read_text())
    assert all(not r["stored_instances"] and r["boxes"] for r in index)
