"""A federated run in stages: which rounds and clients the first stage, the incremental stage
and the retraining from scratch get."""

import pytest

from fednuclei.methods.stages import Client, continuing_from, plan_stages

FIRST = {"train_roots": ["first"], "val_roots": ["first_val"], "data_version": "v1"}
ALL = {"train_roots": ["first", "added"], "val_roots": ["first_val", "added_val"], "data_version": "v2"}
VALUES = {"method": "fedmix", "num_server_rounds": 4, "incremental_rounds": 2}
CLIENTS = {"a": Client("pixel"), "b": Client("bbox", 0), "late": Client("points", 3)}


def test_a_joiner_splits_the_run_at_its_round():
    stages = plan_stages(VALUES, CLIENTS, new_tiles=False, first_data=FIRST, all_data=ALL)
    first, incremental, scratch = stages.first, stages.incremental, stages.scratch
    assert (first.clients, first.supervision, first.num_server_rounds) == (("a", "b"), ("pixel", "bbox"), 2)
    assert first.train_roots == ("first",) and first.data_version == "v1"
    assert (incremental.first_round, incremental.num_server_rounds) == (3, 6) and stages.anything_new
    assert incremental.clients == ("a", "b", "late") and incremental.join_rounds == (0, 0, 3)
    assert incremental.client_join_rounds == {"a": 1, "b": 1, "late": 3}
    assert incremental.train_roots == ("first", "added") and incremental.data_version == "v2"
    assert (scratch.first_round, scratch.num_server_rounds, scratch.join_rounds) == (1, 6, ())
    assert scratch.clients == incremental.clients


def test_only_the_incremental_stage_is_pulled_towards_the_pre_join_model():
    stages = plan_stages({**VALUES, "proximal_mu": 0.01}, CLIENTS, new_tiles=False, first_data=FIRST, all_data=ALL)
    assert (stages.first.proximal_mu, stages.incremental.proximal_mu, stages.scratch.proximal_mu) == (0.0, 0.01, 0.0)
    unpulled = plan_stages(VALUES, CLIENTS, new_tiles=False, first_data=FIRST, all_data=ALL)
    assert (stages.first, stages.scratch) == (unpulled.first, unpulled.scratch)  # changing mu leaves them fresh


def test_new_tiles_alone_add_rounds_after_the_plan():
    clients = {"a": Client("pixel"), "b": Client("pixel")}
    stages = plan_stages(VALUES, clients, new_tiles=True, first_data=FIRST, all_data=ALL)
    assert stages.first.num_server_rounds == 4
    assert (stages.incremental.first_round, stages.incremental.num_server_rounds) == (5, 6)


def test_nothing_new_means_an_empty_incremental_stage():
    clients = {"a": Client("pixel"), "b": Client("pixel")}
    stages = plan_stages(VALUES, clients, new_tiles=False, first_data=FIRST, all_data=ALL)
    assert not stages.anything_new and stages.scratch == stages.first
    no_rounds = plan_stages({**VALUES, "incremental_rounds": 0}, clients, new_tiles=True, first_data=FIRST,
                            all_data=ALL)
    assert not no_rounds.anything_new


def test_a_federation_needs_a_starting_client():
    with pytest.raises(ValueError, match="no client starts the federation"):
        plan_stages(VALUES, {"late": Client("pixel", 2)}, new_tiles=False, first_data=FIRST, all_data=ALL)


def test_continuing_from_a_model_names_it_by_its_content(tmp_path):
    stages = plan_stages(VALUES, CLIENTS, new_tiles=False, first_data=FIRST, all_data=ALL)
    (tmp_path / "best.pt").write_bytes(b"model 1")
    (tmp_path / "best.model_2.pt").write_bytes(b"model 2")
    one = continuing_from(stages.incremental, tmp_path / "best.pt")
    (tmp_path / "best.model_2.pt").write_bytes(b"model 2, trained further")
    other = continuing_from(stages.incremental, tmp_path / "best.pt")
    assert one.initial_model == str(tmp_path / "best.pt") and one.initial_model_version != other.initial_model_version
    assert one.fingerprint() != other.fingerprint()
