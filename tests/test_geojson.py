import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from fednuclei.data.polygons import polygon_area, rasterize_polygons
from fednuclei.geojson import mask_polygons, nuclei_features, write_geojson

# The FeatureCollection schema of geojson.org (tests/schemas/README.md)
SCHEMA = json.loads((Path(__file__).parent / "schemas" / "geojson_feature_collection.json").read_text())


def polygons_of(feature: dict) -> list:
    geometry = feature["geometry"]
    return [geometry["coordinates"]] if geometry["type"] == "Polygon" else geometry["coordinates"]


def area_of(polygons: list) -> float:
    return sum(polygon_area(np.array(outer)) - sum(polygon_area(np.array(hole)) for hole in holes)
               for outer, *holes in polygons)


def rasterised(polygons: list, shape: tuple) -> np.ndarray:
    """The pixels whose centre lies inside the polygons (outside their holes)."""
    def inside(ring):
        return rasterize_polygons([np.array(ring, float)], shape) > 0

    mask = np.zeros(shape, bool)
    for outer, *holes in polygons:
        mask |= inside(outer) & ~np.any([inside(hole) for hole in holes] or [np.zeros(shape, bool)], axis=0)
    return mask


def test_each_nucleus_is_one_detection_whose_outline_has_its_pixels(synthetic_tiles):
    instances = synthetic_tiles[0].instances
    foreground = np.random.default_rng(0).random(instances.shape).astype(np.float32)
    features = nuclei_features(instances, foreground)["features"]
    labels = np.unique(instances[instances > 0])
    assert [feature["properties"]["measurements"]["Label"] for feature in features] == labels.tolist()
    for feature, label in zip(features, labels):
        mask = instances == label
        properties, polygons = feature["properties"], polygons_of(feature)
        assert properties["objectType"] == "detection" and properties["classification"]["name"] == "Nucleus"
        assert area_of(polygons) == pytest.approx(mask.sum()) and properties["measurements"]["Area px^2"] == mask.sum()
        assert (rasterised(polygons, mask.shape) == mask).all()
        assert properties["measurements"]["Foreground probability mean"] == pytest.approx(foreground[mask].mean())


def test_the_file_is_a_valid_geojson_feature_collection_with_closed_rings(tmp_path, synthetic_tiles):
    instances = synthetic_tiles[1].instances
    write_geojson(nuclei_features(instances, np.ones(instances.shape)), tmp_path / "tile.geojson")
    collection = json.loads((tmp_path / "tile.geojson").read_text())
    jsonschema.validate(collection, SCHEMA)
    assert len(collection["features"]) == len(np.unique(instances)) - 1
    # What JSON Schema cannot say (RFC 7946, 3.1.6): rings closed, outer ones counter-clockwise, holes clockwise
    for feature in collection["features"]:
        for outer, *holes in polygons_of(feature):
            for ring in (outer, *holes):
                assert len(ring) >= 4 and ring[0] == ring[-1]
            xy = np.array(outer, float)
            assert np.sum(xy[:-1, 0] * xy[1:, 1] - xy[1:, 0] * xy[:-1, 1]) > 0


def test_a_hole_stays_a_hole_and_a_nucleus_in_pieces_stays_one_object():
    labels = np.zeros((12, 12), np.int32)
    labels[1:6, 1:6] = 1
    labels[3, 3] = 0  # a hole
    labels[8:10, 1:3] = 2
    labels[10:12, 3:5] = 2  # a second part, touching the first at a corner only
    labels[7, 7], labels[8, 8] = 3, 4  # two nuclei touching at a corner
    features = nuclei_features(labels, np.ones(labels.shape))["features"]
    assert [feature["geometry"]["type"] for feature in features] == ["Polygon", "MultiPolygon", "Polygon", "Polygon"]
    assert [len(ring) for ring in features[0]["geometry"]["coordinates"]] == [5, 5]
    assert len(features[1]["geometry"]["coordinates"]) == 2
    for label, feature in enumerate(features, start=1):
        assert area_of(polygons_of(feature)) == pytest.approx((labels == label).sum())
        assert (rasterised(polygons_of(feature), labels.shape) == (labels == label)).all()


def test_a_hole_touching_the_outline_at_a_corner_is_a_ring_of_its_own():
    mask = np.zeros((5, 5), bool)
    mask[1, 1:4] = mask[2, 1] = mask[2, 3] = mask[3, 1:3] = True  # the hole (2, 2) meets the outside at corner (3, 3)
    [(outer, hole)] = mask_polygons(mask)
    assert (polygon_area(np.array(outer)), polygon_area(np.array(hole))) == pytest.approx((8, 1))
    assert (3, 3) in outer and (3, 3) in hole


def test_an_empty_label_map_gives_an_empty_collection_and_shapes_must_agree():
    empty = nuclei_features(np.zeros((4, 4), np.int32), np.zeros((4, 4)))
    assert empty == {"type": "FeatureCollection", "features": []}
    with pytest.raises(ValueError, match="same"):
        nuclei_features(np.zeros((4, 4), np.int32), np.zeros((4, 5)))
