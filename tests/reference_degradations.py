"""Per-image OpenCV/numpy reference of the batched blind degradation (src/datamodules/degradations/) and a
speed comparison of the two. Test code: the package never imports it.

`degrade_cv2` follows GFP-GAN's ``FFHQDegradationDataset.__getitem__`` with BasicSR's kernel, noise and JPEG
functions (cv2.filter2D, cv2.resize, numpy noise, cv2.imencode), one image at a time, with the same options as
`BlindDegradation` (`DegradationConfig` fields). It draws from a numpy Generator, so its samples follow the
same distributions as the batched version but not the same values. It is the yardstick of
tests/test_degradations.py and of `benchmark`, not a training code path.

Run ``python tests/reference_degradations.py [size] [batch] [repeats] [threads]`` to print the
speed comparison (`make bench` times the batched pipeline alone).
"""

import math
import statistics
import sys
import timeit

import cv2
import numpy as np
import torch

from facezoo.bench import degradation_input
from facezoo.datamodules.degradations.color import CV2_GRAY, TORCHVISION_GRAY
from facezoo.datamodules.degradations.config import make_config
from facezoo.datamodules.degradations.pipeline import BlindDegradation

_CV2_INTERPOLATION = {"bilinear": cv2.INTER_LINEAR, "bicubic": cv2.INTER_CUBIC}


def bivariate_gaussian(kernel_size: int, sigma_x: float, sigma_y: float, theta: float) -> np.ndarray:
    """BasicSR `bivariate_Gaussian` (normalised, rows are y, columns x)."""
    ax = np.arange(-kernel_size // 2 + 1.0, kernel_size // 2 + 1.0)
    xx, yy = np.meshgrid(ax, ax)
    grid = np.stack([xx, yy], axis=-1)
    d = np.diag([sigma_x**2, sigma_y**2])
    u = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    inverse = np.linalg.inv(u @ d @ u.T)
    kernel = np.exp(-0.5 * np.sum((grid @ inverse) * grid, axis=-1))
    return kernel / kernel.sum()


def _gray(img: np.ndarray, weights) -> np.ndarray:
    return np.repeat((img @ np.asarray(weights, np.float32))[..., None], 3, axis=2).astype(np.float32)


def _jitter_pt(img: np.ndarray, rng: np.random.Generator, cfg) -> np.ndarray:
    """GFP-GAN `color_jitter_pt` with torchvision semantics, in numpy (img RGB float32 in [0, 1])."""
    for op in rng.permutation(4):
        name = ("brightness", "contrast", "saturation", "hue")[op]
        if getattr(cfg, name) is None:
            continue
        f = np.float32(rng.uniform(*getattr(cfg, name)))
        if name == "brightness":
            img = np.clip(img * f, 0, 1)
        elif name == "contrast":
            img = np.clip(f * img + (1 - f) * _gray(img, TORCHVISION_GRAY)[..., 0].mean(), 0, 1)
        elif name == "saturation":
            img = np.clip(f * img + (1 - f) * _gray(img, TORCHVISION_GRAY), 0, 1)
        else:
            hsv = cv2.cvtColor(img.astype(np.float32), cv2.COLOR_RGB2HSV)  # float: H in [0, 360)
            hsv[..., 0] = np.mod(hsv[..., 0] + 360.0 * f, 360.0)
            img = np.clip(cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB), 0, 1)
    return img.astype(np.float32)


