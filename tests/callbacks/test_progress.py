"""Training progress (src/callbacks/progress.py): the Rich bar on a terminal; elsewhere plain log lines with
the batch counts, the losses and every validation's metrics."""

import logging
import re

import pytorch_lightning as pl
from pytorch_lightning.callbacks import RichProgressBar

from facezoo.callbacks import progress
from facezoo.callbacks.progress import PlainProgress, progress_bar
from helpers import build_tiny


def test_the_rich_bar_on_a_terminal_plain_lines_elsewhere(monkeypatch):
    monkeypatch.setattr(progress, "on_terminal", lambda: True)
    assert isinstance(progress_bar(), RichProgressBar)
    monkeypatch.setattr(progress, "on_terminal", lambda: False)
    bar = progress_bar(interval_s=5, every_n_batches=2)
    assert isinstance(bar, PlainProgress) and (bar.interval_s, bar.every_n_batches) == (5, 2)


def test_plain_lines_give_batch_counts_losses_and_validation_metrics(tmp_path, data_dir, caplog):
    model, datamodule, _ = build_tiny(tmp_path, data_dir, "iterations=4")
    trainer = pl.Trainer(
        max_epochs=1, limit_train_batches=4, val_check_interval=2, limit_val_batches=1, logger=False,
        enable_checkpointing=False, num_sanity_val_steps=0, enable_model_summary=False,
        use_distributed_sampler=False, callbacks=[PlainProgress(interval_s=1e9, every_n_batches=2)],
    )
    with caplog.at_level(logging.INFO, logger="facezoo"):
        trainer.fit(model, datamodule=datamodule)
    lines = [r.getMessage() for r in caplog.records if r.name == "facezoo"]
    batches = [line for line in lines if line.startswith("epoch 0, batch")]
    # the first batch, then every 2nd (the last is one of them); none in between
    assert [re.search(r"batch (\d+/\d+), run (\d+/\d+)", b).groups() for b in batches] == [
        ("1/4", "1/4"), ("2/4", "2/4"), ("4/4", "4/4")
    ]
    assert all("s/batch" in b and "left" in b and "train/" in b for b in batches)
    validations = [line for line in lines if line.startswith("validation after")]
    assert len(validations) == 2 and validations[0].startswith("validation after run batch 2/4 | ")
    assert all(re.search(r"val/psnr \d+\.\d+", v) and "val/ssim" in v for v in validations)
    assert lines[-1].startswith("training done: 4 batches in ")
