"""GANModule (src/models/gan.py), the scaffolding the GAN methods share, exercised through the tiny
StyleGAN2: the lazy R1 / path-length schedules on the batch counter, the lazy-regularisation correction of
the optimizers, and the image-based EMA decay."""

import pytest

import facezoo.models.gan as gan_module
from helpers import build_tiny, first_batch, fit_repeated

SG = ["model=stylegan2", "datamodule=synthetic_restore"]


def build(tmp_path, data_dir, *overrides):
    model, datamodule, _ = build_tiny(tmp_path, data_dir, *SG, *overrides)
    return model, datamodule


def test_r1_every_16_and_path_length_every_4_batches(tmp_path, data_dir, monkeypatch):
    model, dm = build(tmp_path, data_dir, "model.size=32")  # the HQ batch is resized to 32 px
    calls = {"r1": [], "path": []}
    r1, path = gan_module.r1_penalty, gan_module.path_length_penalty

    def counting_r1(logits, images):
        calls["r1"].append(int(model.batch_counter))
        return r1(logits, images)

    def counting_path(images, latents, mean, decay):
        calls["path"].append((int(model.batch_counter), images.shape[0]))
        return path(images, latents, mean, decay)

    monkeypatch.setattr(gan_module, "r1_penalty", counting_r1)
    monkeypatch.setattr(gan_module, "path_length_penalty", counting_path)
    trainer = fit_repeated(model, first_batch(dm), 17)
    assert calls["r1"] == [0, 16]
    assert calls["path"] == [(c, 2) for c in (0, 4, 8, 12, 16)]  # on half the batch of 4
    assert int(model.batch_counter) == 17 and model.mean_path_length > 0
    assert {"train/d", "train/g", "train/r1", "train/path"} <= set(trainer.callback_metrics)


def test_lazy_regularization_corrects_lr_and_betas(tmp_path, data_dir):
    model, _ = build(tmp_path, data_dir)
    (opt_g, opt_d), schedulers = model.configure_optimizers()
    (g,), (d,) = opt_g.param_groups, opt_d.param_groups
    assert schedulers == []  # constant learning rates
    assert g["lr"] == pytest.approx(0.002 * 4 / 5) and g["betas"] == pytest.approx((0.0, 0.99 ** (4 / 5)))
    assert d["lr"] == pytest.approx(0.002 * 16 / 17) and d["betas"] == pytest.approx((0.0, 0.99 ** (16 / 17)))
    off, _ = build(tmp_path, data_dir, "model.lazy_reg_correction=false")
    assert off.configure_optimizers()[0][0].param_groups[0]["lr"] == pytest.approx(0.002)


def test_ema_decay_counts_images(tmp_path, data_dir):
    model, _ = build(tmp_path, data_dir)

    def decay(batch, images=None, rampup=None):
        model.hparams.ema_images, model.hparams.ema_rampup = images, rampup
        return model.ema_decay(batch)

    assert decay(32) == pytest.approx(0.5 ** (32 / 10000))  # StyleGAN2 at config-f's batch of 32
    assert decay(4) == pytest.approx(0.5 ** (4 / 10000))  # batch dependent: the half-life stays 10k images
    assert decay(4, images=32) == pytest.approx(0.5 ** (32 / 10000))  # rosinality / GPEN's constant
    assert decay(4, rampup=0.05) == 0.0  # StyleGAN2-ADA's rampup: the first update copies
    model.batch_counter.fill_(100)  # 400 images seen: a half-life of 20 images
    assert decay(4, rampup=0.05) == pytest.approx(0.5 ** (4 / 20))