def degrade_cv2(
    img: np.ndarray, rng: np.random.Generator, preset: str | None = None, return_hq: bool = False, **options
):
    """Degrade one (H, W, 3) uint8 RGB image; options as `BlindDegradation` (`DegradationConfig` fields).

    Returns the uint8 LQ image, or (lq, hq) with return_hq (hq as float32 in [0, 1], changed only by the HQ
    stages: gt_color_jitter_prob, gt_gray_prob, gt_gray)."""
    cfg = make_config(preset, **options)
    h, w = img.shape[:2]
    interpolation = _CV2_INTERPOLATION[cfg.interpolation]
    hq = img.astype(np.float32) / 255.0
    # 0. HQ pre-processing (GPEN / DFDNet)
    if rng.uniform() < cfg.gt_color_jitter_prob:
        shift = rng.uniform(-cfg.gt_color_jitter_shift, cfg.gt_color_jitter_shift, 3) / 255.0
        hq = np.clip(hq + shift.astype(np.float32), 0, 1)
    if rng.uniform() < cfg.gt_gray_prob:
        hq = _gray(hq, CV2_GRAY)
    lq = hq
    # 1. blur
    if rng.uniform() < cfg.blur_prob:
        probs = np.asarray(cfg.kernel_prob) / sum(cfg.kernel_prob)
        kernel_type = cfg.kernel_list[rng.choice(len(probs), p=probs)]
        k_low, k_high = cfg.blur_kernel_size
        size = k_low + 2 * int(rng.integers(0, (k_high - k_low) // 2 + 1))
        sigma_x = rng.uniform(*cfg.blur_sigma)
        if kernel_type == "iso":
            sigma_y, theta = sigma_x, 0.0
        else:
            sigma_y = rng.uniform(*(cfg.blur_sigma_y or cfg.blur_sigma))
            theta = rng.uniform(*cfg.rotation_range)
        lq = cv2.filter2D(lq, -1, bivariate_gaussian(size, sigma_x, sigma_y, theta))
    # 2. downsample
    if rng.uniform() < cfg.downsample_prob:
        scale = rng.uniform(*cfg.downsample_range)
        lq = cv2.resize(lq, (max(1, int(w // scale)), max(1, int(h // scale))), interpolation=interpolation)
    # 3. noise
    if rng.uniform() < cfg.noise_prob:
        sigma = rng.uniform(*cfg.noise_range)
        if rng.uniform() < cfg.noise_gray_prob:
            noise = np.repeat(rng.standard_normal(lq.shape[:2])[..., None], 3, axis=2)
        else:
            noise = rng.standard_normal(lq.shape)
        lq = np.clip(lq + noise.astype(np.float32) * np.float32(sigma / 255.0), 0, 1)
    # 4. JPEG (OpenCV converts BasicSR's float image to uint8 by rounding)
    if rng.uniform() < cfg.jpeg_prob:
        quality = int(rng.integers(cfg.jpeg_range[0], cfg.jpeg_range[1] + 1))
        bgr = np.round(np.clip(lq, 0, 1) * 255.0).astype(np.uint8)[..., ::-1]
        _, encoded = cv2.imencode(".jpg", bgr, [int(cv2.IMWRITE_JPEG_QUALITY), quality])
        lq = cv2.imdecode(encoded, cv2.IMREAD_COLOR)[..., ::-1].astype(np.float32) / 255.0
    # 5. back to full size
    if lq.shape[:2] != (h, w):
        lq = cv2.resize(np.ascontiguousarray(lq), (w, h), interpolation=interpolation)
    # 6. LQ-only colour
    if rng.uniform() < cfg.color_jitter_prob:
        shift = rng.uniform(-cfg.color_jitter_shift, cfg.color_jitter_shift, 3) / 255.0
        lq = np.clip(lq + shift.astype(np.float32), 0, 1)
    if rng.uniform() < cfg.gray_prob:
        lq = _gray(lq, CV2_GRAY)
        if cfg.gt_gray:
            hq = _gray(hq, CV2_GRAY)
    if rng.uniform() < cfg.color_jitter_pt_prob:
        lq = _jitter_pt(lq, rng, cfg)
    # 7. round and clip
    out = np.clip(np.round(lq * 255.0), 0, 255).astype(np.uint8)
    return (out, hq) if return_hq else out


def benchmark(size: int = 512, batch: int = 16, repeats: int = 3, threads: int = 2, **options) -> dict:
    """Images/s of `BlindDegradation` on a (batch, 3, size, size) CPU batch vs a `degrade_cv2` loop over the
    same images, both with `threads` threads; median of `repeats` timed runs after one warm-up run each
    (seed 0 for the warm-up, 1..repeats for the timed runs).

    Timings with 2 threads collapse (3-4x slower) when another process keeps a core busy: torch's parallel
    regions wait for their slowest thread, while the per-image OpenCV loop barely uses a second thread."""
    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)
    hq = degradation_input(size, batch)
    images = [((x.permute(1, 2, 0).numpy() + 1) * 127.5).round().astype(np.uint8) for x in hq]
    degradation = BlindDegradation(**options)

    def run_batched(seed):
        degradation(hq, seed)

    def run_cv2(seed):
        rng = np.random.default_rng(seed)
        for img in images:
            degrade_cv2(img, rng, **options)

    def median_rate(run) -> float:
        seeds = iter(range(repeats + 1))
        run(next(seeds))
        times = timeit.repeat(lambda: run(next(seeds)), repeat=repeats, number=1)
        return batch / statistics.median(times)

    batched_rate, cv2_rate = median_rate(run_batched), median_rate(run_cv2)
    return dict(batched_img_per_s=batched_rate, cv2_img_per_s=cv2_rate, ratio=batched_rate / cv2_rate)


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:5]]  # size, batch, repeats, threads
    result = benchmark(*args)
    print({k: round(v, 3) if isinstance(v, float) and math.isfinite(v) else v for k, v in result.items()})
