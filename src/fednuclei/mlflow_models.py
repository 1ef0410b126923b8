"""Trained U-Nets as MLflow models: logged with MLflow's PyTorch flavour, so that the model registry
takes them, and read back by ``fednuclei predict --model runs:/... | models:/...``.

A model logged by :func:`log_unet` holds:

* the network as MLflow's default ``pt2`` program (``torch.export``): ``mlflow.pytorch.load_model``
  returns a module mapping (N, 3, H, W) float32 images in [0, 1] to (N, 2, H, W) logits
  (foreground, contour), H and W multiples of ``2 ** depth``; loading it unpickles nothing and
  needs no fednuclei;
* its signature and an input example (a batch of two grey 64 px images);
* the model's config (architecture and extras) as MLmodel metadata ``fednuclei``;
* the fednuclei model file (:mod:`fednuclei.model.files`) as the extra file ``fednuclei_model.pt``:
  what :func:`load_unet` reads, weights only, so predicting from MLflow equals predicting from
  the ``.pt`` file.

MLflow glue: only the Kedro glue and :mod:`fednuclei.commands` (lazily) import this module.
"""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path

import mlflow
import mlflow.pytorch
import numpy as np
import torch
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.models.model import ModelInfo
from mlflow.types import Schema, TensorSpec

from fednuclei.model.files import load_model, save_model
from fednuclei.model.unet import UNet

MODEL_FILE = "fednuclei_model.pt"
# Unnamed tensors: MLflow's PyTorch flavour serves a single unnamed array, not a dict of named ones.
SIGNATURE = ModelSignature(
    inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, 3, -1, -1))]),
    outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, 2, -1, -1))]),
)


def log_unet(model: UNet, name: str, **log_args) -> ModelInfo:
    """Log ``model`` into the active MLflow run (one is started if none is) as an MLflow PyTorch model.

    Args:
        model: the U-Net, on any device; it is not changed.
        name: the model's name in the run.
        log_args: further arguments of ``mlflow.pytorch.log_model``, e.g. ``registered_model_name``.

    Returns:
        MLflow's ModelInfo; its ``model_uri`` (``models:/<model id>``) is what ``mlflow.register_model`` takes.
    """
    exported = copy.deepcopy(model).cpu().eval()
    # Two images, so that the batch size stays free in the exported program (torch.export fixes a size of 1).
    side = max(64, 2 ** model.config["depth"])
    example = np.full((2, model.config["in_channels"], side, side), 0.5, np.float32)
    with tempfile.TemporaryDirectory() as folder:
        file = Path(folder) / MODEL_FILE
        save_model(exported, file)
        return mlflow.pytorch.log_model(
            exported,
            name=name,
            signature=SIGNATURE,
            input_example=example,
            extra_files=[str(file)],
            metadata={"fednuclei": dict(model.config)},
            # torch alone: pinned here, since inferring requirements would reload the model in a subprocess
            pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
            **log_args,
        )


def load_unet(uri: str, device: torch.device | str = "cpu") -> tuple[UNet, dict]:
    """The U-Net of an MLflow model logged by :func:`log_unet`, from the tracking and registry
    stores MLflow is set to (``MLFLOW_TRACKING_URI``; by default ``mlflow.db`` in the working folder).

    Returns:
        the UNet on ``device`` in eval mode, and its config, as :func:`fednuclei.model.files.load_model`.

    Raises:
        ValueError: naming ``uri``, when MLflow cannot find it or it holds no fednuclei model file.
    """
    with tempfile.TemporaryDirectory() as folder:
        try:
            local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=folder))
        except MlflowException as error:
            raise ValueError(f"MLflow model {uri}: {error.message}") from error
        file = local / "extra_files" / MODEL_FILE
        if not file.is_file():
            raise ValueError(f"MLflow model {uri} holds no extra_files/{MODEL_FILE}: it was not logged by fednuclei")
        return load_model(file, device)
