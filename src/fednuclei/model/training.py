"""One training loop for every method, device choice, and moving weights in and out of models.

:func:`train_on_batches` is the step logic (forward, loss, optional FedProx term, backward, Adam
step, mixed precision on CUDA); :func:`train_epochs` feeds it shuffled batches of labelled tiles.
Other flavours (pseudo-labels, confidence-masked self-training) build their own batches, with a
mask where they need one, and call :func:`train_on_batches` directly.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from fednuclei.atomic import atomic_file
from fednuclei.data.tiles import Tile
from fednuclei.model.losses import dice_bce_loss
from fednuclei.model.targets import segmentation_targets
from fednuclei.model.unet import UNet, image_to_tensor

logger = logging.getLogger(__name__)

MODEL_FORMAT = "fednuclei-unet"
_CONFIG_KEYS = ("in_channels", "out_channels", "width", "depth", "groups")

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]
LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor | None]


def pick_device(preferred: str | torch.device | None = None) -> torch.device:
    """The device to train and predict on: ``preferred`` if given, else CUDA when available, else CPU.

    Raises:
        ValueError: a CUDA device is asked for but this torch build or machine has none.
    """
    device = torch.device(preferred) if preferred is not None else torch.device(
        "cuda" if torch.cuda.is_available() else "cpu"
    )
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r} requested but CUDA is not available (torch {torch.__version__})")
    logger.info("using device %s", device)
    return device


@dataclass
class TrainResult:
    """What :func:`train_epochs` reports.

    Attributes:
        loss: mean loss of the last epoch (the data loss, without the proximal term; NaN when every
            batch of that epoch was skipped).
        n_samples: training samples (tiles) seen per epoch.
        seconds: wall time of the whole call.
        steps: optimizer steps taken over all epochs (skipped batches excluded).
        skipped: batches skipped over all epochs because the loss returned None.
        optimizer_state: Adam's state after training, to pass back as ``optimizer_state`` next time.
    """

    loss: float
    n_samples: int
    seconds: float
    steps: int
    skipped: int = 0
    optimizer_state: dict | None = field(default=None, repr=False)


@dataclass
class BatchesResult:
    """What :func:`train_on_batches` reports: mean data loss over the batches stepped on (NaN if
    none), optimizer steps, skipped batches and samples in the stepped batches."""

    loss: float
    steps: int
    skipped: int
    n_samples: int


class PatchDataset(Dataset):
    """Labelled tiles as (image (3, H, W) float32 in [0, 1], target (2, H, W) float32 in {0, 1}) pairs.

    Images follow :func:`~fednuclei.model.unet.image_to_tensor`, targets
    :func:`~fednuclei.model.targets.segmentation_targets`. Targets are computed once and kept as
    uint8, images stay the tiles' uint8 arrays: float copies of a client's patches would take 4x
    the memory.

    Raises:
        ValueError: naming the first tile without instances.
    """

    def __init__(self, tiles: Sequence[Tile]):
        _require_instances(tiles)
        self.images = [tile.image for tile in tiles]
        self.targets = [torch.from_numpy(segmentation_targets(tile.instances).astype(np.uint8)) for tile in tiles]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return image_to_tensor(self.images[index]), self.targets[index].float()


def _require_instances(tiles: Sequence[Tile]) -> None:
    for tile in tiles:
        if tile.instances is None:
            raise ValueError(f"tile {tile.name} has no instance labels; pixel-supervised training needs them")


def require_one_size(tiles: Sequence[Tile]) -> None:
    sizes = sorted({(tile.height, tile.width) for tile in tiles})
    if len(sizes) > 1:
        raise ValueError(
            f"tiles of one training call must share a size to be batched, got {sizes}; "
            "cut them with fednuclei.data.patches.extract_patches"
        )


def _proximal_term(model: torch.nn.Module, reference: list[torch.Tensor], mu: float) -> torch.Tensor:
    """mu / 2 * sum ||w - w_ref||^2 over the parameters (FedProx)."""
    total = sum(((p.float() - r) ** 2).sum() for p, r in zip(model.parameters(), reference))
    return 0.5 * mu * total


def _prepare_reference(model: torch.nn.Module, proximal_to: Sequence[torch.Tensor] | None,
                       device: torch.device) -> list[torch.Tensor] | None:
    if proximal_to is None:
        return None
    params = list(model.parameters())
    shapes = [tuple(p.shape) for p in params]
    given = [tuple(r.shape) for r in proximal_to]
    if given != shapes:
        raise ValueError(
            f"proximal_to must hold {len(shapes)} tensors shaped like model.parameters(), in that order; "
            f"got {len(given)} tensors that do not match"
        )
    return [torch.as_tensor(r).detach().to(device, torch.float32) for r in proximal_to]


def train_on_batches(
    model: torch.nn.Module,
    batches: Iterable[Batch],
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    *,
    loss_fn: LossFn = dice_bce_loss,
    scaler: torch.amp.GradScaler | None = None,
    proximal_to: Sequence[torch.Tensor] | None = None,
    mu: float = 0.0,
) -> BatchesResult:
    """One pass of training steps, one per batch; the model is put in train mode.

    Args:
        model: on ``device``.
        batches: ``(images (N, 3, H, W) float in [0, 1], targets (N, C, H, W), mask or None)``;
            the mask (see :func:`~fednuclei.model.losses.dice_bce_loss`) is passed to ``loss_fn``.
            A batch whose loss is None is skipped and counted.
        optimizer: over ``model.parameters()``.
        device: where the model is; batches are moved there. On CUDA the forward pass runs under
            float16 autocast with gradient scaling, elsewhere in plain float32.
        loss_fn: ``(logits, targets, mask) -> scalar tensor or None``.
        scaler: the GradScaler to use on CUDA; pass the same one to every call of a training run so
            its scale carries over (a new one is made when None).
        proximal_to: FedProx reference weights in ``model.parameters()`` order; adds
            ``mu / 2 * ||w - w_ref||^2`` to each step's loss (not to the reported loss).
        mu: proximal strength, >= 0.
    """
    if mu < 0:
        raise ValueError(f"mu must be >= 0, got {mu}")
    amp = device.type == "cuda"
    if scaler is None:
        scaler = torch.amp.GradScaler(device.type, enabled=amp)
    reference = _prepare_reference(model, proximal_to, device) if mu > 0 else None
    model.train()
    total = torch.zeros((), device=device)  # summed on the device: no host sync per step
    steps = skipped = samples = 0
    for images, targets, mask in batches:
        images = images.to(device, non_blocking=True)
        targets = targets.to(device, non_blocking=True)
        mask = None if mask is None else mask.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
            logits = model(images)
        loss = loss_fn(logits, targets, mask)
        if loss is None:
            skipped += 1
            continue
        objective = loss if reference is None else loss + _proximal_term(model, reference, mu)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(objective).backward()
        scaler.step(optimizer)
        scaler.update()
        total += loss.detach()
        steps += 1
        samples += len(images)
    if skipped:
        logger.debug("skipped %d of %d batches: their loss had no valid pixel", skipped, skipped + steps)
    mean = float(total) / steps if steps else math.nan
    return BatchesResult(loss=mean, steps=steps, skipped=skipped, n_samples=samples)


def train_epochs(
    model: torch.nn.Module,
    tiles: list[Tile],
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    device: torch.device,
    seed: int = 0,
    optimizer_state: dict | None = None,
    proximal_to: list[torch.Tensor] | None = None,
    mu: float = 0.0,
    loss_fn: LossFn = dice_bce_loss,
    progress: bool = False,
) -> TrainResult:
    """Train ``model`` in place with Adam on pixel-labelled tiles.

    Args:
        model: moved to ``device``.
        tiles: equal-size tiles, all with instances (patches from
            :func:`~fednuclei.data.patches.extract_patches`).
        epochs: passes over ``tiles``, >= 1.
        batch_size: tiles per step; the last batch of an epoch may be smaller.
        lr: Adam learning rate; it overrides the one stored in ``optimizer_state``.
        device: from :func:`pick_device`.
        seed: seeds the shuffling (a ``torch.Generator``), so the same seed, model and tiles give
            the same weights on the same device.
        optimizer_state: ``TrainResult.optimizer_state`` of an earlier call, to resume Adam's moments.
        proximal_to, mu: FedProx term, see :func:`train_on_batches`.
        loss_fn: see :func:`train_on_batches`.
        progress: show a tqdm bar over epochs.

    Raises:
        ValueError: a tile without instances (named), tiles of different sizes, no tiles, or
            ``epochs`` / ``batch_size`` < 1.
    """
    if not tiles:
        raise ValueError("train_epochs needs at least one tile")
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be >= 1, got {epochs} and {batch_size}")
    _require_instances(tiles)
    require_one_size(tiles)
    start = time.perf_counter()
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    if optimizer_state is not None:
        optimizer.load_state_dict(optimizer_state)
        for group in optimizer.param_groups:
            group["lr"] = lr
    generator = torch.Generator().manual_seed(seed)
    loader = DataLoader(PatchDataset(tiles), batch_size=batch_size, shuffle=True, generator=generator,
                        pin_memory=device.type == "cuda")
    scaler = torch.amp.GradScaler(device.type, enabled=device.type == "cuda")
    steps = skipped = 0
    for epoch in tqdm(range(epochs), desc="epochs", disable=not progress):
        result = train_on_batches(
            model, ((images, targets, None) for images, targets in loader), optimizer, device,
            loss_fn=loss_fn, scaler=scaler, proximal_to=proximal_to, mu=mu,
        )
        steps, skipped = steps + result.steps, skipped + result.skipped
        logger.debug("epoch %d/%d: loss %.4f", epoch + 1, epochs, result.loss)
    return TrainResult(loss=result.loss, n_samples=len(tiles), seconds=time.perf_counter() - start, steps=steps,
                       skipped=skipped, optimizer_state=optimizer.state_dict())


def state_to_arrays(model: torch.nn.Module) -> dict[str, np.ndarray]:
    """The model's state dict as CPU numpy copies, in state-dict order (safe to keep while training on)."""
    return {name: tensor.detach().cpu().numpy().copy() for name, tensor in model.state_dict().items()}


