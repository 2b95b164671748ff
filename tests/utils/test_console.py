"""What the commands show (src/utils/console.py): progress lines of a long loop away from a terminal, and
Lightning's noise silenced while its informative lines stay."""

import logging
import warnings

import pytest
from pytorch_lightning.utilities._pytree import _tree_flatten
from pytorch_lightning.utilities.rank_zero import rank_zero_info

from facezoo.utils import console
from facezoo.utils.console import Ticker, duration, progress, quiet_lightning


def test_durations_read_as_seconds_minutes_hours():
    assert [duration(s) for s in (4.4, 65, 3725)] == ["4s", "1m05s", "1h02m"]


def test_a_ticker_is_due_every_n_steps():
    ticker = Ticker(interval=1e9, every=3)
    assert [ticker.due(step) for step in range(1, 7)] == [False, False, True, False, False, True]


def test_a_loop_away_from_a_terminal_logs_its_start_progress_and_end(monkeypatch, caplog):
    monkeypatch.setattr(console, "on_terminal", lambda: False)
    with caplog.at_level(logging.INFO, logger="facezoo"):
        with progress(5, "rendering x", "faces", interval=0) as advance:
            for n in (2, 2, 1):
                advance(n)
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "rendering x: 5 faces"
    assert [line.split(",")[0] for line in lines[1:3]] == ["rendering x: 2/5 faces", "rendering x: 4/5 faces"]
    assert lines[3].startswith("rendering x: 5 faces in ") and len(lines) == 4


def test_a_note_follows_the_plain_progress_line(monkeypatch, caplog):
    monkeypatch.setattr(console, "on_terminal", lambda: False)
    with caplog.at_level(logging.INFO, logger="facezoo"):
        with progress(3, "restoring", "photos", interval=0) as advance:
            advance(1, "2 faces, 1.50 faces/s")
    assert caplog.records[1].getMessage().endswith("left, 2 faces, 1.50 faces/s")


@pytest.fixture
def lightning_loggers(monkeypatch):
    """Lightning's rank-zero loggers with their filters restored after the test."""
    for name in ("pytorch_lightning.utilities.rank_zero", "lightning_fabric.utilities.rank_zero"):
        monkeypatch.setattr(logging.getLogger(name), "filters", [])


def test_lightning_tips_and_the_leafspec_warning_are_silenced(lightning_loggers, caplog):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _tree_flatten(1)  # what Lightning's loops do: torch warns about its LeafSpec
        assert [w.category for w in caught] == [FutureWarning]
        quiet_lightning()
        quiet_lightning()  # idempotent
        _tree_flatten(1)
        assert len(caught) == 1
    with caplog.at_level(logging.INFO):
        for message in ("💡 Tip: For seamless cloud logging, try installing litlogger",
                        "TPU available: False, using: 0 TPU cores", "GPU available: False, used: False"):
            rank_zero_info(message)
    assert "Tip" not in caplog.text and "TPU" not in caplog.text
    assert "GPU available: False" in caplog.text  # informative lines stay
