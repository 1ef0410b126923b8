"""Per-round weights and participation of FedAvg, FedMix, FedST and FedRGD, checked against hand-worked values."""

import math

import numpy as np
import pytest

from fednuclei.methods import fedmix
from fednuclei.methods.aggregation import ClientReport, size_weights, weighted_average
from fednuclei.methods.fedrgd import random_participants
from fednuclei.methods.fedst import fedst_warmup_participants, trust_share_weights

NAN = float("nan")


def fedmix_weights(reports, lam=10.0, beta=3.0):
    """FedMix's weights with the paper's lambda and beta unless given."""
    return fedmix.fedmix_weights(reports, lam=lam, beta=beta)


def assert_weights(actual, expected):
    assert list(actual) == list(expected)  # every reported client, in report order
    assert actual == pytest.approx(expected, abs=1e-12)


# --- fedmix_weights ---------------------------------------------------------------------------

def mixed_round():
    return [ClientReport("a", "pixel", 10, 0.5),
            ClientReport("b", "bbox", 5, 1.0),
            ClientReport("c", "points", 0, NAN)]


def test_fedmix_weights_by_hand():
    # Trained: a, b. d = (10/15, 5/15) = (2/3, 1/3).
    # s: 0.5**3 = 0.125, 1**3 = 1, sum 1.125 -> (1/9, 8/9).
    # d + 10 s = (2/3 + 10/9, 1/3 + 80/9) = (16/9, 83/9), sum 99/9 -> (16/99, 83/99); c gets 0.
    assert_weights(fedmix_weights(mixed_round(), lam=10, beta=3), {"a": 16 / 99, "b": 83 / 99, "c": 0.0})


def test_fedmix_without_loss_term_is_size_weighting():
    # lam = 0: w = d = (10/15, 5/15).
    assert_weights(fedmix_weights(mixed_round(), lam=0), {"a": 2 / 3, "b": 1 / 3, "c": 0.0})


def test_fedmix_beta_zero_and_all_zero_losses_make_s_uniform():
    # d = (10/40, 30/40) = (1/4, 3/4), s = (1/2, 1/2): d + 10 s = (21/4, 23/4), sum 11 -> (21/44, 23/44).
    sizes = [ClientReport("a", "pixel", 10, 0.0), ClientReport("b", "points", 30, 0.0)]
    assert_weights(fedmix_weights(sizes), {"a": 21 / 44, "b": 23 / 44})  # 0/0 taken uniform
    sizes = [ClientReport("a", "pixel", 10, 0.2), ClientReport("b", "points", 30, 3.0)]
    assert_weights(fedmix_weights(sizes, beta=0), {"a": 21 / 44, "b": 23 / 44})  # loss**0 = 1


def test_fedmix_huge_losses_do_not_overflow():
    # Losses 1e200 and 2e200: s = (1, 8)/9 as for losses 1 and 2, although 1e200**3 overflows.
    reports = [ClientReport("a", "pixel", 10, 1e200), ClientReport("b", "bbox", 10, 2e200)]
    # d = (1/2, 1/2): d + 10 s = (1/2 + 10/9, 1/2 + 80/9) = (29/18, 169/18), sum 11 -> (29/198, 169/198).
    assert_weights(fedmix_weights(reports), {"a": 29 / 198, "b": 169 / 198})


def test_fedmix_round_where_nobody_trained_is_empty():
    reports = [ClientReport("b", "bbox", 0, NAN), ClientReport("c", "none", 0, NAN)]
    assert fedmix_weights(reports) == {}
    assert fedmix_weights([]) == {}


@pytest.mark.parametrize("loss", [NAN, math.inf, -0.1])
def test_fedmix_rejects_bad_loss_of_a_trained_client(loss):
    reports = [ClientReport("a", "pixel", 10, 0.5), ClientReport("weak-1", "bbox", 3, loss)]
    with pytest.raises(ValueError, match="weak-1"):
        fedmix_weights(reports)


@pytest.mark.parametrize("kwargs", [{"lam": -1.0}, {"beta": -0.5}, {"lam": NAN}])
def test_fedmix_rejects_bad_hyperparameters(kwargs):
    with pytest.raises(ValueError):
        fedmix_weights(mixed_round(), **kwargs)


def test_reports_are_validated():
    with pytest.raises(ValueError, match="supervision"):
        ClientReport("a", "scribble", 3, 0.1)
    with pytest.raises(ValueError, match="usable_images"):
        ClientReport("a", "pixel", -1, 0.1)
    with pytest.raises(ValueError, match="duplicate"):
        fedmix_weights([ClientReport("a", "pixel", 3, 0.1), ClientReport("a", "bbox", 3, 0.1)])


