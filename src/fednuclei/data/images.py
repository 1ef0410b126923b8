"""Read H&E images and binary nucleus masks from disk, whatever shape the publisher left them in.

Every reader of a public dataset goes through :func:`read_rgb` and :func:`read_mask`, so the
rules live here once:

* images come back as (H, W, 3) uint8 RGB. An alpha channel is dropped silently (TNBC ships
  RGBA); a grayscale image (modes ``L``, ``LA``, ``1``, or a palette whose colours are all
  gray) is replicated to three channels with a :class:`DataWarning` naming the file, since H&E
  should be colour; a 16-bit image (``I;16`` modes, or 16 bits per sample in a TIFF or PNG) is
  reduced to 8 bits by keeping the high byte (``v // 256``, what Pillow itself does for 16-bit
  colour), with a warning naming the file and the value range seen.
* masks come back as (H, W) bool, ``> 0`` on the first channel (the gray channel of ``LA``);
* instance maps (one integer label per nucleus, 0 = background) come back as (H, W) int32;
  only integer grey-level images are label maps: colour, floating-point, binary and overflowed
  8-bit files are refused with the reason (:func:`read_instance_map`).
* a file that cannot be decoded in full raises :class:`ImageReadError` naming it; the decode
  is forced with ``Image.load()`` so a truncated file fails here, not later;
* a file larger than ``max_pixels`` (default :data:`MAX_PIXELS`) is refused from its header,
  before any pixel is decoded: a small file can declare a huge image (a decompression bomb),
  and even an honest 10000x10000 image takes gigabytes once decoded and batched. (If some other
  code sets ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES = True``, Pillow pads truncated files
  silently and this check cannot see them.)

Pixels are read as stored: EXIF orientation is not applied, so images and masks stay aligned.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image
from skimage.measure import label as _label

__all__ = ["DataWarning", "ImageReadError", "load_image", "read_rgb", "read_mask", "read_instance_map",
           "instances_from_mask",
           "MASK_CONNECTIVITY", "MAX_PIXELS"]

#: Connectivity used to split a binary mask into nuclei: 1 = 4-connectivity (edge neighbours).
#: On the 13 MoNuSeg training tiles that also have polygons, 4-connected components of the
#: published masks match 3552 of 4949 polygons at IoU > 0.5, 8-connected ones 3447: diagonal
#: contacts between touching nuclei are more common than diagonal-only links inside one nucleus.
MASK_CONNECTIVITY = 1

#: Largest image read, in pixels (8192 x 8192). Whole-slide regions beyond it should be cut into
#: tiles first; raise it per reader call (``max_pixels``) when memory allows.
MAX_PIXELS = 8192 * 8192


class ImageReadError(ValueError):
    """An image or mask file that cannot be decoded (corrupt, truncated or of an unsupported kind)."""


class DataWarning(UserWarning):
    """Data was read but changed or skipped on the way in (grayscale, 16-bit, orphan files...)."""


def _warn(message: str) -> None:
    warnings.warn(message, DataWarning, stacklevel=3)


def _rawmodes(im: Image.Image) -> list[str]:
    """The decoder raw modes Pillow will use, e.g. ``RGB;16B`` for a 16-bit PNG (only known before load)."""
    modes = []
    for tile in getattr(im, "tile", None) or []:
        args = getattr(tile, "args", None)
        if args is None and isinstance(tile, tuple) and len(tile) > 3:
            args = tile[3]
        if isinstance(args, tuple) and args:
            args = args[0]
        if isinstance(args, str):
            modes.append(args)
    return modes


def _bits_per_sample(im: Image.Image, rawmodes: list[str]) -> int:
    if im.mode.startswith("I;16") or im.mode == "I" or any(";16" in m for m in rawmodes):
        return 16
    tags = getattr(im, "tag_v2", None)
    if tags is not None:
        bits = tags.get(258)
        if bits is not None:
            return int(max(bits if isinstance(bits, tuple) else (bits,)))
    return 8


def load_image(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> tuple[Image.Image, int]:
    """Open and fully decode ``path`` unless its header declares more than ``max_pixels``; return
    the image and its bits per sample."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file not found: {path}")
    try:
        with Image.open(path) as im:
            width, height = im.size
            if width * height > max_pixels:
                raise ImageReadError(f"image {path} is {width}x{height} pixels, over the limit of {max_pixels:,} "
                                     "(max_pixels): cut it into tiles, or raise the limit if memory allows")
            bits = _bits_per_sample(im, _rawmodes(im))
            im.load()
            return im, bits
    except Image.DecompressionBombError as exc:  # declared even larger than Pillow's own limit
        raise ImageReadError(f"image {path} declares an image too large to read ({exc}): cut it into tiles, or "
                             "raise the limit (max_pixels) if memory allows") from exc
    except ImageReadError:
        raise
    except (OSError, SyntaxError, ValueError, EOFError, IndexError) as exc:
        raise ImageReadError(
            f"cannot read image {path}: the file is corrupt or truncated, or not an image ({exc})"
        ) from exc


