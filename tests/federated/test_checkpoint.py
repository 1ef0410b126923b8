"""The checkpoint folder of a run: commits, best-round choice, repair, and which folder a run gets."""

import json
from dataclasses import replace

import pytest
import torch

from fednuclei.federated.checkpoint import RunStore, best_round
from fednuclei.methods.common import build_model
from fednuclei.model.files import load_model


def commit(store, model, server_round, val_dice):
    with torch.no_grad():
        next(model.parameters()).fill_(float(server_round))  # tells the rounds' weights apart
    store.commit_round(model, {"round": server_round, "train_loss": float("nan"), "val_dice": val_dice, "clients": {}})


def first_weight(path):
    model, config = load_model(path)
    return float(next(model.parameters()).flatten()[0]), config["round"]


def test_rounds_commit_with_final_and_best(tmp_path, tiny_settings):
    settings = tiny_settings(tmp_path)
    store, model = RunStore(settings), build_model(settings)
    for server_round, dice in ((1, 0.2), (2, 0.7), (3, 0.5)):
        commit(store, model, server_round, dice)
    history = store.history()
    assert [h["round"] for h in history] == [1, 2, 3]
    assert history[0]["train_loss"] is None  # NaN is stored as null: history.json stays strict JSON
    assert first_weight(store.final_path) == (3.0, 3)
    assert first_weight(store.best_path) == (2.0, 2)
    assert sorted(p.name for p in (store.folder / "rounds").iterdir()) == ["round-0002.pt", "round-0003.pt"]
    fresh = build_model(settings)
    assert store.load_latest(fresh) == 3 and float(next(fresh.parameters()).flatten()[0]) == 3.0
    with pytest.raises(ValueError, match="does not follow"):
        commit(store, model, 5, 0.1)


def test_tidy_repairs_a_crash_between_history_and_copies(tmp_path, tiny_settings):
    settings = tiny_settings(tmp_path)
    store, model = RunStore(settings), build_model(settings)
    commit(store, model, 1, 0.4)
    store.final_path.unlink()
    (store.folder / "rounds" / "round-0002.pt").write_bytes(b"half-written round 2")
    store.tidy()
    assert first_weight(store.final_path) == (1.0, 1)
    assert not (store.folder / "rounds" / "round-0002.pt").exists()


def test_best_round_prefers_highest_dice_then_earliest_and_falls_back_to_latest():
    tied = [{"round": 1, "val_dice": 0.5}, {"round": 2, "val_dice": 0.5}, {"round": 3, "val_dice": 0.1}]
    assert best_round(tied) == 1
    assert best_round([{"round": 1, "val_dice": None}, {"round": 2, "val_dice": None}]) == 2


def test_same_settings_share_a_folder_and_changed_settings_get_a_fresh_one(tmp_path, tiny_settings):
    settings = tiny_settings(tmp_path)
    store = RunStore(settings)
    assert RunStore(replace(settings, num_server_rounds=9)).folder == store.folder
    assert RunStore(replace(settings, lr=0.1)).folder != store.folder
    recorded = json.loads((store.folder / "settings.json").read_text())
    assert recorded["fingerprint"] == settings.fingerprint()


def test_a_later_stage_starts_from_its_initial_model_and_numbers_rounds_on(tmp_path, tiny_settings):
    first = tiny_settings(tmp_path)
    store, model = RunStore(first), build_model(first)
    commit(store, model, 1, 0.3)
    commit(store, model, 2, 0.6)
    later = replace(first, first_round=3, num_server_rounds=5, initial_model=str(store.best_path),
                    initial_model_version="round 2")
    stage = RunStore(later)
    assert stage.folder != store.folder and stage.last_round == 2
    start = build_model(later)
    assert stage.load_latest(start) == 2 and float(next(start.parameters()).flatten()[0]) == 2.0
    with pytest.raises(ValueError, match="does not follow the finished rounds 3..2"):
        commit(stage, start, 4, 0.1)
    commit(stage, start, 3, 0.5)
    resumed = build_model(later)
    assert RunStore(later).load_latest(resumed) == 3 and float(next(resumed.parameters()).flatten()[0]) == 3.0
    assert first_weight(stage.best_path) == (3.0, 3) and first_weight(store.best_path) == (2.0, 2)  # kept
