"""Client-side training of FedMix, FedST and FedRGD: cross pseudo-supervision, weak clients that
never see masks, and confidence-masked self-training."""

import math
from dataclasses import fields, replace

import numpy as np
import pytest
import torch
from torch import nn

from fednuclei.data.tiles import Tile, load_tile_sets, save_tile_sets
from fednuclei.methods import client_data
from fednuclei.methods.client_data import ClientData, load_client_data
from fednuclei.methods.common import LocalRound, build_model
from fednuclei.methods.fedavg import train_supervised
from fednuclei.methods.fedmix import (
    cross_supervision,
    fedmix_local_training,
    predict_foreground,
    pseudo_label_targets,
    select_for_fedmix,
)
from fednuclei.methods.fedst import fedst_local_training, self_train
from fednuclei.methods.pseudo_labels import PseudoLabelRule
from fednuclei.model.unet import FOREGROUND
from fednuclei.run_settings import RunSettings
from tests.sample_data import TRAIN_ROOT, mixed_settings, write_mixed_client_data

CPU = torch.device("cpu")


class MaskFreeTile(Tile):
    """A tile whose ``instances`` must not be read: weak-client code that touches them fails."""

    @property
    def instances(self):
        raise AssertionError(f"weak-client code read the instances of tile {self.name}")

    @instances.setter
    def instances(self, value):
        assert value is None, "a mask-free tile holds no instances"


def mask_free(tile: Tile) -> MaskFreeTile:
    values = {f.name: getattr(tile, f.name) for f in fields(Tile) if f.name != "instances"}
    return MaskFreeTile(instances=None, **values)


def rule(**changes) -> PseudoLabelRule:
    """FedMix's selection thresholds: the settings' defaults with ``changes``."""
    return PseudoLabelRule.of(RunSettings(**changes))


def client(tiles, supervision: str, name: str = "client") -> ClientData:
    return ClientData(name=name, train=list(tiles), val=[], supervision=supervision)


def blank_tile(name: str, value: int = 128, size: int = 16, **labels) -> Tile:
    return Tile(name=name, image=np.full((size, size, 3), value, np.uint8), source="synthetic", **labels)


class BrightnessModel(nn.Module):
    """Two-channel logits ``k * (mean intensity - 0.5) + b`` per pixel (k = 10, b = ``offset``):
    with b = 0 a mid-grey image (128/255) gives p ~ 0.505 (uncertain), a white one p ~ 0.99
    (confident foreground)."""

    def __init__(self, offset: float = 0.0):
        super().__init__()
        self.k = nn.Parameter(torch.tensor(10.0))
        self.b = nn.Parameter(torch.full((2, 1, 1), offset))

    def forward(self, x):
        return self.k * (x.mean(1, keepdim=True) - 0.5) + self.b


@pytest.fixture
def mixed_root(tmp_path):
    write_mixed_client_data(tmp_path)
    return tmp_path


# --- FedMix ----------------------------------------------------------------------------------

def test_cross_supervision_gives_each_model_the_other_models_pseudo_labels():
    # Image 0: model 1 sees rows 2-7, model 2 rows 2-6 of cols 2-7 (Dice 2*30/(36+30) = 0.91 >= 0.8):
    # selected, and the two targets differ by row 7. Image 1: disjoint predictions, Dice 0: dropped.
    first, second = np.zeros((2, 12, 12)), np.zeros((2, 12, 12))
    first[0, 2:8, 2:8], second[0, 2:7, 2:8] = 0.9, 0.8
    first[1, 0:3, 0:3], second[1, 8:11, 8:11] = 0.9, 0.9
    tiles = [blank_tile("agree", size=12), blank_tile("disagree", size=12)]
    wiring = cross_supervision(tiles, first, second, "none", rule(tau=0.8))
    assert wiring.selected == (0,) and wiring.usable_images == 1
    (image_1, target_1), = wiring.model_1
    (image_2, target_2), = wiring.model_2
    assert image_1 is tiles[0].image and image_2 is tiles[0].image
    np.testing.assert_array_equal(target_1[FOREGROUND], second[0] > 0.5)  # model 1 learns model 2's map
    np.testing.assert_array_equal(target_2[FOREGROUND], first[0] > 0.5)  # and vice versa
    assert not np.array_equal(target_1, target_2)
    np.testing.assert_array_equal(target_1, pseudo_label_targets(second[0] > 0.5))  # contour channel too
    assert target_1.shape == (2, 12, 12) and target_1.dtype == np.uint8


