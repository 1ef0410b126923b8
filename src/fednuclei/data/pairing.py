"""Pair image files with their label files by file stem, once for every dataset reader.

Rules (shared by :mod:`~fednuclei.data.monuseg`, :mod:`~fednuclei.data.tnbc` and
:mod:`~fednuclei.data.folders`):

* A folder listing keeps regular files whose extension (case-insensitive) is in the allowed set
  and skips hidden files (``.DS_Store``, macOS ``._name`` resource forks). Other files are
  reported in one :class:`~fednuclei.data.images.DataWarning`.
* A label file belongs to an image when its stem equals the image stem, or equals the image
  stem followed by one of the allowed suffixes (e.g. ``a.png`` -> ``a_mask.png``). An exact
  stem match is taken first; then a suffix match among the labels still free. Two images with
  one stem (``a.tif``, ``a.png``) or two labels that both fit one image is an error naming them.
* Labels that fit no image are orphans; images that got no label are returned for the caller
  to reject or skip (:func:`warn_unpaired` writes the one warning listing them).
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fednuclei.data.images import (
    MAX_PIXELS,
    DataWarning,
    instances_from_mask,
    read_instance_map,
    read_mask,
    read_rgb,
)
from fednuclei.data.tiles import Tile, annotated_tile

IMAGE_EXTENSIONS = (".tif", ".tiff", ".png", ".jpg", ".jpeg")

#: Suffixes a mask stem may add to its image stem in a generic image/mask folder.
MASK_SUFFIXES = ("_mask", "-mask", "_masks", "_label", "_labels", "_gt")


def natural_key(path: Path | str) -> list:
    """Sort key that orders ``x_2`` before ``x_10``."""
    name = path.name if isinstance(path, Path) else str(path)
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def list_files(folder: Path, extensions: tuple[str, ...], what: str) -> list[Path]:
    """Files in ``folder`` with an allowed extension, naturally sorted; others are reported in one warning."""
    kept, ignored = [], []
    for path in folder.iterdir():
        if path.name.startswith(".") or not path.is_file():
            continue
        (kept if path.suffix.lower() in extensions else ignored).append(path)
    if ignored:
        warnings.warn(
            f"{folder}: ignored {len(ignored)} file(s) that are not {what} ({', '.join(extensions)}): "
            + ", ".join(p.name for p in sorted(ignored, key=natural_key)),
            DataWarning,
            stacklevel=3,
        )
    return sorted(kept, key=natural_key)


@dataclass
class Pairing:
    """Result of :func:`pair_by_stem`: ``pairs`` maps image -> label, in image order."""

    pairs: dict[Path, Path] = field(default_factory=dict)
    unpaired_images: list[Path] = field(default_factory=list)
    orphan_labels: list[Path] = field(default_factory=list)


def _by_stem(files: list[Path], what: str) -> dict[str, Path]:
    stems: dict[str, Path] = {}
    for path in files:
        if path.stem in stems:
            raise ValueError(f"two {what} files share the stem {path.stem!r}: {stems[path.stem]} and {path}")
        stems[path.stem] = path
    return stems


def pair_by_stem(images: list[Path], labels: list[Path], suffixes: tuple[str, ...] = ()) -> Pairing:
    """Match ``labels`` to ``images`` by stem (exact first, then ``stem + suffix``).

    Raises:
        ValueError: two images share a stem, or two labels fit one image equally well (naming them).
    """
    image_stems = _by_stem(images, "image")
    label_stems = _by_stem(labels, "label")
    result = Pairing()
    matched: dict[Path, Path] = {}
    free = dict(label_stems)
    for stem, image in image_stems.items():
        if stem in free:
            matched[image] = free.pop(stem)
    for stem, image in image_stems.items():
        if image in matched:
            continue
        hits = [free[stem + s] for s in suffixes if stem + s in free]
        if len(hits) > 1:
            raise ValueError(f"image {image} has several candidate labels: " + ", ".join(str(h) for h in hits))
        if hits:
            matched[image] = hits[0]
            del free[hits[0].stem]
    for image in images:
        if image in matched:
            result.pairs[image] = matched[image]
        else:
            result.unpaired_images.append(image)
    result.orphan_labels = sorted(free.values(), key=natural_key)
    return result


def warn_unpaired(files: list[Path], problem: str) -> None:
    """One warning that lists every file in ``files`` (skipped because of ``problem``)."""
    if files:
        warnings.warn(
            f"skipped {len(files)} {problem}: " + ", ".join(str(f) for f in files),
            DataWarning,
            stacklevel=3,
        )


def size_mismatch_error(image: Path, image_shape: tuple, label: Path, label_shape: tuple, what: str) -> ValueError:
    """The error for a label whose size differs from its image, naming both files and both sizes (W x H)."""
    return ValueError(
        f"{what} {label} is {label_shape[1]}x{label_shape[0]} (WxH) "
        f"but its image {image} is {image_shape[1]}x{image_shape[0]}"
    )


def check_same_size(image: Path, image_array: np.ndarray, label: Path, label_array: np.ndarray, what: str) -> None:
    """Raise :func:`size_mismatch_error` unless the label's (H, W) equals the image's."""
    if tuple(label_array.shape[:2]) != tuple(image_array.shape[:2]):
        raise size_mismatch_error(image, image_array.shape, label, label_array.shape, what)


def read_label_instances(label: Path, image: Path, image_array: np.ndarray, *, instance_map: bool,
                         max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Instances of ``image`` from its label file, checked to be the image's size: an instance
    map as it is (``instance_map``), or the connected components of a binary mask."""
    if instance_map:
        labels = read_instance_map(label, max_pixels)
        check_same_size(image, image_array, label, labels, "instance map")
        return labels
    mask = read_mask(label, max_pixels)
    check_same_size(image, image_array, label, mask, "mask")
    return instances_from_mask(mask)


def tile_from_files(name: str, image: Path, label: Path, *, instance_map: bool, max_pixels: int = MAX_PIXELS,
                    **fields) -> Tile:
    """A tile read from an image file and its label file (an instance map, or a binary mask whose
    connected components become instances), with weak labels derived from the instances.
    ``fields`` are the tile's other attributes; ``extra`` records the two file names."""
    pixels = read_rgb(image, max_pixels)
    instances = read_label_instances(label, image, pixels, instance_map=instance_map, max_pixels=max_pixels)
    extra = {"image_file": f"{image.parent.name}/{image.name}", "label_file": f"{label.parent.name}/{label.name}"}
    return annotated_tile(name, pixels, instances, extra=extra, **fields)
