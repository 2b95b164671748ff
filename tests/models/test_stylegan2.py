"""The unconditional StyleGAN2 LightningModule (src/models/stylegan2.py): HQ images of any batch, the EMA
moving toward the generator, sampling as `restore`, and validation without PSNR. Networks are tiny and random
on purpose. (The networks: tests/models/components/test_stylegan2.py; the GAN scaffolding: test_gan.py.)
"""

import copy

import torch

from facezoo.train import train
from facezoo.utils.compose import compose_config
from facezoo.utils.instantiate import instantiate
from helpers import TINY, first_batch, fit_repeated

SG = ["model=stylegan2", "datamodule=synthetic_restore"]


def _build(tmp_path, data_dir, *overrides):
    cfg = compose_config(overrides=[*TINY, *SG, *overrides], output_dir=tmp_path, data_dir=data_dir)
    return instantiate(cfg.model, "model"), instantiate(cfg.datamodule, "datamodule")


def test_real_images_of_a_retouching_batch(tmp_path, data_dir):
    model, dm = _build(tmp_path, data_dir, "datamodule=synthetic_retouch", "split.gamma=0.5")
    batch = first_batch(dm)
    real = model.real_images(batch)
    expected = torch.cat([batch["paired"]["retouched"], batch["unpaired_retouched"]["retouched"]])
    torch.testing.assert_close(real, expected)  # every retouched (clean) face, paired or not


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
