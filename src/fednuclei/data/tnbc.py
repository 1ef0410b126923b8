"""TNBC reader (Naylor et al. 2018, Zenodo 1175282): ``Slide_NN/NN_k.png`` with ``GT_NN/NN_k.png`` masks."""

from __future__ import annotations

import os
import re
from pathlib import Path

from fednuclei.data.images import MAX_PIXELS
from fednuclei.data.pairing import (
    IMAGE_EXTENSIONS,
    list_files,
    natural_key,
    pair_by_stem,
    tile_from_files,
    warn_unpaired,
)
from fednuclei.data.tiles import Tile

__all__ = ["read_tnbc"]

_SLIDE = re.compile(r"^Slide_(\w+)$")
_GT = re.compile(r"^GT_(\w+)$")


def read_tnbc(folder: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> list[Tile]:
    """Read the TNBC dataset into tiles.

    Every image ``Slide_NN/<stem>.<ext>`` needs the mask ``GT_NN/<stem>.<ext>`` (same stem; png,
    tif or jpg). Instances are the masks' 4-connected components. The masks draw touching nuclei
    apart, so these are near-exact instances (a published instance labelling of TNBC equals the
    masks pixel for pixel, with 4,028 nuclei against 4,056 components): ``has_instances=True``,
    ``label_source`` ``separated_mask``.

    Returns:
        tiles sorted by slide then tile number: ``name`` ``tnbc_<stem>`` (e.g. ``tnbc_01_3``;
        the prefix keeps names apart from other sources), ``source`` ``tnbc``, ``organ``
        ``breast``, ``group`` ``slide_NN`` (one patient per slide), ``subset`` ``train``.

    Raises:
        FileNotFoundError: ``folder`` does not exist.
        ValueError: no ``Slide_*`` folder in ``folder``; images without a mask (all listed);
            a mask whose size differs from its image (both files and sizes named).
        ImageReadError: a corrupt or truncated image or mask, or one over ``max_pixels``.

    Warns:
        DataWarning: masks without an image, including whole ``GT_NN`` folders without a
            ``Slide_NN`` (one warning listing every file, skipped).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"TNBC folder {folder} does not exist")
    slides = {m.group(1): p for p in folder.iterdir() if p.is_dir() and (m := _SLIDE.match(p.name))}
    gts = {m.group(1): p for p in folder.iterdir() if p.is_dir() and (m := _GT.match(p.name))}
    if not slides:
        raise ValueError(f"TNBC folder {folder} has no Slide_NN folders")

    pairs: list[tuple[str, Path, Path]] = []
    missing: list[str] = []
    orphans: list[Path] = []
    for slide_id in sorted(slides, key=natural_key):
        images = list_files(slides[slide_id], IMAGE_EXTENSIONS, "images")
        gt_dir = gts.get(slide_id, folder / f"GT_{slide_id}")
        masks = list_files(gt_dir, IMAGE_EXTENSIONS, "masks") if gt_dir.is_dir() else []
        pairing = pair_by_stem(images, masks)
        pairs.extend((slide_id, image, mask) for image, mask in pairing.pairs.items())
        missing.extend(f"{image} (expected {gt_dir / image.name})" for image in pairing.unpaired_images)
        orphans.extend(pairing.orphan_labels)
    for slide_id in sorted(set(gts) - set(slides), key=natural_key):
        orphans.extend(list_files(gts[slide_id], IMAGE_EXTENSIONS, "masks"))
    warn_unpaired(orphans, f"TNBC mask file(s) in {folder} without a matching image")
    if missing:
        raise ValueError(f"TNBC folder {folder}: {len(missing)} image(s) have no mask: " + ", ".join(missing))
    if not pairs:
        raise ValueError(f"TNBC folder {folder}: the Slide_NN folders hold no images")

    # Touching nuclei are drawn apart in these masks: their components are near-exact instances.
    return [tile_from_files(f"tnbc_{image.stem}", image, mask, instance_map=False, max_pixels=max_pixels,
                            source="tnbc", organ="breast",
                            group=f"slide_{slide_id}", subset="train", has_instances=True,
                            label_source="separated_mask")
            for slide_id, image, mask in pairs]
