import numpy as np
import pytest
import torch
from PIL import Image

from fednuclei.commands import main
from fednuclei.data.images import DataWarning
from fednuclei.model.files import save_model
from fednuclei.model.unet import UNet


@pytest.fixture
def model_file(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "model.pt"
    save_model(UNet(width=4, depth=2, groups=2), path)
    return path


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


def test_a_model_file_of_the_wrong_kind_is_refused(tmp_path, images, capsys):
    wrong = tmp_path / "weights.pt"
    torch.save(UNet(width=4, depth=2, groups=2).state_dict(), wrong)
    assert main(["predict", "--model", str(wrong), "--input", str(images), "--output", str(tmp_path / "o")]) == 2
    assert "plain state dict" in capsys.readouterr().err


def test_a_missing_input_folder_is_named(tmp_path, model_file, capsys):
    assert main(["predict", "--model", str(model_file), "--input", str(tmp_path / "nope"), "--output", str(tmp_path)]) == 2
    assert f"input folder {tmp_path / 'nope'} does not exist" in capsys.readouterr().err
