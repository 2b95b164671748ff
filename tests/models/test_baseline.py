"""The pix2pix baseline (src/models/baseline.py): a tiny overfit lowers L1. (What it shares with every method:
tests/models/test_base.py.)"""

import torch

from facezoo.datamodules.repeated_batch import RepeatedBatchDataModule
from helpers import build_tiny, fit_batches


def test_tiny_overfit_lowers_l1(tmp_path, data_dir):
    model, dm, _ = build_tiny(tmp_path, data_dir, "model.ema_decay=0", "model.loss_weights.l1=100")
    dm.prepare_data()
    dm.setup("fit")
    batch = dm.on_after_batch_transfer(next(iter(dm.train_dataloader())), 0)
    source, target = batch["paired"]["raw"], batch["paired"]["retouched"]
    before = torch.nn.functional.l1_loss(model.restore(source)["image"], target).item()

    fit_batches(model, RepeatedBatchDataModule(batch, 80), batches=80)
    after = torch.nn.functional.l1_loss(model.restore(source)["image"], target).item()
    assert after < 0.6 * before, (before, after)
