import numpy as np
import pytest
import torch
from torch import nn

from fednuclei.model.inference import blend_window, predict_probabilities
from fednuclei.model.unet import UNet, image_to_tensor


def full_forward(model, image):
    model.eval()
    with torch.no_grad():
        return torch.sigmoid(model(image_to_tensor(image)[None]))[0].numpy()


def random_image(height, width, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def test_one_patch_image_equals_a_single_forward_pass(tiles64, tiny_unet):
    model = tiny_unet()
    image = tiles64[0].image
    probs = predict_probabilities(model, image, patch=64)
    assert probs.shape == (2, 64, 64) and probs.dtype == np.float32
    np.testing.assert_allclose(probs, full_forward(model, image), atol=1e-6)


def test_pointwise_model_is_reproduced_exactly_across_windows():
    # a 1x1 conv sees no context: any error would come from placing or normalising the windows
    torch.manual_seed(0)
    model = nn.Conv2d(3, 2, 1)
    image = random_image(100, 77)
    probs = predict_probabilities(model, image, patch=32, overlap=0.25, batch_size=3)
    np.testing.assert_allclose(probs, full_forward(model, image), atol=1e-5)


def test_no_seams_for_a_translation_invariant_model():
    # a 5x5 conv differs from the full-image pass only in each window's 2 outer px, where the blend
    # window gives it almost no weight; an unweighted average would show seams of ~0.1 here
    torch.manual_seed(0)
    model = nn.Conv2d(3, 2, 5, padding=2)
    with torch.no_grad():
        model.weight.mul_(4.0)
    image = random_image(96, 96, seed=1)
    probs = predict_probabilities(model, image, patch=32, overlap=0.5)
    assert np.abs(probs - full_forward(model, image)).max() < 2e-3


def test_small_image_is_padded_and_cropped_back(tiny_unet):
    model = tiny_unet().train()
    probs = predict_probabilities(model, random_image(20, 45), patch=32)
    assert probs.shape == (2, 20, 45)
    assert (probs >= 0).all() and (probs <= 1).all()
    assert model.training  # mode restored


def test_blend_window_is_positive_and_peaks_in_the_middle():
    window = blend_window(64)
    assert window.shape == (64, 64) and window.min() > 0
    assert window[31:33, 31:33].min().item() == window.max().item()
    torch.testing.assert_close(window, window.flip(0).T)


@pytest.mark.parametrize("overlap", [-0.1, 1.0])
def test_bad_overlap_is_refused(tiny_unet, overlap):
    with pytest.raises(ValueError, match="overlap"):
        predict_probabilities(tiny_unet(), random_image(8, 8), patch=8, overlap=overlap)


def test_test_time_augmentation_is_equivariant_and_changes_the_prediction():
    torch.manual_seed(0)
    model = UNet(width=4, depth=2, groups=2)
    image = (np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)
    plain = predict_probabilities(model, image, patch=64)
    averaged = predict_probabilities(model, image, patch=64, tta=True)
    assert averaged.shape == plain.shape and not np.allclose(averaged, plain)
    flipped = predict_probabilities(model, np.ascontiguousarray(image[:, ::-1]), patch=64, tta=True)
    np.testing.assert_allclose(flipped[:, :, ::-1], averaged, atol=1e-5)