def test_cross_supervision_refines_with_the_weak_labels_and_refuses_pixel_clients():
    probs = np.zeros((1, 12, 12))
    probs[0, 1:4, 1:4] = probs[0, 7:10, 7:10] = 0.9
    # One point, inside the first blob: both targets keep that blob only.
    tiles = [blank_tile("pointed", size=12, points=np.array([[2.0, 2.0]], np.float32))]
    wiring = cross_supervision(tiles, probs, probs, "points", rule())
    expected = np.zeros((12, 12), bool)
    expected[1:4, 1:4] = True
    np.testing.assert_array_equal(wiring.model_1[0][1][FOREGROUND], expected)
    with pytest.raises(ValueError, match="ground truth"):
        cross_supervision(tiles, probs, probs, "pixel", rule())


def test_predict_foreground_is_batched_and_restores_the_mode(mixed_root):
    settings = mixed_settings(mixed_root)
    tiles = load_client_data("blind_site", mixed_root, settings).train
    model = build_model(settings).train()
    probs = predict_foreground(model, tiles, batch_size=1, device=CPU)
    assert probs.shape == (2, 64, 64) and probs.dtype == np.float32 and 0 <= probs.min() <= probs.max() <= 1
    assert model.training
    np.testing.assert_allclose(predict_foreground(model, tiles, batch_size=2, device=CPU), probs, atol=1e-5)


def test_batched_selection_matches_the_whole_client_selection(mixed_root):
    # On white both models see foreground everywhere (agree); on grey only model 2 does (Dice 0).
    settings = mixed_settings(mixed_root, batch_size=1)
    tiles = [mask_free(blank_tile(name, value)) for name, value in (("w0", 255), ("g1", 128), ("w2", 255))]
    model_1, model_2 = BrightnessModel(offset=-3.0), BrightnessModel()
    batched = select_for_fedmix(model_1, model_2, tiles, "none", settings, CPU)
    probs_1, probs_2 = (predict_foreground(m, tiles, 3, CPU) for m in (model_1, model_2))
    whole = cross_supervision(tiles, probs_1, probs_2, "none", PseudoLabelRule.of(settings))
    assert batched.selected == whole.selected == (0, 2)
    for mine, theirs in zip(batched.model_1 + batched.model_2, whole.model_1 + whole.model_2):
        assert mine[0] is theirs[0]
        np.testing.assert_array_equal(mine[1], theirs[1])


@pytest.mark.parametrize("client", ["blind_site", "box_site"])
def test_weak_fedmix_client_trains_from_a_folder_without_masks(mixed_root, client, monkeypatch):
    # Every tile the client reads refuses to show its instances: loading and training must not ask.
    read = client_data.cached_tiles
    monkeypatch.setattr(client_data, "cached_tiles", lambda folder: [mask_free(t) for t in read(folder)])
    # tau = 0 selects every image the box rule lets through, so the untrained models do train.
    settings = mixed_settings(mixed_root, tau=0.0, min_covered_boxes=0.0)
    data = load_client_data(client, mixed_root, settings)
    assert data.weak and data.val == [] and len(data.train) == 2
    tiles = data.train
    assert all(isinstance(t, MaskFreeTile) for t in tiles)
    model_1, model_2 = build_model(settings), build_model(settings, which=2)
    before_1, before_2 = ([p.detach().clone() for p in m.parameters()] for m in (model_1, model_2))
    result = fedmix_local_training([model_1, model_2], data, settings, CPU, LocalRound(3, settings.lr))
    assert result.usable_images == 2 and math.isfinite(result.loss) and result.loss > 0
    for model, before in ((model_1, before_1), (model_2, before_2)):
        assert any(not torch.equal(p, b) for p, b in zip(model.parameters(), before))


