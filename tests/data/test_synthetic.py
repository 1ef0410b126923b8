import numpy as np
import pytest
from scipy import ndimage

from fednuclei.data.synthetic import StainProfile, generate_synthetic_tiles, hospital_stain, synthetic_tile

N_HOSPITALS, PER_HOSPITAL = 4, 6


@pytest.fixture(scope="module")
def tiles():
    return generate_synthetic_tiles(n_hospitals=N_HOSPITALS, tiles_per_hospital=PER_HOSPITAL, size=256, seed=0)


def _optical_density(image: np.ndarray) -> np.ndarray:
    return -np.log10(np.maximum(image.astype(np.float64), 1.0) / 255.0)


def _touching_pairs(instances: np.ndarray) -> set[tuple[int, int]]:
    pairs = set()
    for a, b in ((instances[:, :-1], instances[:, 1:]), (instances[:-1], instances[1:])):
        touching = (a > 0) & (b > 0) & (a != b)
        pairs |= {(min(p), max(p)) for p in zip(a[touching].tolist(), b[touching].tolist())}
    return pairs


def test_shapes_dtypes_and_metadata(tiles):
    assert len(tiles) == N_HOSPITALS * PER_HOSPITAL
    expected = [f"synthetic_h{k}_{i:03d}" for k in range(N_HOSPITALS) for i in range(PER_HOSPITAL)]
    assert [t.name for t in tiles] == expected
    for tile in tiles:
        k = int(tile.name.split("_h")[1].split("_")[0])
        assert tile.group == f"hospital_{k}"
        assert (tile.source, tile.organ, tile.subset, tile.has_instances) == ("synthetic", "synthetic", "train", True)
        assert tile.image.shape == (256, 256, 3) and tile.image.dtype == np.uint8
        assert tile.instances.shape == (256, 256) and tile.instances.dtype == np.int32
        n = int(tile.instances.max())
        assert tile.boxes.shape == (n, 4) and tile.boxes.dtype == np.float32
        assert tile.points.shape == (n, 2) and tile.points.dtype == np.float32


def test_same_arguments_give_identical_arrays():
    first = generate_synthetic_tiles(2, 2, size=64, seed=3)
    second = generate_synthetic_tiles(2, 2, size=64, seed=3)
    for a, b in zip(first, second, strict=True):
        assert a.name == b.name
        np.testing.assert_array_equal(a.image, b.image)
        np.testing.assert_array_equal(a.instances, b.instances)
        np.testing.assert_array_equal(a.boxes, b.boxes)
        np.testing.assert_array_equal(a.points, b.points)


def test_different_seeds_give_different_tiles():
    first = generate_synthetic_tiles(2, 2, size=64, seed=3)
    second = generate_synthetic_tiles(2, 2, size=64, seed=4)
    for a, b in zip(first, second, strict=True):
        assert not np.array_equal(a.image, b.image)
        assert not np.array_equal(a.instances, b.instances)


def test_tiles_do_not_depend_on_how_many_are_generated():
    small = generate_synthetic_tiles(2, 2, size=64, seed=5)
    large = {t.name: t for t in generate_synthetic_tiles(3, 3, size=64, seed=5)}
    for tile in small:
        np.testing.assert_array_equal(tile.image, large[tile.name].image)
        np.testing.assert_array_equal(tile.instances, large[tile.name].instances)


def test_labels_contiguous_nonempty_connected_and_in_range(tiles):
    for tile in tiles:
        labels, counts = np.unique(tile.instances, return_counts=True)
        n = int(labels[-1])
        assert 25 <= n <= 60, tile.name  # the requested count fits a 256 px tile
        np.testing.assert_array_equal(labels, np.arange(n + 1))
        assert counts.min() > 0
        for label, found in enumerate(ndimage.find_objects(tile.instances), start=1):
            _, parts = ndimage.label(tile.instances[found] == label)
            assert parts == 1, f"{tile.name}: nucleus {label} is split in {parts} pieces"


def test_nucleus_sizes_match_radii_of_3_to_12_px(tiles):
    areas = np.concatenate([np.bincount(t.instances.ravel())[1:] for t in tiles])
    assert areas.max() <= np.pi * 13.5**2
    radii = np.sqrt(areas / np.pi)
    assert np.median(radii) > 3.0
    assert (radii > 8.0).any() and (radii < 5.0).any()  # varied sizes, not one kind


def test_some_nuclei_touch_exactly(tiles):
    touching = total = 0
    for tile in tiles:
        pairs = _touching_pairs(tile.instances)
        touching += len({label for pair in pairs for label in pair})
        total += int(tile.instances.max())
    assert touching > 0
    # Placed on purpose, not only by chance (chance alone leaves about 5 % touching).
    assert touching / total >= 0.2


def test_nuclei_are_darker_and_more_purple_than_background(tiles):
    for tile in tiles:
        nuclei = tile.instances > 0
        density = _optical_density(tile.image).sum(axis=2)
        assert density[nuclei].mean() > 1.5 * density[~nuclei].mean(), tile.name
        rgb = tile.image.astype(np.float64) + 1.0
        blue_over_red = rgb[..., 2] / rgb[..., 0]
        assert blue_over_red[nuclei].mean() > blue_over_red[~nuclei].mean() + 0.05, tile.name


