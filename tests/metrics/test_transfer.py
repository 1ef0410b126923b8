"""Before and after an incremental stage: per-client changes and backward transfer, by hand."""

import math

import pandas as pd
import pytest

from fednuclei.metrics.transfer import backward_transfer, before_after


def scores(rows):
    return pd.DataFrame(rows, columns=["tile", "client", "split", "dice", "aji", "pq"])


BEFORE = scores([
    ("a1", "a", "test", 0.80, 0.50, 0.40), ("a2", "a", "test", 0.60, 0.30, 0.20),
    ("b1", "b", "test", 0.70, float("nan"), float("nan")),
    ("n1", "new", "test", 0.20, 0.10, 0.05),
    ("a3", "a", "val", 0.99, 0.99, 0.99),  # validation tiles never count
])
AFTER = scores([
    ("a1", "a", "test", 0.70, 0.45, 0.35), ("a2", "a", "test", 0.60, 0.35, 0.25),
    ("b1", "b", "test", 0.75, float("nan"), float("nan")),
    ("n1", "new", "test", 0.80, 0.60, 0.50),
    ("a3", "a", "val", 0.10, 0.10, 0.10),
])


def test_changes_per_client_and_backward_transfer_by_hand():
    table = before_after({"before": BEFORE, "after": AFTER, "scratch": AFTER}, new_clients=["new"])
    rows = table.set_index("client")
    assert list(rows.index) == ["a", "b", "new", "old clients", "new clients", "all"]
    assert list(rows["kind"]) == ["old", "old", "new", "overall", "overall", "overall"]
    # client a: Dice (0.8 + 0.6) / 2 = 0.7 before, (0.7 + 0.6) / 2 = 0.65 after: forgot 0.05
    assert rows.loc["a", "dice_before"] == pytest.approx(0.70) and rows.loc["a", "dice_after"] == pytest.approx(0.65)
    assert rows.loc["a", "dice_change"] == pytest.approx(-0.05) and rows.loc["b", "dice_change"] == pytest.approx(0.05)
    assert rows.loc["new", "dice_change"] == pytest.approx(0.60)  # the new client's gain
    assert rows.loc["a", "aji_change"] == pytest.approx((0.45 + 0.35 - 0.5 - 0.3) / 2)  # 0.0
    assert math.isnan(rows.loc["b", "aji_change"])
    assert rows.loc["all", "n_images"] == 4 and rows.loc["old clients", "n_images"] == 3
    # backward transfer: mean over the old clients, each once: (-0.05 + 0.05) / 2 = 0 for Dice;
    # AJI over the one old client with exact instances: 0.0; PQ: (0.35 + 0.25 - 0.4 - 0.2) / 2 = 0.0
    transfer = backward_transfer(table)
    assert transfer["dice"] == pytest.approx(0.0, abs=1e-12) and transfer["aji"] == pytest.approx(0.0, abs=1e-12)
    assert rows.loc["a", "dice_scratch"] == pytest.approx(0.65)


def test_forgetting_is_a_negative_backward_transfer():
    worse = AFTER.assign(dice=AFTER["dice"] - 0.1)
    transfer = backward_transfer(before_after({"before": BEFORE, "after": worse}, new_clients=["new"]))
    assert transfer["dice"] == pytest.approx(-0.1)
    with pytest.raises(ValueError, match="before and after"):
        before_after({"before": BEFORE}, new_clients=[])