def arrays_to_state(model: torch.nn.Module, arrays: dict[str, np.ndarray]) -> None:
    """Load numpy arrays from :func:`state_to_arrays` into ``model`` in place (onto its device).

    Raises:
        ValueError: names missing or unexpected, or a shape that differs.
    """
    state = model.state_dict()
    missing, unexpected = sorted(set(state) - set(arrays)), sorted(set(arrays) - set(state))
    if missing or unexpected:
        raise ValueError(f"weights do not fit the model: missing {missing}, unexpected {unexpected}")
    for name, tensor in state.items():
        if tuple(np.shape(arrays[name])) != tuple(tensor.shape):
            raise ValueError(
                f"weight {name} has shape {np.shape(arrays[name])}, the model expects {tuple(tensor.shape)}"
            )
    model.load_state_dict({name: torch.as_tensor(np.asarray(arrays[name])) for name in state})


def _check_plain(value, where: str) -> None:
    """Refuse values ``torch.load(weights_only=True)`` could not read back."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"model config key {key!r} in {where} must be a string")
            _check_plain(item, f"{where}.{key}")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_plain(item, f"{where}[{i}]")
    elif not (value is None or isinstance(value, (str, int, float, bool))):
        raise ValueError(f"model config value {where} is a {type(value).__name__}; only plain Python values are stored")


def save_model(model: UNet, path: str | os.PathLike, config: dict | None = None) -> None:
    """Write ``model`` to a ``.pt`` file, atomically.

    The file holds ``{"format": "fednuclei-unet", "config": ..., "state_dict": ...}`` where config is
    the architecture (``in_channels, out_channels, width, depth, groups``, from ``model.config``)
    plus any other plain entries of ``config`` (e.g. method, round); entries of ``config`` that
    name an architecture key must agree with the model.
    """
    extra = dict(config or {})
    _check_plain(extra, "config")
    for key in _CONFIG_KEYS:
        if key in extra and extra[key] != model.config[key]:
            raise ValueError(f"config {key}={extra[key]!r} contradicts the model's {key}={model.config[key]!r}")
    payload = {
        "format": MODEL_FORMAT,
        "config": {**extra, **model.config},
        "state_dict": {name: tensor.detach().cpu() for name, tensor in model.state_dict().items()},
    }
    with atomic_file(path) as staging:
        torch.save(payload, staging)


def load_model(path: str | os.PathLike, device: torch.device | str = "cpu") -> tuple[UNet, dict]:
    """Read a file written by :func:`save_model`.

    Returns:
        the UNet on ``device`` in eval mode, and the stored config (architecture plus extras).

    Raises:
        FileNotFoundError: no such file.
        ValueError: naming the file, when it is not a torch file, is a plain state dict, has another
            ``format``, or its config or weights do not make a UNet.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file {path} not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises pickle, zip and runtime errors alike for foreign files
        raise ValueError(f"{path} is not a fednuclei model file: torch cannot load it ({error})") from error
    if not isinstance(payload, dict) or "format" not in payload:
        if isinstance(payload, dict) and payload and all(isinstance(v, torch.Tensor) for v in payload.values()):
            raise ValueError(f"{path} holds a plain state dict, not a {MODEL_FORMAT} file; save with save_model")
        kind = type(payload).__name__
        raise ValueError(f"{path} is not a {MODEL_FORMAT} file: it holds a {kind} without a 'format' key")
    if payload["format"] != MODEL_FORMAT:
        raise ValueError(f"{path} has format {payload['format']!r}, expected {MODEL_FORMAT!r}")
    config = payload.get("config")
    if not isinstance(config, dict) or any(key not in config for key in _CONFIG_KEYS) or "state_dict" not in payload:
        raise ValueError(f"{path} lacks a config with {list(_CONFIG_KEYS)} or a state_dict")
    try:
        model = UNet(**{key: config[key] for key in _CONFIG_KEYS})
        arrays_to_state(model, {name: tensor.numpy() for name, tensor in payload["state_dict"].items()})
    except (ValueError, TypeError, AttributeError) as error:
        raise ValueError(f"{path}: its weights do not make a UNet: {error}") from error
    return model.to(device).eval(), config