def test_background_is_pink(tiles):
    for tile in tiles:
        background = tile.image[tile.instances == 0].astype(np.float64).mean(axis=0)
        red, green, blue = background
        assert red > blue > green, tile.name  # eosin absorbs green most


def test_hospitals_differ_in_mean_colour_more_than_tiles_within_one(tiles):
    means = np.array([t.image.reshape(-1, 3).mean(axis=0) for t in tiles]).reshape(N_HOSPITALS, PER_HOSPITAL, 3)
    centres = means.mean(axis=1)
    within = np.linalg.norm(means - centres[:, None], axis=2).mean()
    between = np.linalg.norm(centres[:, None] - centres[None], axis=2)[np.triu_indices(N_HOSPITALS, 1)]
    assert between.min() > within
    assert between.mean() > 3 * within
    nearest = np.argmin(np.linalg.norm(means[:, :, None] - centres[None, None], axis=3), axis=2)
    assert (nearest == np.arange(N_HOSPITALS)[:, None]).mean() >= 0.75


def test_hospital_stain_is_seeded_and_differs_between_hospitals():
    assert hospital_stain(0, 1) == hospital_stain(0, 1)
    assert hospital_stain(0, 1) != hospital_stain(0, 2)
    assert hospital_stain(0, 1) != hospital_stain(1, 1)
    for vector in (hospital_stain(0, 1).hematoxylin, hospital_stain(0, 1).eosin):
        assert np.linalg.norm(vector) == pytest.approx(1.0)


def test_boxes_and_points_match_instances(tiles):
    for tile in tiles:
        for label, (box, point) in enumerate(zip(tile.boxes, tile.points, strict=True), start=1):
            ys, xs = np.nonzero(tile.instances == label)
            np.testing.assert_array_equal(box, [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
            x, y = point.astype(int)
            assert tile.instances[y, x] == label, f"{tile.name}: point of nucleus {label} lies outside it"


def test_low_level_tile_without_nuclei_is_pink_background():
    image, instances = synthetic_tile(np.random.default_rng(0), 64, StainProfile(), 0)
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8
    assert instances.shape == (64, 64) and instances.dtype == np.int32
    assert not instances.any()
    red, green, blue = image.reshape(-1, 3).mean(axis=0)
    assert red > blue > green


def test_small_tiles_hold_fewer_nuclei_without_failing():
    for tile in generate_synthetic_tiles(1, 3, size=32, seed=0):
        n = int(tile.instances.max())
        assert 1 <= n < 25
        np.testing.assert_array_equal(np.unique(tile.instances), np.arange(n + 1))


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"n_hospitals": 0}, "n_hospitals"),
        ({"n_hospitals": 1.5}, "n_hospitals"),
        ({"tiles_per_hospital": 0}, "tiles_per_hospital"),
        ({"size": 31}, "size"),
        ({"seed": -1}, "seed"),
        ({"nuclei_per_tile": (10, 5)}, "nuclei_per_tile"),
        ({"nuclei_per_tile": (-1, 5)}, "nuclei_per_tile"),
        ({"nuclei_per_tile": (5,)}, "nuclei_per_tile"),
        ({"nuclei_per_tile": (5, 10**6)}, "nuclei_per_tile"),
    ],
)
def test_invalid_arguments_raise_naming_the_argument(kwargs, argument):
    with pytest.raises(ValueError, match=argument):
        generate_synthetic_tiles(**kwargs)


def test_ink_marks_only_the_named_hospitals_and_only_their_stroma(tiles):
    inked = generate_synthetic_tiles(n_hospitals=N_HOSPITALS, tiles_per_hospital=PER_HOSPITAL, size=256, seed=0,
                                     inked_hospitals=[1, 3])
    for plain, marked in zip(tiles, inked):
        assert np.array_equal(plain.instances, marked.instances)
        changed = (plain.image != marked.image).any(axis=2)
        if plain.group in ("hospital_0", "hospital_2"):
            assert not changed.any(), plain.name
            continue
        assert 0.002 < changed.mean() < 0.05, plain.name  # 4-8 spots of a few hundred px on 65536 px
        assert not (changed & (plain.instances > 0)).any()
        stroma = plain.image[plain.instances == 0].astype(float)
        assert marked.image[changed].mean() < 0.4 * stroma.mean()  # ink is far darker than stroma


def test_ink_of_a_missing_hospital_is_refused():
    with pytest.raises(ValueError, match="inked_hospitals"):
        generate_synthetic_tiles(n_hospitals=2, tiles_per_hospital=1, size=64, inked_hospitals=[2])


def test_low_level_arguments_are_validated():
    with pytest.raises(ValueError, match="size"):
        synthetic_tile(np.random.default_rng(0), 16, StainProfile(), 5)
    with pytest.raises(ValueError, match="n_nuclei"):
        synthetic_tile(np.random.default_rng(0), 64, StainProfile(), -1)
