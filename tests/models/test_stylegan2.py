"""The unconditional StyleGAN2 LightningModule (src/models/stylegan2.py): lazy regularisation schedules,
the optimizer correction, the image-based EMA, sampling as `restore`, and validation without PSNR. Networks
are tiny and random on purpose. (The networks: tests/models/components/test_stylegan2.py.)
"""

import copy

import pytest
import torch

import facezoo.models.gan as gan_module
from facezoo.train import train
from facezoo.utils.compose import compose_config
from facezoo.utils.instantiate import instantiate
from helpers import TINY, first_batch, fit_repeated

SG = ["model=stylegan2", "datamodule=synthetic_restore"]


def _build(tmp_path, data_dir, *overrides):
    cfg = compose_config(overrides=[*TINY, *SG, *overrides], output_dir=tmp_path, data_dir=data_dir)
    return instantiate(cfg.model, "model"), instantiate(cfg.datamodule, "datamodule")


def test_r1_every_16_and_path_length_every_4_batches(tmp_path, data_dir, monkeypatch):
    model, dm = _build(tmp_path, data_dir, "model.size=32")  # the HQ batch is resized to 32 px
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


def test_real_images_of_a_retouching_batch(tmp_path, data_dir):
    model, dm = _build(tmp_path, data_dir, "datamodule=synthetic_retouch", "split.gamma=0.5")
    batch = first_batch(dm)
    real = model.real_images(batch)
    expected = torch.cat([batch["paired"]["retouched"], batch["unpaired_retouched"]["retouched"]])
    torch.testing.assert_close(real, expected)  # every retouched (clean) face, paired or not


def test_lazy_regularization_corrects_lr_and_betas(tmp_path, data_dir):
    model, _ = _build(tmp_path, data_dir)
    (opt_g, opt_d), schedulers = model.configure_optimizers()
    (g,), (d,) = opt_g.param_groups, opt_d.param_groups
    assert schedulers == []  # constant learning rates
    assert g["lr"] == pytest.approx(0.002 * 4 / 5) and g["betas"] == pytest.approx((0.0, 0.99 ** (4 / 5)))
    assert d["lr"] == pytest.approx(0.002 * 16 / 17) and d["betas"] == pytest.approx((0.0, 0.99 ** (16 / 17)))
    off, _ = _build(tmp_path, data_dir, "model.lazy_reg_correction=false")
    assert off.configure_optimizers()[0][0].param_groups[0]["lr"] == pytest.approx(0.002)


def test_ema_decay_counts_images(tmp_path, data_dir):
    model, _ = _build(tmp_path, data_dir)

    def decay(batch, images=None, rampup=None):
        model.hparams.ema_images, model.hparams.ema_rampup = images, rampup
        return model.ema_decay(batch)

    assert decay(32) == pytest.approx(0.5 ** (32 / 10000))  # StyleGAN2 at config-f's batch of 32
    assert decay(4) == pytest.approx(0.5 ** (4 / 10000))  # batch dependent: the half-life stays 10k images
    assert decay(4, images=32) == pytest.approx(0.5 ** (32 / 10000))  # rosinality / GPEN's constant
    assert decay(4, rampup=0.05) == 0.0  # StyleGAN2-ADA's rampup: the first update copies
    model.batch_counter.fill_(100)  # 400 images seen: a half-life of 20 images
    assert decay(4, rampup=0.05) == pytest.approx(0.5 ** (4 / 20))


def test_one_step_runs_and_ema_moves_toward_the_generator(tmp_path, data_dir):
    # half-life 4 images at batch 4: beta = 0.5 exactly
    model, dm = _build(tmp_path, data_dir, "model.ema_half_life_images=4")
    before = copy.deepcopy(model.generator_ema.module.state_dict())
    fit_repeated(model, first_batch(dm), 1)
    g = model.generator.state_dict()
    moved = [k for k in g if not torch.equal(before[k], g[k])]
    assert moved and int(model.batch_counter) == 1
    for k, ema in model.generator_ema.module.state_dict().items():
        torch.testing.assert_close(ema, 0.5 * before[k] + 0.5 * g[k], rtol=1e-5, atol=1e-6)


def test_restore_returns_fixed_samples_of_the_input_size(tmp_path, data_dir):
    model, _ = _build(tmp_path, data_dir)
    a = model.restore(torch.zeros(3, 3, 48, 40))["image"]
    b = model.restore(torch.ones(3, 3, 48, 40))["image"]  # the input only sets the count and the size
    assert a.shape == (3, 3, 48, 40) and not a.requires_grad
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a[0], a[1])
    assert model.sample(2, seed=1).shape == (2, 3, 64, 64)
    assert not torch.allclose(model.sample(2, seed=1), model.sample(2, seed=2))


def test_training_logs_pixel_fd_instead_of_psnr(tmp_path, data_dir):
    cfg = compose_config(overrides=[*TINY, *SG], output_dir=tmp_path, data_dir=data_dir)
    assert cfg.callbacks.model_checkpoint.monitor == "val/pixel_fd" == cfg.optimized_metric  # model.monitor
    metrics = train(cfg)
    assert set(metrics) == {"val/pixel_fd", "test/pixel_fd"} and metrics["test/pixel_fd"] > 0
    assert (tmp_path / "checkpoints" / "best.ckpt").is_file()
    assert (tmp_path / "samples" / "test.png").is_file()
    state = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert int(state["batch_counter"]) == 3 and "mean_path_length" in state
    assert any(k.startswith("generator_ema.module.") for k in state)
