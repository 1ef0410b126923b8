"""Dataset readers: image/mask decoding, MoNuSeg XML, TNBC and generic folders, on bad and real inputs."""

from __future__ import annotations

import re
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fednuclei.data.folders import read_image_mask_folder
from fednuclei.data.images import DataWarning, ImageReadError, read_mask, read_rgb
from fednuclei.data.monuseg import MONUSEG_TRAIN_ORGAN_TILES, MONUSEG_TRAIN_ORGANS, read_monuseg
from fednuclei.data.polygons import parse_monuseg_xml, parse_regions, polygon_area, rasterize_polygons
from fednuclei.data.tnbc import read_tnbc
from tests.sample_data import decompression_bomb

REAL_DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


# ---------------------------------------------------------------- helpers


def _rgb(height=24, width=32, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _save(array: np.ndarray, path: Path, mode: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(array) if mode is None else Image.fromarray(array).convert(mode)
    image.save(path)
    return path


def _mask(height=24, width=32) -> np.ndarray:
    mask = np.zeros((height, width), np.uint8)
    mask[2:8, 3:9] = 255
    mask[12:20, 14:22] = 255
    return mask


def _square(x0, y0, x1, y1) -> list[tuple[float, float]]:
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


def _xml(regions: list[list[tuple[float, float]]]) -> str:
    body = []
    for i, vertices in enumerate(regions, start=1):
        vs = "".join(f'<Vertex X="{x}" Y="{y}"/>' for x, y in vertices)
        body.append(f'<Region Id="{i}"><Attributes/><Vertices>{vs}</Vertices></Region>')
    return (
        '<Annotations MicronsPerPixel="0.25"><Annotation Id="1"><Regions>'
        + "".join(body)
        + "</Regions></Annotation></Annotations>"
    )


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _named(path: Path) -> str:
    return re.escape(str(path))


# ---------------------------------------------------------------- images


def test_truncated_png_names_file_and_problem(tmp_path):
    path = _save(_rgb(200, 200), tmp_path / "tile.png")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match=_named(path) + r".*corrupt or truncated"):
        read_rgb(path)
    with pytest.raises(ImageReadError, match=_named(path) + r".*corrupt or truncated"):
        read_mask(path)
    assert issubclass(ImageReadError, ValueError)


def test_truncated_tiff_and_garbage_file(tmp_path):
    tif = _save(_rgb(200, 200), tmp_path / "tile.tif")
    tif.write_bytes(tif.read_bytes()[:5000])
    with pytest.raises(ImageReadError, match=_named(tif) + r".*corrupt or truncated"):
        read_rgb(tif)
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"definitely not a png")
    with pytest.raises(ImageReadError, match=_named(junk) + r".*corrupt or truncated"):
        read_rgb(junk)


def test_rgba_drops_alpha_silently(tmp_path):
    rgba = np.dstack([_rgb(), np.full((24, 32), 7, np.uint8)])
    path = _save(rgba, tmp_path / "rgba.png")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = read_rgb(path)
    assert out.dtype == np.uint8 and out.shape == (24, 32, 3)
    np.testing.assert_array_equal(out, rgba[:, :, :3])


@pytest.mark.parametrize("mode", ["L", "LA", "1"])
def test_grayscale_replicated_with_warning(tmp_path, mode):
    path = _save(_rgb(), tmp_path / f"gray_{mode}.png", mode=mode)
    with pytest.warns(DataWarning, match=_named(path) + r".*grayscale"):
        out = read_rgb(path)
    assert out.shape == (24, 32, 3) and out.dtype == np.uint8
    assert (out[:, :, 0] == out[:, :, 1]).all() and (out[:, :, 1] == out[:, :, 2]).all()


