"""Nodes of a federated method's incremental stage: train it and a retraining from scratch,
score the three models, and report what the stage did."""

from __future__ import annotations

import logging

import matplotlib.pyplot as plt
import pandas as pd

from fednuclei.data.tiles import Tile
from fednuclei.drawing import before_after_bars
from fednuclei.evaluation import score_tiles
from fednuclei.federated.checkpoint import RunStore
from fednuclei.federated.simulation import run_federated
from fednuclei.methods.stages import continuing_from
from fednuclei.metrics.transfer import TRANSFER_METRICS, backward_transfer, before_after
from fednuclei.model.files import load_model
from fednuclei.model.postprocess import Postprocess
from fednuclei.model.unet import UNet
from fednuclei.run_settings import RunSettings

logger = logging.getLogger(__name__)

MODELS = ["before", "after", "scratch"]


def train_incremental(first: RunSettings, incremental: RunSettings, base_model: UNet) -> tuple[UNet, pd.DataFrame]:
    """The incremental stage on Flower, from the first stage's best model(s) (kept where they
    are); with nothing new, the first stage's model as it is and no round."""
    if incremental.num_server_rounds < incremental.first_round:
        logger.info("nothing new since the first stage: no incremental round")
        return base_model, pd.DataFrame({"round": []})
    best, history = run_federated(continuing_from(incremental, RunStore(first).best_path))
    return load_model(best)[0], pd.json_normalize(history)


def train_from_scratch(scratch: RunSettings) -> tuple[UNet, pd.DataFrame]:
    """Everyone on every tile from round 1, as many rounds as the two stages together: what the
    incremental stage saves (the first stage's run itself when nothing is new)."""
    best, history = run_federated(scratch)
    return load_model(best)[0], pd.json_normalize(history)


def score_model(model: UNet, evaluation_tiles: list[Tile], settings: RunSettings) -> pd.DataFrame:
    """Per-image scores of one model on the held-out tiles."""
    per_image, _ = score_tiles(lambda tile: model, evaluation_tiles, patch=settings.infer_patch,
                               overlap=settings.infer_overlap, tta=settings.tta, postprocess=Postprocess.of(settings))
    return per_image


def incremental_report(before: pd.DataFrame, after: pd.DataFrame, scratch: pd.DataFrame, first: RunSettings,
                       incremental: RunSettings, first_history: pd.DataFrame, incremental_history: pd.DataFrame,
                       scratch_history: pd.DataFrame) -> tuple[pd.DataFrame, plt.Figure, dict]:
    """Per client and overall, test Dice, AJI and PQ before the incremental stage (the first
    stage's model), after it, and after retraining from scratch; the old clients' change and the
    new ones' gain; and, for MLflow, backward transfer and the cost of both ways (rounds, seconds).
    """
    new_clients = [c for c in incremental.clients if c not in first.clients]
    table = before_after(dict(zip(MODELS, (before, after, scratch))), new_clients)
    transfer = backward_transfer(table)
    new = table[table["client"] == "new clients"]
    summary = {f"bwt_{metric}": value for metric, value in transfer.items()}
    summary |= {f"new_gain_{metric}": float(new[f"{metric}_change"].iloc[0]) for metric in TRANSFER_METRICS
                if len(new)}
    seconds = {name: float(history["round_seconds"].sum()) if "round_seconds" in history else 0.0
               for name, history in (("first", first_history), ("incremental", incremental_history),
                                     ("scratch", scratch_history))}
    summary |= {"incremental_rounds": len(incremental_history), "scratch_rounds": len(scratch_history),
                "incremental_seconds": seconds["incremental"], "scratch_seconds": seconds["scratch"],
                "first_and_incremental_seconds": seconds["first"] + seconds["incremental"]}
    logger.info("incremental stage: backward transfer %s; new clients' gain %s",
                {k: round(v, 4) for k, v in transfer.items()},
                {k: round(v, 4) for k, v in summary.items() if k.startswith("new_gain")})
    metrics = {f"incremental.{key}": {"value": value, "step": 0} for key, value in summary.items()
               if pd.notna(value)}
    return table, before_after_bars(table, MODELS), metrics
