"""What every method's training shares: the learning rate of each round."""

import math
from dataclasses import replace

import pytest

from fednuclei.methods.common import round_lr
from fednuclei.run_settings import RunSettings


def test_constant_and_cosine_learning_rates_by_round():
    constant = RunSettings(lr=0.01, num_server_rounds=4)
    assert [round_lr(constant, r) for r in range(1, 5)] == [0.01] * 4
    cosine = replace(constant, lr_schedule="cosine")
    rates = [round_lr(cosine, r) for r in range(1, 5)]
    # (1 + cos(pi * (r - 1) / 4)) / 2 for r = 1..4: 1, 0.854, 0.5, 0.146
    assert rates == pytest.approx([0.01 * (1 + math.cos(math.pi * k / 4)) / 2 for k in range(4)])
    assert rates[0] == 0.01 and rates == sorted(rates, reverse=True) and rates[-1] > 0


def test_a_cosine_schedule_makes_the_round_count_part_of_the_run():
    constant, cosine = RunSettings(), RunSettings(lr_schedule="cosine")
    assert replace(constant, num_server_rounds=7).fingerprint() == constant.fingerprint()
    assert replace(cosine, num_server_rounds=7).fingerprint() != cosine.fingerprint()
    assert replace(constant, watershed="blend", tta=True).fingerprint() == constant.fingerprint()


@pytest.mark.parametrize("changes, message", [
    ({"lr_schedule": "step"}, "lr_schedule must be one of"), ({"watershed": "voronoi"}, "watershed must be one of"),
    ({"contour_width": 0}, "contour_width must be >= 1"), ({"contour_weight": 0.0}, "contour_weight"),
    ({"lr": -0.001}, "lr must be finite and > 0"), ({"infer_overlap": 1.0}, "infer_overlap"),
])
def test_training_and_scoring_settings_are_validated(changes, message):
    with pytest.raises(ValueError, match=message):
        RunSettings(**changes)
