"""Label-preserving augmentation of H&E tiles (albumentations 2.x), by family: the recipe
(:mod:`.recipe`), stain jitter (:mod:`.stain`), elastic deformation (:mod:`.elastic`), the
composition and its seeding (:mod:`.compose`), and applying it to tiles (:mod:`.tiles`).

One :class:`AugmentationRecipe` (configurable from YAML parameters) becomes one
``albumentations.Compose`` (:func:`build_transform`) that moves the image, the instance map,
the boxes and the points together. :func:`augment_tile` applies it to a :class:`~fednuclei.data.tiles.Tile`
with one alignment rule:

* a tile **with instances** has its instance map warped as a mask (nearest neighbour) and its boxes
  and points *recomputed* from the warped map (exact alignment, vanished nuclei dropped, labels
  renumbered ``1..N`` in the order of the original labels);
* a tile **without instances** (weak client: boxes and/or points) has its boxes and points
  moved by albumentations' bbox / keypoint processing (``D4`` and ``Affine`` natively; the elastic
  step is :class:`SmoothElasticTransform`, which overrides the slow native box/point mapping),
  boxes clipped to the image, boxes less than ``bbox_min_visibility`` visible and points outside
  the image removed;
* a tile's label *kinds* never change: instances are never invented for a tile that had none, and
  boxes / points are only produced where the original tile carried them.

Reproducibility: :func:`seed_transform` gives every transform of a Compose one shared pair of
generators. Do not use albumentations' ``Compose(seed=...)`` / ``set_random_seed`` for this: in
2.0.8 it seeds every child transform with the *same* seed, so their draws are identical, e.g.
``HorizontalFlip(p=.5)`` and ``VerticalFlip(p=.5)`` then always fire together.
:func:`augment_tiles` derives each copy's generator from ``(seed, tile name, copy index)``, so a
tile's copies do not depend on which other tiles are in the list or on their order.

A Compose is stateful (its generators); do not share one between threads.
"""


from fednuclei.augment.compose import build_transform, seed_transform
from fednuclei.augment.elastic import SmoothElasticTransform
from fednuclei.augment.recipe import AugmentationRecipe
from fednuclei.augment.stain import HEDJitter, hed_jitter, rgb_to_hed
from fednuclei.augment.tiles import augment_tile, augment_tiles

__all__ = [
    "AugmentationRecipe",
    "HEDJitter",
    "SmoothElasticTransform",
    "augment_tile",
    "augment_tiles",
    "build_transform",
    "hed_jitter",
    "rgb_to_hed",
    "seed_transform",
]
