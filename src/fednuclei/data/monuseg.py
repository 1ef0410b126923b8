"""MoNuSeg 2018 reader: polygon XML annotations, binary PNG masks, TCGA site codes and organs.

Layout of a MoNuSeg folder (``train`` or the official ``test`` part)::

    images/<name>.tif         RGB tiles (.tif, .tiff or .png)
    annotations/<name>.xml    Aperio ImageScope polygons, one <Region> per nucleus (optional, per tile)
    instances/<name>.png      instance label maps, one integer per nucleus (optional, per tile)
    masks/<name>.png          binary nucleus masks (optional, per tile)

Each tile takes its instances from the first of these it has: the XML polygons (exact,
``label_source`` ``polygons``), the instance map (exact, ``instance_map``), or the binary mask's
connected components (``mask``, ``has_instances=False``: touching nuclei merge). Where a tile has
both XML and an instance map, the XML is used and the two are compared: their foreground Dice
and nucleus counts are kept in ``extra["instance_map_check"]``, and a tile where they disagree
(Dice below :data:`AGREEMENT_DICE` or counts apart by more than :data:`AGREEMENT_COUNT`) is
named in a :class:`~fednuclei.data.images.DataWarning`. Published instance maps are drawn with
the vertices at pixel centres, half a pixel from the rule below (on the MoNuSeg training tiles
that alone costs 0.03-0.09 of foreground Dice), so the check rasterises the polygons that way;
the tile keeps this module's rasterisation.

Polygons are parsed and rasterised by :mod:`fednuclei.data.polygons`.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import numpy as np

from fednuclei.data.images import MAX_PIXELS, DataWarning, read_rgb
from fednuclei.data.pairing import (
    Pairing,
    list_files,
    natural_key,
    pair_by_stem,
    read_label_instances,
    warn_unpaired,
)
from fednuclei.data.polygons import check_extent, parse_regions, rasterize_polygons
from fednuclei.data.tiles import Tile, annotated_tile

__all__ = ["MONUSEG_TRAIN_ORGAN_TILES", "MONUSEG_TRAIN_ORGANS", "read_monuseg", "site_code"]

#: Organ of each MoNuSeg training tile (``<site>-<participant>`` of ``TCGA-<site>-<participant>-...``),
#: as labelled by the dataset's authors.
MONUSEG_TRAIN_ORGAN_TILES: dict[str, tuple[str, ...]] = {
    "liver": ("18-5592", "21-5784", "21-5786", "38-6178", "49-4488", "50-5931"),
    "breast": ("A7-A13E", "A7-A13F", "AR-A1AK", "AR-A1AS", "E2-A1B5", "E2-A14V"),
    "kidney": ("B0-5698", "B0-5710", "B0-5711", "HE-7128", "HE-7129", "HE-7130"),
    "prostate": ("CH-5767", "G9-6336", "G9-6348", "G9-6356", "G9-6362", "G9-6363"),
    "bladder": ("DK-A2I6", "G2-A2EK"),
    "colon": ("AY-A8YK", "NH-A8F7"),
    "stomach": ("KB-A93J", "RD-A8N9"),
}

_TILE_CODE = re.compile(r"^([A-Z0-9]{2})-([A-Z0-9]{4})$")
_SITE = re.compile(r"^TCGA-([A-Za-z0-9]{2})-")

# XML and instance map of one tile agree when their foregrounds overlap this much and their
# nucleus counts differ by at most this many (a degenerate polygon the map kept, say).
AGREEMENT_DICE = 0.97
AGREEMENT_COUNT = 2


def _site_organs(table: dict[str, tuple[str, ...]]) -> dict[str, str]:
    """Site code -> organ, checking every tile code is well formed and no site has two organs."""
    sites: dict[str, str] = {}
    for organ, codes in table.items():
        for code in codes:
            match = _TILE_CODE.match(code)
            if match is None:
                raise ValueError(f"MoNuSeg organ table: tile code {code!r} ({organ}) is not <site>-<participant>")
            site = match.group(1)
            if sites.setdefault(site, organ) != organ:
                raise ValueError(f"MoNuSeg organ table: site {site} maps to both {sites[site]} and {organ}")
    return sites


#: TCGA tissue-source-site code -> organ for the MoNuSeg training tiles (18 sites, 7 organs).
MONUSEG_TRAIN_ORGANS: dict[str, str] = _site_organs(MONUSEG_TRAIN_ORGAN_TILES)


def site_code(name: str) -> str | None:
    """The TCGA tissue-source-site code of a tile name (``TCGA-18-5592-...`` -> ``18``), or None."""
    match = _SITE.match(name)
    return match.group(1).upper() if match else None


def read_monuseg(
    folder: str | os.PathLike, subset: str = "train", organs: dict[str, str] | None = None,
    max_pixels: int = MAX_PIXELS,
) -> list[Tile]:
    """Read a MoNuSeg folder (``images/``, optional ``annotations/``, ``instances/``, ``masks/``) into tiles.

    Args:
        folder: the folder holding ``images/`` etc. (e.g. ``.../monuseg/train``).
        subset: the publisher's split, stored on every tile (``train`` or ``test``).
        organs: TCGA site code -> organ; default :data:`MONUSEG_TRAIN_ORGANS`. A tile whose
            code is not in it (or whose name has no ``TCGA-<site>-`` prefix) gets organ ``unknown``.
        max_pixels: the largest image or label read (see :mod:`fednuclei.data.images`).

    Returns:
        one tile per image, sorted by name: ``name`` = file stem, ``source`` ``monuseg``,
        ``group`` = site code (the tile name when it has none), instances from the first label
        the tile has (see the module docstring), boxes and points from the instances. ``extra``
        records the label file and polygon counts.

    Raises:
        FileNotFoundError: ``folder`` or ``folder/images`` does not exist.
        ValueError: no images; an image with no label at all (all are listed); a label that does
            not fit its image (both files and sizes named); a bad XML file (see
            :func:`parse_monuseg_xml`).
        ImageReadError: a corrupt or truncated image, mask or instance map, one over
            ``max_pixels``, or an instance map that is not one (see :func:`~fednuclei.data.images.read_instance_map`).

    Warns:
        DataWarning: label files without an image (one warning listing all, skipped); tiles with
            an unknown site code; tiles whose XML and instance map disagree; polygons dropped by
            rasterisation; grayscale or 16-bit images.
    """
    folder = Path(folder)
    images = _list_images(folder)
    organs = MONUSEG_TRAIN_ORGANS if organs is None else {k.upper(): v for k, v in organs.items()}
    labels = _pair_labels(folder, images)
    tiles, unknown, notes = [], [], {"dropped": [], "disagree": []}
    for image_path in images:
        name = image_path.stem
        image = read_rgb(image_path, max_pixels)
        instances, label_source, extra = _instances(image_path, image, labels, notes, max_pixels)
        site = site_code(name)
        organ = organs.get(site) if site else None
        if organ is None:
            unknown.append(f"{name} (site {site})" if site else f"{name} (no TCGA site code)")
            organ = "unknown"
        tiles.append(annotated_tile(name, image, instances, source="monuseg", organ=organ, group=site or name,
                                    subset=subset, has_instances=label_source != "mask", label_source=label_source,
                                    extra={"image_file": image_path.name, **extra}))
    for problem, found in (("polygons left without any pixel after overlap resolution were dropped", notes["dropped"]),
                           ("XML and instance map disagree (the XML is used)", notes["disagree"]),
                           (f"MoNuSeg folder {folder}: organ unknown for {len(unknown)} tile(s)", unknown)):
        if found:
            warnings.warn(f"{problem}: " + "; ".join(found), DataWarning, stacklevel=2)
    return sorted(tiles, key=lambda t: natural_key(t.name))


def _list_images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise FileNotFoundError(f"MoNuSeg folder {folder} does not exist")
    image_dir = folder / "images"
    if not image_dir.is_dir():
        raise FileNotFoundError(f"MoNuSeg folder {folder} has no images/ folder")
    images = list_files(image_dir, (".tif", ".tiff", ".png"), "images")
    if not images:
        raise ValueError(f"MoNuSeg folder {folder}: no images (.tif, .tiff, .png) in {image_dir}")
    return images


def _pair_labels(folder: Path, images: list[Path]) -> dict[str, Pairing]:
    """Each label kind's files paired with the images (``xml``, ``map``, ``mask``); orphans are
    warned about, images with no label at all refused."""
    kinds = {"xml": ("annotations", (".xml",), "XML annotations"),
             "map": ("instances", (".png", ".tif", ".tiff"), "instance maps"),
             "mask": ("masks", (".png",), "PNG masks")}
    labels = {}
    for kind, (subfolder, extensions, what) in kinds.items():
        found = list_files(folder / subfolder, extensions, what) if (folder / subfolder).is_dir() else []
        labels[kind] = pair_by_stem(images, found)
    warn_unpaired([p for pairing in labels.values() for p in pairing.orphan_labels],
                  f"MoNuSeg label file(s) in {folder} without a matching image")
    bare = [img for img in images if not any(img in pairing.pairs for pairing in labels.values())]
    if bare:
        raise ValueError(
            f"MoNuSeg folder {folder}: {len(bare)} image(s) have neither annotations/<stem>.xml, "
            "instances/<stem>.png nor masks/<stem>.png: " + ", ".join(str(p) for p in bare)
        )
    return labels


def _instances(image_path: Path, image: np.ndarray, labels: dict[str, Pairing], notes: dict[str, list[str]],
               max_pixels: int) -> tuple[np.ndarray, str, dict]:
    """The tile's instances from its best label, the label source, and what ``extra`` records."""
    label_map = labels["map"].pairs.get(image_path)
    if image_path not in labels["xml"].pairs:
        if label_map is not None:
            instances = read_label_instances(label_map, image_path, image, instance_map=True, max_pixels=max_pixels)
            return instances, "instance_map", {"label_file": f"instances/{label_map.name}"}
        mask = labels["mask"].pairs[image_path]
        instances = read_label_instances(mask, image_path, image, instance_map=False, max_pixels=max_pixels)
        return instances, "mask", {"label_file": f"masks/{mask.name}"}
    xml = labels["xml"].pairs[image_path]
    polygons, n_regions = parse_regions(xml)
    check_extent(polygons, image.shape, xml, image_path)
    instances, kept = rasterize_polygons(polygons, image.shape[:2], return_kept=True)
    dropped = len(polygons) - len(kept)
    if dropped:
        notes["dropped"].append(f"{xml.name}: {dropped} of {len(polygons)}")
    extra = {"label_file": f"annotations/{xml.name}", "n_regions": n_regions,
             "n_degenerate": n_regions - len(polygons), "n_dropped_by_rasterisation": dropped}
    if label_map is not None:
        as_centres = rasterize_polygons([polygon + 0.5 for polygon in polygons], image.shape[:2])
        from_map = read_label_instances(label_map, image_path, image, instance_map=True, max_pixels=max_pixels)
        check = compare_instances(as_centres, from_map)
        extra["instance_map_check"] = check
        if check["dice"] < AGREEMENT_DICE or abs(check["n_xml"] - check["n_map"]) > AGREEMENT_COUNT:
            notes["disagree"].append(f"{image_path.stem} (foreground Dice {check['dice']:.3f}, "
                                     f"{check['n_xml']} vs {check['n_map']} nuclei)")
    return instances, "polygons", extra


def compare_instances(from_xml: np.ndarray, from_map: np.ndarray) -> dict[str, float | int]:
    """Foreground Dice and nucleus counts of two instance maps of one tile."""
    a, b = from_xml > 0, from_map > 0
    total = int(a.sum()) + int(b.sum())
    dice = 2.0 * int((a & b).sum()) / total if total else 1.0
    return {"dice": round(dice, 4), "n_xml": int(len(np.unique(from_xml[a]))),
            "n_map": int(len(np.unique(from_map[b])))}
