"""Generic reader for a folder of images with instance maps or binary masks (a hospital's own data)."""

from __future__ import annotations

import os
from pathlib import Path

from fednuclei.data.images import MAX_PIXELS
from fednuclei.data.pairing import (
    IMAGE_EXTENSIONS,
    MASK_SUFFIXES,
    list_files,
    pair_by_stem,
    tile_from_files,
    warn_unpaired,
)
from fednuclei.data.tiles import Tile

__all__ = ["read_image_mask_folder"]


def read_image_mask_folder(
    folder: str | os.PathLike,
    images: str = "images",
    masks: str = "masks",
    instances: str = "instances",
    source: str = "folder",
    organ: str = "unknown",
    max_pixels: int = MAX_PIXELS,
) -> list[Tile]:
    """Read ``folder/<images>/*`` with instance maps from ``folder/<instances>/*`` or binary masks
    from ``folder/<masks>/*`` into tiles.

    Pairing: a label file belongs to an image when its stem equals the image stem, or equals the
    image stem plus one of :data:`~fednuclei.data.pairing.MASK_SUFFIXES` (``_mask``, ``-mask``,
    ``_masks``, ``_label``, ``_labels``, ``_gt``; case-sensitive), e.g. ``a.jpg`` with
    ``a.png`` or ``a_mask.png``. Exact stems are matched first. Files may be .tif, .tiff, .png,
    .jpg or .jpeg (a lossy JPEG mask is still thresholded at > 0). An image with an instance map
    takes it (exact instances, see :func:`~fednuclei.data.images.read_instance_map`); otherwise
    its mask's 4-connected components (``has_instances=False``: touching nuclei merge). Either
    label folder may be absent, not both.

    Returns:
        tiles in natural file order: ``name`` ``<source>_<image stem>`` (the prefix keeps names
        apart from other sources), ``source`` and ``organ`` as given, ``group`` empty (the folder
        does not say which patient a tile belongs to), ``subset`` ``train``.

    Raises:
        FileNotFoundError: ``folder``, its image folder, or both label folders do not exist.
        ValueError: no image with a label; two images with one stem or two labels fitting one
            image; a label whose size differs from its image (both files and sizes named).
        ImageReadError: a corrupt or truncated file, one over ``max_pixels``, or an instance map
            that is not one.

    Warns:
        DataWarning: images without a label and labels without an image (one warning listing
            every file, skipped).
    """
    folder = Path(folder)
    image_dir = folder / images
    for path in (folder, image_dir):
        if not path.is_dir():
            raise FileNotFoundError(f"image/mask folder {folder}: {path} does not exist")
    label_dirs = ((True, folder / instances), (False, folder / masks))
    if not any(path.is_dir() for _, path in label_dirs):
        raise FileNotFoundError(f"image/mask folder {folder}: neither {folder / instances} nor {folder / masks} exists")
    image_files = list_files(image_dir, IMAGE_EXTENSIONS, "images")
    pairings = [(is_map, pair_by_stem(image_files, list_files(path, IMAGE_EXTENSIONS, "labels"),
                                      suffixes=MASK_SUFFIXES))
                for is_map, path in label_dirs if path.is_dir()]
    chosen: dict[Path, tuple[Path, bool]] = {}  # image -> (label file, is an instance map); maps first
    for is_map, pairing in pairings:
        for image, label in pairing.pairs.items():
            chosen.setdefault(image, (label, is_map))
    warn_unpaired(
        [image for image in image_files if image not in chosen]
        + [orphan for _, pairing in pairings for orphan in pairing.orphan_labels],
        f"file(s) in {folder} without a partner (images without a label, labels without an image)",
    )
    if not chosen:
        raise ValueError(f"image/mask folder {folder}: no image in {image_dir} has a label")
    return [
        tile_from_files(f"{source}_{image.stem}", image, label, instance_map=is_map, max_pixels=max_pixels,
                        source=source, organ=organ, group="", subset="train", has_instances=is_map,
                        label_source="instance_map" if is_map else "mask")
        for image in image_files if image in chosen for label, is_map in [chosen[image]]
    ]
