"""Generic reader for a folder of images with binary masks (a hospital's own data)."""

from __future__ import annotations

import os
from pathlib import Path

from fednuclei.data.images import read_rgb
from fednuclei.data.pairing import (
    IMAGE_EXTENSIONS,
    MASK_SUFFIXES,
    list_files,
    pair_by_stem,
    read_mask_instances,
    warn_unpaired,
)
from fednuclei.data.tiles import Tile, annotated_tile

__all__ = ["read_image_mask_folder"]


def read_image_mask_folder(
    folder: str | os.PathLike,
    images: str = "images",
    masks: str = "masks",
    source: str = "folder",
    organ: str = "unknown",
) -> list[Tile]:
    """Read ``folder/<images>/*`` with binary masks from ``folder/<masks>/*`` into tiles.

    Pairing: a mask belongs to an image when its stem equals the image stem, or equals the
    image stem plus one of :data:`~fednuclei.data.pairing.MASK_SUFFIXES` (``_mask``, ``-mask``,
    ``_masks``, ``_label``, ``_labels``, ``_gt``; case-sensitive), e.g. ``a.jpg`` with
    ``a.png`` or ``a_mask.png``. Exact stems are matched first. Images and masks may be
    .tif, .tiff, .png, .jpg or .jpeg (a lossy JPEG mask is still thresholded at > 0).

    Returns:
        tiles in natural file order: ``name`` ``<source>_<image stem>`` (the prefix keeps names
        apart from other sources), ``source`` and ``organ`` as given, ``group`` empty (the folder
        does not say which patient a tile belongs to), ``subset`` ``train``; instances are the
        masks' 4-connected components (``has_instances=False``).

    Raises:
        FileNotFoundError: ``folder`` or its image or mask folder does not exist.
        ValueError: no image/mask pair; two images with one stem or two masks fitting one image;
            a mask whose size differs from its image (both files and sizes named).
        ImageReadError: a corrupt or truncated image or mask.

    Warns:
        DataWarning: images without a mask and masks without an image (one warning listing every
            file, skipped).
    """
    folder = Path(folder)
    image_dir, mask_dir = folder / images, folder / masks
    for path in (folder, image_dir, mask_dir):
        if not path.is_dir():
            raise FileNotFoundError(f"image/mask folder {folder}: {path} does not exist")
    pairing = pair_by_stem(
        list_files(image_dir, IMAGE_EXTENSIONS, "images"),
        list_files(mask_dir, IMAGE_EXTENSIONS, "masks"),
        suffixes=MASK_SUFFIXES,
    )
    warn_unpaired(
        pairing.unpaired_images + pairing.orphan_labels,
        f"file(s) in {folder} without a partner (images without a mask, masks without an image)",
    )
    if not pairing.pairs:
        raise ValueError(f"image/mask folder {folder}: no image in {image_dir} has a mask in {mask_dir}")

    tiles = []
    for image_path, mask_path in pairing.pairs.items():
        image = read_rgb(image_path)
        tiles.append(
            annotated_tile(
                f"{source}_{image_path.stem}",
                image,
                read_mask_instances(mask_path, image_path, image),
                source=source,
                organ=organ,
                group="",
                subset="train",
                has_instances=False,
                extra={"image_file": f"{images}/{image_path.name}", "label_file": f"{masks}/{mask_path.name}"},
            )
        )
    return tiles
