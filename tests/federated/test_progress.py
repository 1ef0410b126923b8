"""The progress of a federated run: one log line per round, and a bar with the time left on a terminal only."""

from __future__ import annotations

import fcntl
import io
import logging
import os
import struct
import sys
import termios

from fednuclei.federated.progress import RoundProgress, duration, round_line

RECORD = {"round": 2, "val_dice": 0.8123,
          "clients": {"a": {"train_loss": 0.51234, "train_seconds": 12.4}, "b": {"train_loss": 0.4, "train_seconds": 3},
                      "c": {"train_loss": None}},
          "failures": {"train": {"c": "ImageReadError"}, "evaluate": {}}}


def test_a_round_line_names_each_client_its_loss_and_time_the_dice_failures_and_the_time_left():
    line = round_line(RECORD, last_round=5, elapsed=90.0, rounds_left=3, rounds_done=2)
    assert line == ("round 2/5: loss a 0.512 (12 s), b 0.400 (3 s); val Dice 0.812; failed: c; "
                    "1 min 30 s elapsed, about 2 min 15 s left")
    assert round_line({**RECORD, "val_dice": None, "failures": {}}, 2, 30.0, 0, 2).endswith(
        "no validation Dice; 30 s elapsed")
    assert [duration(s) for s in (42, 185, 4830)] == ["42 s", "3 min 5 s", "1 h 20 min"]


def _report_two_rounds(stream, monkeypatch, caplog) -> None:
    monkeypatch.setattr(sys, "stderr", stream)
    with caplog.at_level(logging.INFO, logger="fednuclei.federated.progress"):
        progress = RoundProgress("fedavg", first=1, last=3)
        progress.round_done({**RECORD, "round": 1})
        progress.round_done(RECORD)
        progress.close()


def test_without_a_terminal_there_are_round_lines_and_no_bar(monkeypatch, caplog):
    stream = io.StringIO()
    _report_two_rounds(stream, monkeypatch, caplog)
    assert "round/s" not in stream.getvalue() and "%|" not in stream.getvalue()
    assert [r.getMessage().split(":")[0] for r in caplog.records] == ["round 1/3", "round 2/3"]


def test_on_a_terminal_a_bar_over_the_rounds_shows_the_time_left(monkeypatch, caplog):
    leader, follower = os.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # a new pty is 0 columns wide
    with os.fdopen(follower, "w") as terminal:
        _report_two_rounds(terminal, monkeypatch, caplog)
    shown = os.read(leader, 65536).decode(errors="replace")
    os.close(leader)
    assert "fedavg:" in shown and "%|" in shown
    assert "2/3 [00:00<00:00" in shown  # rounds done, then [elapsed<time left]
