import json

import numpy as np
import pytest
import torch
from PIL import Image

from fednuclei.commands import main
from fednuclei.data.images import DataWarning
from fednuclei.model.files import save_model
from fednuclei.model.unet import UNet
from tests.sample_data import decompression_bomb


def random_unet_file(path, seed: int):
    """A tiny U-Net with random weights (from ``seed``), saved to ``path``."""
    torch.manual_seed(seed)
    save_model(UNet(width=4, depth=2, groups=2), path)
    return path


@pytest.fixture
def model_file(tmp_path):
    return random_unet_file(tmp_path / "model.pt", seed=0)


@pytest.fixture
def blob_model_file(tmp_path):
    """A random U-Net whose output crosses the thresholds on the synthetic tiles: it finds "nuclei"."""
    return random_unet_file(tmp_path / "blobs.pt", seed=3)


@pytest.fixture
def images(tmp_path, synthetic_tiles):
    folder = tmp_path / "images"
    folder.mkdir()
    rgb = synthetic_tiles[0].image
    Image.fromarray(rgb).save(folder / "rgb.png")
    Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])).save(folder / "rgba.png")
    Image.fromarray(rgb[..., 0]).save(folder / "gray.tif")
    Image.fromarray(rgb).save(folder / "photo.jpg")
    return folder


def test_predict_writes_labels_and_overlays_for_every_image(tmp_path, model_file, images):
    out = tmp_path / "out"
    with pytest.warns(DataWarning, match="gray.tif: grayscale"):
        assert main(["predict", "--model", str(model_file), "--input", str(images), "--output", str(out)]) == 0
    for stem in ("rgb", "rgba", "gray", "photo"):
        labels = Image.open(out / f"{stem}.png")
        assert labels.mode in ("I;16", "I") and labels.size == (64, 64)
        assert Image.open(out / f"{stem}_overlay.png").mode == "RGB"


@pytest.mark.filterwarnings("ignore::fednuclei.data.images.DataWarning")
def test_an_unreadable_image_is_named_and_the_others_are_still_written(tmp_path, model_file, images, capsys):
    (images / "broken.png").write_bytes(Image.open(images / "rgb.png").tobytes()[:100])
    out = tmp_path / "out"
    assert main(["predict", "--model", str(model_file), "--input", str(images), "--output", str(out)]) == 1
    assert "broken.png" in capsys.readouterr().err
    assert (out / "rgb.png").is_file() and not (out / "broken.png").exists()


@pytest.mark.filterwarnings("ignore::fednuclei.data.images.DataWarning")
def test_a_decompression_bomb_is_skipped_by_name_and_the_others_are_written(tmp_path, model_file, images, capsys):
    bomb = decompression_bomb(images / "bomb.png", 50000, 50000)
    assert bomb.stat().st_size < 500
    out = tmp_path / "out"
    assert main(["predict", "--model", str(model_file), "--input", str(images), "--output", str(out)]) == 1
    assert f"skipped {bomb}: image {bomb} declares an image too large to read" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir() if "overlay" not in p.name) == ["gray.png", "photo.png", "rgb.png",
                                                                                 "rgba.png"]


def test_an_output_that_is_a_file_is_refused(tmp_path, model_file, images, capsys):
    existing = tmp_path / "results.png"
    existing.write_bytes(b"kept")
    assert main(["predict", "--model", str(model_file), "--input", str(images), "--output", str(existing)]) == 2
    assert f"error: output {existing} is a file, not a folder" in capsys.readouterr().err
    assert existing.read_bytes() == b"kept"
    assert main(["predict", "--model", str(model_file), "--input", str(images), "--output", str(existing / "sub")]) == 2
    assert f"error: output folder {existing / 'sub'} cannot be made: Not a directory" in capsys.readouterr().err


def test_a_model_file_of_the_wrong_kind_is_refused(tmp_path, images, capsys):
    wrong = tmp_path / "weights.pt"
    torch.save(UNet(width=4, depth=2, groups=2).state_dict(), wrong)
    assert main(["predict", "--model", str(wrong), "--input", str(images), "--output", str(tmp_path / "o")]) == 2
    assert "plain state dict" in capsys.readouterr().err


def test_a_missing_input_folder_is_named(tmp_path, model_file, capsys):
    assert main(["predict", "--model", str(model_file), "--input", str(tmp_path / "nope"), "--output", str(tmp_path)]) == 2
    assert f"input folder {tmp_path / 'nope'} does not exist" in capsys.readouterr().err


@pytest.mark.filterwarnings("ignore::fednuclei.data.images.DataWarning")
def test_geojson_format_writes_one_detection_per_nucleus_of_the_label_map(tmp_path, blob_model_file, images):
    out = tmp_path / "out"
    assert main(["predict", "--model", str(blob_model_file), "--input", str(images), "--output", str(out),
                 "--format", "both"]) == 0
    for stem in ("rgb", "rgba", "gray", "photo"):
        labels = np.asarray(Image.open(out / f"{stem}.png"))
        features = json.loads((out / f"{stem}.geojson").read_text())["features"]
        assert labels.max() > 0
        assert [f["properties"]["measurements"]["Label"] for f in features] == np.unique(labels[labels > 0]).tolist()
        for feature in features:
            measurements = feature["properties"]["measurements"]
            assert measurements["Area px^2"] == (labels == measurements["Label"]).sum()
            assert 0.0 <= measurements["Foreground probability mean"] <= 1.0


@pytest.mark.filterwarnings("ignore::fednuclei.data.images.DataWarning")
def test_geojson_format_alone_writes_only_geojson(tmp_path, blob_model_file, images):
    out = tmp_path / "out"
    assert main(["predict", "--model", str(blob_model_file), "--input", str(images), "--output", str(out),
                 "--format", "geojson"]) == 0
    written = sorted(path.name for path in out.iterdir())
    assert written == [f"{stem}.geojson" for stem in ("gray", "photo", "rgb", "rgba")]