# --- size_weights (FedAvg) ---------------------------------------------------------------------

def test_fedavg_weights_by_training_images():
    reports = [ClientReport("a", "pixel", 10, 0.5), ClientReport("b", "pixel", 30, 0.2),
               ClientReport("weak", "bbox", 0, NAN)]
    assert_weights(size_weights(reports), {"a": 0.25, "b": 0.75, "weak": 0.0})
    assert size_weights([ClientReport("weak", "bbox", 0, NAN)]) == {}


# --- trust_share_weights ----------------------------------------------------------------------

def test_trust_share_fedst_by_hand():
    # Pixel 10 + 30 share 0.9: 0.9 * 10/40 = 0.225, 0.9 * 30/40 = 0.675.
    # Weak 20 + 20 share 0.1: 0.05 each. The idle client gets 0.
    reports = [ClientReport("p1", "pixel", 10, 0.3), ClientReport("p2", "pixel", 30, 0.3),
               ClientReport("w1", "bbox", 20, 0.3), ClientReport("w2", "none", 20, 0.3),
               ClientReport("idle", "points", 0, NAN)]
    assert_weights(trust_share_weights(reports, 0.9),
                   {"p1": 0.225, "p2": 0.675, "w1": 0.05, "w2": 0.05, "idle": 0.0})


def test_trust_share_fedrgd_by_hand():
    # Pixel 10 alone gets 0.5; weak 20 + 60 share 0.5: 0.5 * 20/80 = 0.125, 0.5 * 60/80 = 0.375.
    reports = [ClientReport("w1", "points", 20, 0.3), ClientReport("p", "pixel", 10, 0.3),
               ClientReport("w2", "bbox", 60, 0.3)]
    assert_weights(trust_share_weights(reports, 0.5), {"w1": 0.125, "p": 0.5, "w2": 0.375})


def test_trust_share_with_one_kind_goes_by_size():
    # Only weak clients trained (the pixel one had nothing): 20/80, 60/80.
    reports = [ClientReport("p", "pixel", 0, NAN), ClientReport("w1", "none", 20, 0.3),
               ClientReport("w2", "bbox", 60, 0.3)]
    assert_weights(trust_share_weights(reports, 0.9), {"p": 0.0, "w1": 0.25, "w2": 0.75})
    # Only pixel clients: 10/40, 30/40, whatever the share.
    reports = [ClientReport("p1", "pixel", 10, 0.3), ClientReport("p2", "pixel", 30, 0.3)]
    assert_weights(trust_share_weights(reports, 0.0), {"p1": 0.25, "p2": 0.75})


def test_trust_share_empty_and_validation():
    assert trust_share_weights([], 0.9) == {}
    assert trust_share_weights([ClientReport("w", "bbox", 0, NAN)], 0.9) == {}
    for share in (-0.1, 1.1, NAN):
        with pytest.raises(ValueError, match="pixel_share"):
            trust_share_weights([ClientReport("p", "pixel", 1, 0.1)], share)


# --- weighted_average -------------------------------------------------------------------------

def test_weighted_average_by_hand():
    arrays = {
        "a": [np.array([1.0, 2.0], np.float32), np.array([[0.0], [4.0]]), np.array(7, np.int64)],
        "b": [np.array([3.0, 6.0], np.float32), np.array([[8.0], [0.0]]), np.array(2, np.int64)],
    }
    result = weighted_average(arrays, {"a": 0.25, "b": 0.75})
    # 0.25 * (1, 2) + 0.75 * (3, 6) = (2.5, 5); 0.25 * (0, 4) + 0.75 * (8, 0) = (6, 1);
    # the counter comes from b, the highest weight.
    np.testing.assert_array_equal(result[0], np.array([2.5, 5.0], np.float32))
    np.testing.assert_array_equal(result[1], np.array([[6.0], [1.0]]))
    assert result[2] == 2
    assert [r.dtype for r in result] == [np.float32, np.float64, np.int64]
    assert [r.shape for r in result] == [(2,), (2, 1), ()]


def test_weighted_average_skips_zero_weights_and_copies_integers():
    counter = np.array([5], np.int64)
    arrays = {"a": [np.array([2.0], np.float16), counter], "b": [np.array([4.0], np.float16), np.array([9], np.int64)]}
    # "c" has weight 0 and no arrays; a ties b, so the counter comes from the first, a.
    result = weighted_average(arrays, {"a": 0.5, "b": 0.5, "c": 0.0})
    assert result[0].dtype == np.float16 and result[0][0] == 3.0
    np.testing.assert_array_equal(result[1], [5])
    result[1][0] = 0
    assert counter[0] == 5  # a copy, not the client's array


