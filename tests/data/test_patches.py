import numpy as np
import pytest

from fednuclei.data.patches import crop_tile, extract_patches, patch_origins
from fednuclei.data.tiles import Tile


def test_origins_cover_the_tile_with_the_last_patch_flush():
    assert patch_origins(1000, 256, 256) == [0, 256, 512, 744]
    assert patch_origins(512, 256, 256) == [0, 256]
    assert patch_origins(64, 64, 32) == [0]


@pytest.mark.parametrize("size, stride", [(300, 0), (300, 301)])
def test_bad_stride_is_refused(size, stride):
    with pytest.raises(ValueError, match="stride"):
        patch_origins(1000, size, stride)


def test_patches_reassemble_the_tile(synthetic_tiles):
    tile = synthetic_tiles[0]
    patches = extract_patches([tile], size=32, stride=32)
    assert len(patches) == 4
    canvas = np.zeros_like(tile.instances)
    for patch in patches:
        y, x = patch.extra["origin"]
        canvas[y : y + 32, x : x + 32] = patch.instances
    np.testing.assert_array_equal(canvas, tile.instances)


def test_crop_clips_boxes_and_drops_outside_points():
    tile = Tile(
        name="t", image=np.zeros((20, 20, 3), np.uint8), source="synthetic",
        boxes=np.float32([[2, 2, 6, 6], [8, 8, 14, 12], [15, 15, 18, 18]]),
        points=np.float32([[3, 3], [11, 10], [16, 16]]),
    )
    patch = crop_tile(tile, y=5, x=5, size=8)
    np.testing.assert_allclose(patch.boxes, [[0, 0, 1, 1], [3, 3, 8, 7]])
    np.testing.assert_allclose(patch.points, [[6, 5]])
    assert patch.instances is None


def test_tile_smaller_than_a_patch_is_named(synthetic_tiles):
    with pytest.raises(ValueError, match=synthetic_tiles[0].name):
        extract_patches(synthetic_tiles[:1], size=128, stride=128)