def _to_8bit(array: np.ndarray, path: Path, mode: str) -> np.ndarray:
    lo, hi = int(array.min(initial=0)), int(array.max(initial=0))
    if lo < 0 or hi > 65535:
        raise ImageReadError(f"cannot read image {path}: mode {mode} values {lo}..{hi} do not fit 16 bits")
    _warn(f"{path}: 16-bit image (mode {mode}, values {lo}..{hi}) rescaled to 8-bit by keeping the high byte")
    return (array.astype(np.uint32) >> 8).astype(np.uint8)


def read_rgb(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Read an H&E image as (H, W, 3) uint8 RGB.

    Raises:
        FileNotFoundError: no such file.
        ImageReadError: the file is corrupt, truncated, not an image, of a mode that has no
            sensible RGB reading (floating point), or larger than ``max_pixels``.

    Warns:
        DataWarning: grayscale input (replicated to RGB) or 16-bit input (rescaled), naming the file.
    """
    path = Path(path)
    im, bits = load_image(path, max_pixels)
    mode = im.mode
    if mode in ("I", "F") or mode.startswith("I;16"):
        if mode == "F":
            raise ImageReadError(f"cannot read image {path}: floating-point mode F is not an RGB image")
        gray = _to_8bit(np.asarray(im), path, mode)
        _warn(f"{path}: grayscale image (mode {mode}) replicated to 3 channels; H&E tiles should be colour")
        return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
    if bits > 8:  # 16-bit colour or gray+alpha: Pillow already kept the high byte of each sample
        _warn(f"{path}: 16-bit image (mode {mode} after decoding) rescaled to 8-bit by keeping the high byte")
    if mode in ("L", "LA", "1"):
        gray = np.asarray(im.convert("L"))
        _warn(f"{path}: grayscale image (mode {mode}) replicated to 3 channels; H&E tiles should be colour")
        return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
    if mode in ("P", "PA"):
        rgb = np.array(im.convert("RGBA"))[:, :, :3]
        if np.array_equal(rgb[:, :, 0], rgb[:, :, 1]) and np.array_equal(rgb[:, :, 0], rgb[:, :, 2]):
            _warn(f"{path}: grayscale image (mode {mode}, gray palette) replicated to 3 channels; "
                  "H&E tiles should be colour")
        return np.ascontiguousarray(rgb)
    if mode in ("RGBA", "RGBX", "RGBa"):
        if mode == "RGBa":
            im = im.convert("RGBA")
        return np.ascontiguousarray(np.asarray(im)[:, :, :3])
    if mode != "RGB":
        im = im.convert("RGB")  # CMYK, YCbCr, LAB, HSV
    return np.array(im, dtype=np.uint8)


def read_mask(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Read a binary nucleus mask as (H, W) bool: foreground where the first channel is > 0.

    Modes ``1``, ``L``, ``LA`` (the ``L`` channel; alpha ignored), ``RGB``/``RGBA`` (the red
    channel), ``I``/``I;16`` (e.g. a 16-bit label image) and ``P`` (palette index > 0) are read.
    Values need not be 0/255: anything above 0 is foreground.

    Raises:
        FileNotFoundError: no such file.
        ImageReadError: the file is corrupt or truncated, or has an unsupported mode (e.g. float).

    Warns:
        DataWarning: an RGB mask with foreground in the green or blue channel where red is 0
            (a colour-coded mask, whose nuclei would be partly lost), naming the file.
    """
    path = Path(path)
    im, _ = load_image(path, max_pixels)
    mode = im.mode
    if mode in ("1", "L", "P", "I") or mode.startswith("I;16"):
        array = np.asarray(im)
        return np.ascontiguousarray(array > 0)
    if mode == "LA":
        return np.ascontiguousarray(np.asarray(im)[:, :, 0] > 0)
    if mode in ("RGB", "RGBA", "RGBX"):
        array = np.asarray(im)
        fg = array[:, :, 0] > 0
        if np.any(~fg & ((array[:, :, 1] > 0) | (array[:, :, 2] > 0))):
            _warn(f"{path}: RGB mask has foreground in green/blue where red is 0; only red (> 0) is used")
        return np.ascontiguousarray(fg)
    raise ImageReadError(f"cannot read mask {path}: unsupported mode {mode} (expected 1, L, LA, P, I;16, RGB or RGBA)")


def read_instance_map(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Read an instance label map: (H, W) int32, 0 = background, one integer per nucleus.

    16-bit (``I;16``) and 32-bit integer (``I``) grey-level files are label maps as they are. An
    8-bit file (``L``, ``P``) is one only while its labels stay below 255: a map saved in 8 bits
    with more nuclei wraps around (256 becomes background, 257 repeats label 1), so a map whose
    largest label is 255 is refused.

    Raises:
        FileNotFoundError: no such file.
        ImageReadError: naming the file, when it is corrupt, a colour image, floating point,
            binary (one label value over separate objects, or 255 / 65535 alone: a mask, whose
            place is ``masks/``), holds negative
            labels, or is an 8-bit map that may have overflowed.
    """
    path = Path(path)
    im, _ = load_image(path, max_pixels)
    mode = im.mode
    if mode == "F" or mode in ("RGB", "RGBA", "RGBX", "LA", "CMYK", "YCbCr") or mode == "1":
        kind = {"F": "floating-point values", "1": "one bit per pixel (a binary mask)"}.get(
            mode, f"a {mode} image, not one integer label per pixel")
        raise ImageReadError(f"{path} is not an instance label map: it holds {kind}; save the nuclei as one integer "
                             "label per pixel in a 16-bit grey-level PNG or TIFF")
    labels = np.asarray(im).astype(np.int64)
    values = np.unique(labels)
    if values[0] < 0:
        raise ImageReadError(f"{path}: instance labels must be >= 0, found {values[0]}")
    if len(values) == 2 and values[0] == 0 and (values[-1] in (255, 65535) or _label(labels > 0).max() > 1):
        raise ImageReadError(f"{path} holds a single label value {values[-1]} over separate objects: a binary mask, "
                             "not an instance map (put it in masks/)")
    if mode in ("L", "P") and values[-1] == 255:
        raise ImageReadError(f"{path}: an 8-bit instance map whose labels reach 255 has probably overflowed (more "
                             "nuclei than 8 bits hold wrap around to 0 and repeat); save it as a 16-bit PNG")
    if values[-1] > np.iinfo(np.int32).max:
        raise ImageReadError(f"{path}: instance label {values[-1]} does not fit 32 bits")
    return np.ascontiguousarray(labels.astype(np.int32))


def instances_from_mask(mask: np.ndarray) -> np.ndarray:
    """Connected components of a binary mask (:data:`MASK_CONNECTIVITY`) as (H, W) int32 labels 1..N.

    Touching nuclei merge into one component: tiles labelled this way carry ``has_instances=False``.
    """
    return _label(np.asarray(mask, dtype=bool), connectivity=MASK_CONNECTIVITY).astype(np.int32)