def test_palette_colour_image_is_not_called_grayscale(tmp_path):
    path = _save(_rgb(), tmp_path / "pal.png", mode="P")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = read_rgb(path)
    assert out.shape == (24, 32, 3)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16bit_grayscale_rescaled_with_warning(tmp_path, suffix):
    values = np.linspace(0, 65535, 24 * 32).reshape(24, 32).astype(np.uint16)
    path = _save(values, tmp_path / f"deep{suffix}")
    with pytest.warns(DataWarning) as record:
        out = read_rgb(path)
    messages = [str(w.message) for w in record]
    assert any(str(path) in m and "16-bit" in m for m in messages), messages
    assert any(str(path) in m and "grayscale" in m for m in messages), messages
    assert out.dtype == np.uint8 and out.shape == (24, 32, 3)
    np.testing.assert_array_equal(out[:, :, 0], (values >> 8).astype(np.uint8))


def test_16bit_rgb_tiff_rescaled_with_warning(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    values = np.random.default_rng(1).integers(0, 65536, (8, 10, 3)).astype(np.uint16)
    path = tmp_path / "deep_rgb.tif"
    tifffile.imwrite(path, values, photometric="rgb")
    with pytest.warns(DataWarning, match=_named(path) + r".*16-bit"):
        out = read_rgb(path)
    np.testing.assert_array_equal(out, (values >> 8).astype(np.uint8))


def test_read_mask_modes(tmp_path):
    mask = _mask()
    gray = np.where(mask > 0, 3, 0).astype(np.uint8)  # not binary: anything > 0 is foreground
    expected = mask > 0
    np.testing.assert_array_equal(read_mask(_save(gray, tmp_path / "l.png")), expected)
    la = np.dstack([mask, np.full_like(mask, 255)])  # LA: the L channel counts, not alpha
    np.testing.assert_array_equal(read_mask(_save(la, tmp_path / "la.png")), expected)
    np.testing.assert_array_equal(read_mask(_save(mask, tmp_path / "one.png", mode="1")), expected)
    rgb = np.dstack([mask, mask, mask])
    np.testing.assert_array_equal(read_mask(_save(rgb, tmp_path / "rgb.png")), expected)


# ---------------------------------------------------------------- MoNuSeg XML and rasterisation


def test_xml_that_does_not_parse(tmp_path):
    path = _write(tmp_path / "bad.xml", "<Annotations><Region Id='1'><Vertices><Vertex X='1'")
    with pytest.raises(ValueError, match=_named(path) + r".*does not parse"):
        parse_monuseg_xml(path)


def test_xml_with_only_degenerate_regions(tmp_path):
    path = _write(tmp_path / "degen.xml", _xml([[(1, 1), (5, 5)], [(0, 0), (2, 2), (4, 4)]]))
    with pytest.raises(ValueError, match=_named(path) + r".*all 2 regions are degenerate"):
        parse_monuseg_xml(path)


def test_degenerate_region_dropped(tmp_path):
    good = _square(2, 2, 8, 8)
    path = _write(tmp_path / "mixed.xml", _xml([[(1, 1), (5, 5)], good, [(0, 0), (3, 3), (6, 6)]]))
    polygons = parse_monuseg_xml(path)
    assert len(polygons) == 1
    np.testing.assert_array_equal(polygons[0], np.asarray(good, float))


def test_xml_with_no_regions_is_empty(tmp_path):
    assert parse_monuseg_xml(_write(tmp_path / "none.xml", _xml([]))) == []


def test_xml_that_is_not_an_annotation_file(tmp_path):
    path = _write(tmp_path / "other.xml", "<svg><polygon/></svg>")
    with pytest.raises(ValueError, match=_named(path) + r".*root element is <svg>"):
        parse_monuseg_xml(path)


def test_overlapping_squares_smaller_wins_whatever_the_order():
    big = np.asarray(_square(2, 2, 12, 12), float)  # 100 px
    small = np.asarray(_square(8, 8, 14, 14), float)  # 36 px, overlaps big on 4x4 px
    for polygons in ([big, small], [small, big]):
        labels = rasterize_polygons(polygons, (20, 20))
        assert labels.dtype == np.int32
        big_id = 1 + [p is big for p in polygons].index(True)  # ids follow input order
        small_id = 3 - big_id
        assert (labels == small_id).sum() == 36
        assert (labels == big_id).sum() == 100 - 16
        assert (labels[8:12, 8:12] == small_id).all()
        assert set(np.unique(labels)) == {0, 1, 2}
    # half-pixel convention: a square with integer corners covers exactly its area
    assert (rasterize_polygons([big], (20, 20)) > 0).sum() == polygon_area(big) == 100


def test_fully_covered_polygon_dropped_and_sliver_kept():
    square = np.asarray(_square(2, 2, 6, 6), float)
    sliver = np.asarray([(10.1, 10.1), (10.4, 10.1), (10.4, 10.3)], float)  # covers no pixel centre
    labels, kept = rasterize_polygons([square, square.copy(), sliver], (16, 16), return_kept=True)
    # equal areas: input order decides, the later duplicate is drawn last and covers the first
    assert kept.tolist() == [1, 2]
    assert labels.max() == 2 and (labels == 1).sum() == 16
    assert labels[10, 10] == 2 and (labels == 2).sum() == 1


# ---------------------------------------------------------------- MoNuSeg folders


def _monuseg(tmp_path, names=("TCGA-18-0001-01Z", "TCGA-A7-0002-01Z"), xml_for=(0,), mask_for=(1,)) -> Path:
    folder = tmp_path / "monuseg"
    for i, name in enumerate(names):
        _save(_rgb(seed=i), folder / "images" / f"{name}.tif")
        if i in xml_for:
            _write(folder / "annotations" / f"{name}.xml", _xml([_square(2, 2, 8, 8), _square(10, 10, 20, 18)]))
        if i in mask_for:
            _save(_mask(), folder / "masks" / f"{name}.png")
    return folder


def test_read_monuseg_small_folder(tmp_path):
    tiles = read_monuseg(_monuseg(tmp_path), subset="test")
    assert [t.name for t in tiles] == ["TCGA-18-0001-01Z", "TCGA-A7-0002-01Z"]
    xml_tile, mask_tile = tiles
    assert xml_tile.has_instances and not mask_tile.has_instances
    assert xml_tile.organ == "liver" and xml_tile.group == "18" and mask_tile.organ == "breast"
    assert {t.source for t in tiles} == {"monuseg"} and {t.subset for t in tiles} == {"test"}
    assert xml_tile.n_nuclei == 2 and len(xml_tile.boxes) == 2 and len(xml_tile.points) == 2
    assert mask_tile.n_nuclei == 2 and mask_tile.instances.dtype == np.int32
    assert xml_tile.image.shape == (24, 32, 3)


def test_monuseg_degenerate_region_counted(tmp_path):
    folder = _monuseg(tmp_path, names=("TCGA-18-0001-01Z",), mask_for=())
    _write(folder / "annotations" / "TCGA-18-0001-01Z.xml", _xml([[(1, 1), (4, 4)], _square(2, 2, 8, 8)]))
    (tile,) = read_monuseg(folder)
    assert tile.n_nuclei == 1 and tile.extra["n_degenerate"] == 1 and tile.extra["n_regions"] == 2


def test_monuseg_mask_size_differs_from_image(tmp_path):
    folder = _monuseg(tmp_path)
    mask = _save(_mask(30, 30), folder / "masks" / "TCGA-A7-0002-01Z.png")
    image = folder / "images" / "TCGA-A7-0002-01Z.tif"
    with pytest.raises(ValueError, match=_named(mask) + r" is 30x30 \(WxH\) but its image " + _named(image) + " is 32x24"):
        read_monuseg(folder)


def test_monuseg_annotation_outside_image(tmp_path):
    folder = _monuseg(tmp_path, names=("TCGA-18-0001-01Z",), mask_for=())
    xml = _write(folder / "annotations" / "TCGA-18-0001-01Z.xml", _xml([_square(100, 100, 400, 300)]))
    with pytest.raises(ValueError, match=_named(xml) + r" does not fit its image .*TCGA-18-0001-01Z.tif.*32x24"):
        read_monuseg(folder)


def test_monuseg_image_without_labels(tmp_path):
    folder = _monuseg(tmp_path)
    lonely = _save(_rgb(), folder / "images" / "TCGA-B0-0003-01Z.tif")
    with pytest.raises(ValueError, match=r"neither annotations.*" + _named(lonely)):
        read_monuseg(folder)


def test_monuseg_labels_without_image_warn_and_are_skipped(tmp_path):
    folder = _monuseg(tmp_path)
    orphan_xml = _write(folder / "annotations" / "TCGA-ZZ-9999-01Z.xml", _xml([_square(1, 1, 5, 5)]))
    orphan_mask = _save(_mask(), folder / "masks" / "TCGA-ZZ-8888-01Z.png")
    with pytest.warns(DataWarning, match="without a matching image") as record:
        tiles = read_monuseg(folder)
    message = next(str(w.message) for w in record if "without a matching image" in str(w.message))
    assert str(orphan_xml) in message and str(orphan_mask) in message
    assert len(tiles) == 2


def test_monuseg_corrupt_image_named(tmp_path):
    folder = _monuseg(tmp_path)
    image = folder / "images" / "TCGA-18-0001-01Z.tif"
    image.write_bytes(image.read_bytes()[:300])
    with pytest.raises(ImageReadError, match=_named(image) + r".*corrupt or truncated"):
        read_monuseg(folder)


def test_monuseg_unknown_site_warns_once(tmp_path):
    folder = _monuseg(tmp_path, names=("TCGA-ZZ-0001-01Z", "TCGA-YY-0002-01Z", "plain"), xml_for=(), mask_for=(0, 1, 2))
    with pytest.warns(DataWarning, match=r"organ unknown for 3 tile\(s\)") as record:
        tiles = read_monuseg(folder)
    assert sum("organ unknown" in str(w.message) for w in record) == 1
    assert {t.organ for t in tiles} == {"unknown"}
    assert {t.group for t in tiles} == {"ZZ", "YY", "plain"}


def test_monuseg_custom_organs(tmp_path):
    folder = _monuseg(tmp_path, names=("TCGA-ZZ-0001-01Z",), xml_for=(), mask_for=(0,))
    (tile,) = read_monuseg(folder, organs={"zz": "lung"})
    assert tile.organ == "lung"


@pytest.mark.parametrize("make", ["missing", "empty", "no_images"])
def test_monuseg_empty_or_missing_folder(tmp_path, make):
    folder = tmp_path / "monuseg"
    if make != "missing":
        folder.mkdir()
    if make == "no_images":
        (folder / "images").mkdir()
    with pytest.raises((FileNotFoundError, ValueError), match=_named(folder)):
        read_monuseg(folder)


def test_monuseg_train_organ_table():
    assert sum(len(codes) for codes in MONUSEG_TRAIN_ORGAN_TILES.values()) == 30
    assert len(MONUSEG_TRAIN_ORGANS) == 18
    for organ, codes in MONUSEG_TRAIN_ORGAN_TILES.items():
        for code in codes:
            assert MONUSEG_TRAIN_ORGANS[code.split("-")[0]] == organ
    assert MONUSEG_TRAIN_ORGANS["18"] == "liver" and MONUSEG_TRAIN_ORGANS["A7"] == "breast"


# ---------------------------------------------------------------- TNBC


def _tnbc(tmp_path, slides=("01", "02"), per_slide=2) -> Path:
    folder = tmp_path / "tnbc"
    for s in slides:
        for k in range(1, per_slide + 1):
            rgba = np.dstack([_rgb(seed=k), np.full((24, 32), 255, np.uint8)])
            _save(rgba, folder / f"Slide_{s}" / f"{s}_{k}.png")
            _save(_mask(), folder / f"GT_{s}" / f"{s}_{k}.png")
    return folder


def test_read_tnbc_small_folder(tmp_path):
    tiles = read_tnbc(_tnbc(tmp_path))
    assert [t.name for t in tiles] == ["tnbc_01_1", "tnbc_01_2", "tnbc_02_1", "tnbc_02_2"]
    assert {t.group for t in tiles} == {"slide_01", "slide_02"}
    # The masks draw touching nuclei apart: their components are near-exact instances.
    assert all(t.source == "tnbc" and t.organ == "breast" and t.has_instances for t in tiles)
    assert {t.label_source for t in tiles} == {"separated_mask"}
    assert all(t.image.shape == (24, 32, 3) and t.n_nuclei == 2 for t in tiles)


def test_tnbc_image_without_mask(tmp_path):
    folder = _tnbc(tmp_path)
    lonely = _save(_rgb(), folder / "Slide_02" / "02_3.png")
    with pytest.raises(ValueError, match=r"have no mask: " + _named(lonely)):
        read_tnbc(folder)


def test_tnbc_mask_without_image_warns(tmp_path):
    folder = _tnbc(tmp_path)
    orphan = _save(_mask(), folder / "GT_01" / "01_9.png")
    orphan_slide = _save(_mask(), folder / "GT_07" / "07_1.png")
    with pytest.warns(DataWarning, match=_named(orphan) + ".*" + _named(orphan_slide)):
        tiles = read_tnbc(folder)
    assert len(tiles) == 4


def test_tnbc_mask_size_differs(tmp_path):
    folder = _tnbc(tmp_path)
    mask = _save(_mask(10, 12), folder / "GT_01" / "01_2.png")
    with pytest.raises(ValueError, match=_named(mask) + r" is 12x10 \(WxH\) but its image .*01_2.png is 32x24"):
        read_tnbc(folder)


def test_tnbc_empty_folder(tmp_path):
    with pytest.raises(ValueError, match=_named(tmp_path) + " has no Slide_NN"):
        read_tnbc(tmp_path)
    with pytest.raises(FileNotFoundError, match=_named(tmp_path / "nope")):
        read_tnbc(tmp_path / "nope")


# ---------------------------------------------------------------- generic folders


def test_folder_pairs_by_stem_and_suffix(tmp_path):
    folder = tmp_path / "hospital"
    _save(_rgb(), folder / "images" / "a.png")
    _save(_rgb(), folder / "images" / "b.jpg")
    _save(_mask(), folder / "masks" / "a.png")
    _save(_mask(), folder / "masks" / "b_mask.png")
    tiles = read_image_mask_folder(folder, source="h1", organ="colon")
    assert [t.name for t in tiles] == ["h1_a", "h1_b"]
    assert all(t.source == "h1" and t.organ == "colon" and t.n_nuclei == 2 for t in tiles)


def test_folder_unpaired_files_warned_and_skipped(tmp_path):
    folder = tmp_path / "hospital"
    _save(_rgb(), folder / "images" / "a.png")
    lonely = _save(_rgb(), folder / "images" / "c.tif")
    _save(_mask(), folder / "masks" / "a.png")
    orphan = _save(_mask(), folder / "masks" / "z_mask.png")
    with pytest.warns(DataWarning, match=_named(lonely) + ".*" + _named(orphan)):
        tiles = read_image_mask_folder(folder)
    assert [t.name for t in tiles] == ["folder_a"]


def test_folder_mask_size_differs(tmp_path):
    folder = tmp_path / "hospital"
    image = _save(_rgb(), folder / "images" / "a.png")
    mask = _save(_mask(12, 12), folder / "masks" / "a_mask.png")
    with pytest.raises(ValueError, match=_named(mask) + r" is 12x12 \(WxH\) but its image " + _named(image)):
        read_image_mask_folder(folder)


def test_folder_empty(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    with pytest.raises(ValueError, match=_named(tmp_path) + ": no image"):
        read_image_mask_folder(tmp_path)
    with pytest.raises(FileNotFoundError, match=_named(tmp_path / "nope")):
        read_image_mask_folder(tmp_path / "nope")


def test_folder_two_masks_for_one_image(tmp_path):
    folder = tmp_path / "hospital"
    _save(_rgb(), folder / "images" / "a.png")
    _save(_mask(), folder / "masks" / "a_mask.png")
    _save(_mask(), folder / "masks" / "a_gt.png")
    with pytest.raises(ValueError, match=r"several candidate labels"):
        read_image_mask_folder(folder)


# ---------------------------------------------------------------- instance maps


def _labels(height=24, width=32) -> np.ndarray:
    labels = np.zeros((height, width), np.uint16)
    labels[2:8, 3:9] = 7
    labels[8:14, 3:9] = 300  # touching label 7: only an instance map keeps them apart
    return labels


def test_monuseg_instance_map_comes_after_xml_and_before_the_mask(tmp_path):
    folder = _monuseg(tmp_path, names=("TCGA-18-0001-01Z", "TCGA-A7-0002-01Z", "TCGA-B0-0003-01Z"), xml_for=(0,),
                      mask_for=(1, 2))
    for name in ("TCGA-18-0001-01Z", "TCGA-A7-0002-01Z"):
        _save(_labels(), folder / "instances" / f"{name}.png")
    with pytest.warns(DataWarning, match="XML and instance map disagree.*TCGA-18-0001-01Z"):
        xml_tile, map_tile, mask_tile = read_monuseg(folder)
    assert [t.label_source for t in (xml_tile, map_tile, mask_tile)] == ["polygons", "instance_map", "mask"]
    assert xml_tile.extra["instance_map_check"]["n_map"] == 2 and xml_tile.n_nuclei == 2
    assert map_tile.has_instances and map_tile.n_nuclei == 2 and set(np.unique(map_tile.instances)) == {0, 7, 300}
    assert mask_tile.n_nuclei == 2 and not mask_tile.has_instances


def test_folder_reads_instance_maps_before_masks(tmp_path):
    folder = tmp_path / "hospital"
    for stem in ("a", "b"):
        _save(_rgb(), folder / "images" / f"{stem}.png")
    _save(_labels(), folder / "instances" / "a.png")
    _save(_mask(), folder / "masks" / "a.png")
    _save(_mask(), folder / "masks" / "b.png")
    by_map, by_mask = read_image_mask_folder(folder)
    assert (by_map.label_source, by_map.has_instances, by_map.n_nuclei) == ("instance_map", True, 2)
    assert (by_mask.label_source, by_mask.has_instances) == ("mask", False)
    only_maps = tmp_path / "maps_only"
    _save(_rgb(), only_maps / "images" / "a.png")
    _save(_labels(), only_maps / "instances" / "a_label.png")
    assert read_image_mask_folder(only_maps)[0].n_nuclei == 2


@pytest.mark.parametrize("array, mode, message", [
    (np.zeros((24, 32, 3), np.uint8), None, "not an instance label map: it holds a RGB image"),
    (np.zeros((24, 32), np.float32), "F", "not an instance label map: it holds floating-point values"),
    (_mask(), None, "single label value 255 .*binary mask"),
    (np.where(_mask() > 0, 1, 0).astype(np.uint8), None, "single label value 1 over separate objects"),
    (np.minimum(np.arange(24 * 32).reshape(24, 32) % 300, 255).astype(np.uint8), None, "overflowed"),
])
def test_instance_maps_that_are_not_refused_by_name(tmp_path, array, mode, message):
    folder = tmp_path / "hospital"
    _save(_rgb(), folder / "images" / "a.png")
    bad = _save(array, folder / "instances" / "a.tif" if mode == "F" else folder / "instances" / "a.png", mode)
    with pytest.raises(ImageReadError, match=_named(bad) + ".*" + message):
        read_image_mask_folder(folder)


def test_instance_map_of_another_size_is_refused(tmp_path):
    folder = tmp_path / "hospital"
    image = _save(_rgb(), folder / "images" / "a.png")
    labels = _save(_labels(12, 12), folder / "instances" / "a.png")
    with pytest.raises(ValueError, match=_named(labels) + r" is 12x12 \(WxH\) but its image " + _named(image)):
        read_image_mask_folder(folder)


# ---------------------------------------------------------------- real data


def _require(sub: str) -> Path:
    path = REAL_DATA / sub
    if not path.is_dir():
        pytest.skip(f"real data not available: {path.resolve()} is absent ")
    return path


@pytest.fixture(scope="module")
def monuseg_train():
    folder = _require("monuseg/train")
    start = time.perf_counter()
    tiles = read_monuseg(folder)
    seconds = time.perf_counter() - start
    print(f"\nread_monuseg: {seconds / len(tiles):.3f} s/tile over {len(tiles)} tiles")
    return folder, tiles


@pytest.mark.real_data
def test_real_monuseg_train(monuseg_train):
    _, tiles = monuseg_train
    assert len(tiles) == 30
    assert all(t.has_instances for t in tiles)  # XML for 13 tiles, instance maps for the other 17
    assert [t.label_source for t in tiles].count("polygons") == 13
    assert all(t.image.shape == (1000, 1000, 3) and t.image.dtype == np.uint8 for t in tiles)
    assert {t.organ for t in tiles} == set(MONUSEG_TRAIN_ORGAN_TILES)
    assert all(t.group == t.name.split("-")[1] for t in tiles)


@pytest.mark.real_data
def test_real_monuseg_polygons_survive_rasterisation(monuseg_train):
    folder, tiles = monuseg_train
    deviations = {}
    for tile in (t for t in tiles if t.label_source == "polygons"):
        polygons, _ = parse_regions(folder / "annotations" / f"{tile.name}.xml")
        assert tile.n_nuclei == len(polygons), tile.name
        assert tile.instances.max() == len(polygons)
        area = sum(polygon_area(p) for p in polygons)
        deviations[tile.name] = (tile.instances > 0).sum() / area - 1
    print("\nrasterised foreground vs summed polygon area: "
          f"{min(deviations.values()):+.2%} .. {max(deviations.values()):+.2%}")
    assert all(abs(d) < 0.03 for d in deviations.values()), deviations


@pytest.mark.real_data
def test_real_monuseg_xml_and_instance_maps_agree_where_both_exist(monuseg_train):
    _, tiles = monuseg_train
    checks = {t.name: t.extra["instance_map_check"] for t in tiles if "instance_map_check" in t.extra}
    assert len(checks) == 13
    # Foreground Dice 0.99-0.998 and counts within one nucleus, except TCGA-B0-5710 (0.95).
    assert sum(c["dice"] >= 0.99 for c in checks.values()) == 12
    assert min(c["dice"] for c in checks.values()) > 0.94
    assert all(abs(c["n_xml"] - c["n_map"]) <= 1 for c in checks.values())


@pytest.mark.real_data
def test_real_tnbc():
    tiles = read_tnbc(_require("tnbc"))
    assert len(tiles) == 50
    assert all(t.image.shape == (512, 512, 3) and t.image.dtype == np.uint8 for t in tiles)
    assert len({t.group for t in tiles}) == 11
    assert all(t.n_nuclei > 0 for t in tiles)


# ---------------------------------------------------------------- size limits


def test_decompression_bombs_and_oversized_images_are_refused_by_name(tmp_path):
    bomb = decompression_bomb(tmp_path / "bomb.png", 50000, 50000)
    assert bomb.stat().st_size < 500
    for read in (read_rgb, read_mask):
        with pytest.raises(ImageReadError, match=_named(bomb) + ".*too large.*2500000000 pixels"):
            read(bomb)
    image = _save(_rgb(200, 300), tmp_path / "large.png")
    with pytest.raises(ImageReadError, match=_named(image) + r" is 300x200 pixels, over the limit of 50,000"):
        read_rgb(image, max_pixels=50_000)
    assert read_rgb(image).shape == (200, 300, 3)


def test_a_bomb_in_a_tnbc_slide_stops_ingestion_naming_it(tmp_path):
    folder = _tnbc(tmp_path)
    bomb = decompression_bomb(folder / "Slide_01" / "01_9.png", 50000, 50000)
    _save(_mask(), folder / "GT_01" / "01_9.png")
    with pytest.raises(ImageReadError, match=_named(bomb)):
        read_tnbc(folder)