def test_weighted_average_errors():
    arrays = {"a": [np.zeros(2)], "b": [np.zeros(3)]}
    with pytest.raises(ValueError, match="array 0"):
        weighted_average(arrays, {"a": 0.5, "b": 0.5})
    with pytest.raises(ValueError, match="dtype|float32"):
        weighted_average({"a": [np.zeros(2)], "b": [np.zeros(2, np.float32)]}, {"a": 0.5, "b": 0.5})
    with pytest.raises(ValueError, match="sent 2 arrays"):
        weighted_average({"a": [np.zeros(2)], "b": [np.zeros(2), np.zeros(2)]}, {"a": 0.5, "b": 0.5})
    with pytest.raises(ValueError, match="sum to 1"):
        weighted_average({"a": [np.zeros(2)], "b": [np.zeros(2)]}, {"a": 0.5, "b": 0.4})
    with pytest.raises(ValueError, match="sum to 1"):
        weighted_average({"a": [np.zeros(2)]}, {})
    with pytest.raises(ValueError, match="no arrays"):
        weighted_average({"a": [np.zeros(2)]}, {"a": 0.5, "b": 0.5})
    with pytest.raises(ValueError, match=">= 0"):
        weighted_average({"a": [np.zeros(2)], "b": [np.zeros(2)]}, {"a": 1.5, "b": -0.5})


# --- participation ----------------------------------------------------------------------------

def test_fedst_warmup_participants_by_round():
    clients = {"h0": "bbox", "h1": "pixel", "h2": "none", "h3": "pixel"}
    assert fedst_warmup_participants(clients, 1, warmup_rounds=2) == ["h1", "h3"]
    assert fedst_warmup_participants(clients, 2, warmup_rounds=2) == ["h1", "h3"]
    assert fedst_warmup_participants(clients, 3, warmup_rounds=2) == ["h0", "h1", "h2", "h3"]
    assert fedst_warmup_participants(clients, 1, warmup_rounds=0) == ["h0", "h1", "h2", "h3"]


def test_fedst_warmup_validation():
    with pytest.raises(ValueError, match="pixel client"):
        fedst_warmup_participants({"h0": "bbox"}, 1, warmup_rounds=1)
    with pytest.raises(ValueError, match="server_round"):
        fedst_warmup_participants({"h0": "pixel"}, 0, warmup_rounds=1)
    with pytest.raises(ValueError, match="supervision"):
        fedst_warmup_participants({"h0": "scribble"}, 1, warmup_rounds=1)


CLIENTS = [f"hospital_{i}" for i in range(10)]


def test_random_participants_reproducible_and_in_original_order():
    later_first = random_participants(CLIENTS, 0.3, seed=7, server_round=5)
    for server_round in range(1, 5):
        random_participants(CLIENTS, 0.3, seed=7, server_round=server_round)
    again = random_participants(CLIENTS, 0.3, seed=7, server_round=5)
    assert again == later_first  # independent of which rounds were drawn before
    assert len(again) == 3  # round(0.3 * 10)
    assert again == sorted(again, key=CLIENTS.index)


def test_random_participants_vary_across_rounds_and_seeds():
    draws = {tuple(random_participants(CLIENTS, 0.3, seed=0, server_round=r)) for r in range(1, 11)}
    assert len(draws) > 1
    other_seed = [random_participants(CLIENTS, 0.3, seed=1, server_round=r) for r in range(1, 11)]
    same_seed = [random_participants(CLIENTS, 0.3, seed=0, server_round=r) for r in range(1, 11)]
    assert other_seed != same_seed


def test_random_participants_everyone_and_at_least_one():
    assert random_participants(CLIENTS, 1.0, seed=3, server_round=2) == CLIENTS
    assert len(random_participants(CLIENTS, 0.01, seed=3, server_round=2)) == 1  # round(0.1) = 0 -> 1
    assert random_participants(["solo"], 0.5, seed=0, server_round=1) == ["solo"]


@pytest.mark.parametrize("fraction", [0.0, -0.2, 1.5, NAN])
def test_random_participants_rejects_bad_fraction(fraction):
    with pytest.raises(ValueError, match="fraction"):
        random_participants(CLIENTS, fraction, seed=0, server_round=1)


def test_random_participants_rejects_no_or_duplicate_clients():
    with pytest.raises(ValueError, match="no clients"):
        random_participants([], 0.5, seed=0, server_round=1)
    with pytest.raises(ValueError, match="duplicate"):
        random_participants(["a", "a"], 0.5, seed=0, server_round=1)
