"""The baseline and the shared base class: input contract, EMA, optimizer separation, a tiny overfit."""

import copy

import pytest
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate

from facezoo.datamodules.repeated_batch import RepeatedBatchDataModule
from facezoo.models.base import EMAUpdate
from facezoo.utils.compose import compose_config
from facezoo.utils.errors import ConfigError
from helpers import TINY


def _build(tmp_path, data_dir, *overrides):
    cfg = compose_config(overrides=[*TINY, *overrides], output_dir=tmp_path, data_dir=data_dir)
    return instantiate(cfg.model), instantiate(cfg.datamodule), cfg


def _fit(model, datamodule, batches: int, epochs: int = 1):
    trainer = pl.Trainer(
        max_epochs=epochs,
        limit_train_batches=batches,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        use_distributed_sampler=False,
        num_sanity_val_steps=0,
        enable_model_summary=False,
    )
    trainer.fit(model, datamodule=datamodule)
    return trainer


def test_restore_checks_the_input_contract(tmp_path, data_dir):
    model, _, _ = _build(tmp_path, data_dir)
    model.train()
    out = model.restore(torch.zeros(2, 3, 64, 64))
    assert out["image"].shape == (2, 3, 64, 64) and not out["image"].requires_grad
    assert model.training  # restore() gives the mode back
    assert out["image"].abs().max() <= 1
    with pytest.raises(ConfigError, match=r"divisible by 32, got 48x64"):
        model.restore(torch.zeros(1, 3, 48, 64))
    with pytest.raises(ConfigError, match=r"shape \(B, 3, H, W\)"):
        model.restore(torch.zeros(1, 1, 64, 64))


def test_ema_moves_toward_the_generator_exactly(tmp_path, data_dir):
    model, dm, _ = _build(tmp_path, data_dir, "model.ema_decay=0.9", "model.ema_warmup=false")
    before = copy.deepcopy(model.generator_ema.module.state_dict())
    _fit(model, dm, batches=1)
    g = model.generator.state_dict()
    for name, ema in model.generator_ema.module.state_dict().items():
        expected = 0.9 * before[name] + 0.1 * g[name]
        torch.testing.assert_close(ema, expected.to(ema.dtype), rtol=1e-5, atol=1e-6)
    moved = [n for n in g if not torch.equal(before[n], g[n])]
    assert moved and all(not model.generator_ema.module.state_dict()[n].requires_grad for n in moved)


def test_ema_update_rejects_bad_decay_and_warms_up():
    with pytest.raises(ConfigError, match="ema decay=1.0"):
        EMAUpdate(1.0)
    warm = EMAUpdate(0.999, warmup=True)
    assert warm.factor(0) == pytest.approx(0.1) and warm.factor(90) == pytest.approx(0.91)
    assert warm.factor(10**6) == 0.999 and EMAUpdate(0.999).factor(0) == 0.999


@pytest.mark.parametrize("frozen", ["generator", "discriminator"])
def test_each_optimizer_moves_only_its_network(tmp_path, data_dir, frozen):
    opt = "optimizer_g" if frozen == "generator" else "optimizer_d"
    model, dm, _ = _build(tmp_path, data_dir, f"model.{opt}.lr=0.0")
    nets = {"generator": model.generator, "discriminator": model.discriminator}
    before = {k: copy.deepcopy(v.state_dict()) for k, v in nets.items()}
    _fit(model, dm, batches=2)
    for name, net in nets.items():
        changed = any(not torch.equal(before[name][k], v) for k, v in net.state_dict().items())
        assert changed == (name != frozen), name


def test_tiny_overfit_lowers_l1(tmp_path, data_dir):
    model, dm, _ = _build(tmp_path, data_dir, "model.ema_decay=0", "model.l1_weight=100")
    dm.prepare_data()
    dm.setup("fit")
    batch = dm.on_after_batch_transfer(next(iter(dm.train_dataloader())), 0)
    source, target = batch["paired"]["raw"], batch["paired"]["retouched"]
    before = torch.nn.functional.l1_loss(model.restore(source)["image"], target).item()

    _fit(model, RepeatedBatchDataModule(batch, 80), batches=80)
    after = torch.nn.functional.l1_loss(model.restore(source)["image"], target).item()
    assert after < 0.6 * before, (before, after)
