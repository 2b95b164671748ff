"""What every method shares (src/models/base.py), through the baseline: the exact EMA update and its warm-up,
and the config's shape checked in one line (objective weights, optimizer groups, plain hyperparameters)."""

import copy

import pytest
import torch

from facezoo.models.base import EMAUpdate
from facezoo.utils.compose import compose_config
from facezoo.utils.errors import ConfigError
from helpers import TINY, build_tiny, fit_batches


def test_ema_moves_toward_the_generator_exactly(tmp_path, data_dir):
    model, dm, _ = build_tiny(tmp_path, data_dir, "model.ema_decay=0.9", "model.ema_warmup=false")
    before = copy.deepcopy(model.generator_ema.module.state_dict())
    fit_batches(model, dm, batches=1)
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


def test_the_config_shape_is_checked_in_one_line(tmp_path, data_dir):
    from facezoo.utils.instantiate import instantiate as build

    def model(*overrides):
        cfg = compose_config(overrides=[*TINY, *overrides], output_dir=tmp_path, data_dir=data_dir)
        return build(cfg.model, "model")

    with pytest.raises(ConfigError, match=r"^model.loss_weights: Pix2PixBaseline's objective weighs l1; got"):
        model("+model.loss_weights.gan=1")
    with pytest.raises(ConfigError, match=r"generator, discriminator; no optimizer for discriminator$"):
        model("~model.optimizers.discriminator").configure_optimizers()
    adam = "{_target_: torch.optim.Adam, _partial_: true}"
    with pytest.raises(ConfigError, match=r"^model.optimizers / model.schedulers: .*; unknown mask$"):
        model(f"+model.optimizers.mask={adam}").configure_optimizers()
    hparams = model().hparams  # plain values only: no networks, no optimizer factories
    assert "generator" not in hparams and "optimizers" not in hparams
    assert hparams.loss_weights == {"l1": 100.0} and hparams.lpips_net == "alex"
    assert hparams.alignment == "ffhq" == model().alignment  # the face crop facezoo-restore repeats
    with pytest.raises(ConfigError, match=r"^model.alignment=square: expected template, ffhq or null$"):
        model("model.alignment=square")
