"""PSNR / SSIM (src/metrics/image_quality.py) on [-1, 1] images: the analytic PSNR of an offset, per-image
averaging, SSIM of identical and noisy images."""

import math

import pytest
import torch

from facezoo.metrics import psnr_ssim_metrics


def test_psnr_of_constant_offset_is_analytic():
    target = torch.zeros(2, 3, 16, 16)  # mid grey in [-1, 1]
    preds = target + 0.2  # 0.1 on the [0, 1] scale -> mse 0.01 -> 20 dB
    metrics = psnr_ssim_metrics()
    out = metrics(preds, target)
    assert out["psnr"].item() == pytest.approx(20.0, abs=1e-4)
    mse_01 = ((preds - target) / 2).pow(2).mean().item()  # on [0, 1]-scaled images
    assert out["psnr"].item() == pytest.approx(10 * math.log10(1 / mse_01), abs=1e-4)


def test_psnr_is_averaged_per_image():
    target = torch.zeros(2, 3, 8, 8)
    preds = target.clone()
    preds[0] += 0.2  # 20 dB
    preds[1] += 0.02  # 40 dB
    metrics = psnr_ssim_metrics()
    metrics.update(preds[:1], target[:1])
    metrics.update(preds[1:], target[1:])
    assert metrics.compute()["psnr"].item() == pytest.approx(30.0, abs=1e-3)


def test_ssim_identical_and_noisy():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 32, 32, generator=gen) * 2 - 1
    metrics = psnr_ssim_metrics(prefix="val/")
    assert metrics(x, x)["val/ssim"].item() == pytest.approx(1.0, abs=1e-5)
    metrics.reset()
    noisy = (x + 0.3 * torch.randn(x.shape, generator=gen)).clamp(-1, 1)
    assert metrics(noisy, x)["val/ssim"].item() < 0.9