def test_weak_fedmix_client_without_agreement_does_not_train(mixed_root):
    settings = mixed_settings(mixed_root, tau=1.0)
    tiles = [mask_free(t) for t in load_client_data("blind_site", mixed_root, settings).train]
    # Force disagreement: model 2 predicts foreground everywhere, model 1 nowhere.
    model_1, model_2 = build_model(settings), build_model(settings, which=2)
    with torch.no_grad():
        model_1.head.bias.fill_(-20.0)
        model_2.head.bias.fill_(20.0)
    before = [p.detach().clone() for p in model_1.parameters()]
    result = fedmix_local_training([model_1, model_2], client(tiles, "none"), settings, CPU,
                                   LocalRound(0, settings.lr))
    assert result.usable_images == 0 and math.isnan(result.loss) and not result.trained
    assert all(torch.equal(p, b) for p, b in zip(model_1.parameters(), before))


def test_pixel_fedmix_client_trains_both_models_on_ground_truth(mixed_root):
    settings = mixed_settings(mixed_root)
    data = load_client_data("pixel_site", mixed_root, settings)
    assert not data.weak and len(data.train) == 2 and len(data.val) == 1
    result = fedmix_local_training([build_model(settings), build_model(settings, which=2)], data, settings, CPU,
                                   LocalRound(0, settings.lr))
    assert result.usable_images == 2 and result.loss > 0


def test_pixel_path_refuses_a_tile_without_masks(mixed_root):
    settings = mixed_settings(mixed_root)
    weak_tiles = load_client_data("blind_site", mixed_root, settings).train
    with pytest.raises(ValueError, match="has no instance labels"):
        train_supervised(build_model(settings), client(weak_tiles, "pixel"), settings, CPU, seed=0)
    with pytest.raises(ValueError, match="has no instance labels"):
        fedmix_local_training([build_model(settings), build_model(settings, which=2)], client(weak_tiles, "pixel"),
                              settings, CPU, LocalRound(0, settings.lr))
    with pytest.raises(ValueError, match="has no instance labels"):
        fedst_local_training([build_model(settings)], client(weak_tiles, "pixel"), settings, CPU,
                             LocalRound(0, settings.lr))


def test_pixel_client_data_leaves_unmasked_patches_out(mixed_root):
    # The pixel client's folder also holds a patch without mask: the pixel path never gets it.
    root = mixed_root / TRAIN_ROOT
    sets = {c: list(ts) for c, ts in load_tile_sets(root).items()}
    sets["pixel_site"].append(replace(sets["pixel_site"][0], name="unmasked", instances=None))
    save_tile_sets(sets, root)
    data = load_client_data("pixel_site", mixed_root, mixed_settings(mixed_root))
    assert [t.name for t in data.train if t.name == "unmasked"] == [] and len(data.train) == 2


# --- FedST / FedRGD self-training -------------------------------------------------------------

def test_self_training_skips_an_all_uncertain_batch_without_nan(mixed_root):
    settings = mixed_settings(mixed_root, batch_size=1, local_epochs=2)
    model = BrightnessModel()
    before = [p.detach().clone() for p in model.parameters()]
    result = self_train(model, [mask_free(blank_tile(f"grey{i}")) for i in range(2)], settings, CPU, seed=0)
    assert result.usable_images == 0 and not result.trained and math.isnan(result.loss)
    assert all(torch.equal(p, b) for p, b in zip(model.parameters(), before))  # no step at all


def test_self_training_steps_on_the_confident_batch_only(mixed_root):
    settings = mixed_settings(mixed_root, batch_size=1)
    model = BrightnessModel()
    before = [p.detach().clone() for p in model.parameters()]
    tiles = [mask_free(blank_tile("grey")), mask_free(blank_tile("white", value=255))]
    result = fedst_local_training([model], client(tiles, "none"), settings, CPU, LocalRound(0, settings.lr))
    assert result.usable_images == 1  # only the white image has a confident pixel
    assert math.isfinite(result.loss) and result.loss > 0
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert any(not torch.equal(p, b) for p, b in zip(model.parameters(), before))


def test_self_training_is_seeded(mixed_root):
    settings = mixed_settings(mixed_root)
    tiles = [mask_free(t) for t in load_client_data("box_site", mixed_root, settings).train]
    runs = []
    for _ in range(2):
        model = build_model(settings)
        with torch.no_grad():
            model.head.bias.fill_(-5.0)  # confident background: every image is usable
        result = self_train(model, tiles, settings, CPU, seed=11)
        runs.append((result.usable_images, result.loss, [p.detach().clone() for p in model.parameters()]))
    assert runs[0][0] == 2 and runs[0][1] == runs[1][1]
    assert all(torch.equal(a, b) for a, b in zip(runs[0][2], runs[1][2]))
