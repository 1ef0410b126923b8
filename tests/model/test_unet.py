import numpy as np
import pytest
import torch

from fednuclei.model.unet import UNet, image_to_tensor


@pytest.mark.parametrize("height, width", [(64, 64), (37, 50), (1, 5), (33, 17)])
def test_output_has_the_input_size_for_any_size(height, width):
    model = UNet(width=8, depth=2).eval()
    out = model(torch.rand(2, 3, height, width))
    assert out.shape == (2, 2, height, width)
    assert torch.isfinite(out).all()


def test_depth_and_width_set_the_levels():
    model = UNet(width=4, depth=3, out_channels=3)
    assert len(model.down) == 3
    assert model.down[-1][0].out_channels == 32
    assert model.head.out_channels == 3
    assert model(torch.rand(1, 3, 24, 24)).shape == (1, 3, 24, 24)


def test_groups_that_do_not_divide_the_channels_are_reduced():
    model = UNet(width=6, depth=1, groups=4)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.GroupNorm)]
    assert {(n.num_groups, n.num_channels) for n in norms} == {(2, 6), (4, 12)}


@pytest.mark.parametrize("kwargs", [{"depth": 0}, {"width": 0}, {"groups": 2.0}])
def test_bad_architecture_is_refused(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        UNet(**kwargs)


def test_image_to_tensor_scales_to_unit_range():
    image = np.zeros((4, 5, 3), np.uint8)
    image[1, 2] = (255, 0, 51)
    x = image_to_tensor(image)
    assert x.shape == (3, 4, 5) and x.dtype == torch.float32
    assert x[:, 1, 2].tolist() == pytest.approx([1.0, 0.0, 0.2])
    with pytest.raises(ValueError, match="uint8"):
        image_to_tensor(image.astype(np.float32))
