"""Batched, seeded synthetic degradation for blind face restoration (GFP-GAN / GPEN / DFDNet style).

`BlindDegradation` reproduces the LQ synthesis of GFP-GAN (``gfpgan/data/ffhq_degradation_dataset.py`` with
BasicSR ``data/degradations.py``) on a whole batch at once, on the batch's device, without a Python loop over
samples:

0. optional HQ pre-processing (GPEN, DFDNet): per-channel colour shift, then gray; the LQ is made from it;
1. blur with a per-sample isotropic / anisotropic Gaussian kernel, correlated like ``cv2.filter2D``;
2. resize by 1/s, s ~ U[0.8, 8], to ``(int(H // s), int(W // s))`` like ``cv2.resize`` (no antialias);
3. Gaussian noise, sigma ~ U[0, 20] / 255 (optionally gray noise), clipped to [0, 1];
4. JPEG with integer quality ~ U{60..100}: an exact-rounding baseline 4:2:0 codec that follows libjpeg;
5. resize back to (H, W);
6. LQ-only colour: RGB shift (p 0.3), gray (p 0.01), brightness/contrast/saturation/hue jitter (p 0.3, random
   order per sample, torchvision semantics);
7. round to uint8 levels and clamp.

Per-sample low-resolution sizes differ, so steps 2-5 work on a common canvas as large as the largest LR image
(resize.py). The stages live in one module per family: blur.py, resize.py, noise.py, jpeg.py, color.py.

Every stage has a probability (default 1.0 for 1-5) and ranges; all are `DegradationConfig` fields, named as
in the GFP-GAN options where such an option exists, so a YAML file can pass them straight through. `PRESETS`
holds GFP-GAN, GPEN and DFDNet settings. The result is a deterministic function of (hq, seed): all
randomness comes from one ``torch.Generator`` on the batch's device seeded with ``seed``.
"""

import torch

from facezoo.datamodules.degradations.blur import blur, gaussian_kernels
from facezoo.datamodules.degradations.color import color_jitter_pt, shift_colors, to_gray
from facezoo.datamodules.degradations.config import DegradationConfig, make_config
from facezoo.datamodules.degradations.jpeg import jpeg_compress
from facezoo.datamodules.degradations.noise import add_noise, gaussian_noise
from facezoo.datamodules.degradations.resize import (
    lr_sizes,
    replicate_outside,
    resize_from_canvas,
    resize_to_canvas,
)


class _Sampler:
    """Draws per-sample tensors from one generator (the draw order fixes the stream, keep it stable)."""

    def __init__(self, batch: int, generator: torch.Generator, device: torch.device):
        self.batch, self.generator, self.device = batch, generator, device

    def uniform(self, low: float, high: float, *shape: int) -> torch.Tensor:
        u = torch.rand(self.batch, *shape, generator=self.generator, device=self.device)
        return low + (high - low) * u

    def bernoulli(self, p: float) -> torch.Tensor:
        return self.uniform(0.0, 1.0) < p

    def integers(self, low: int, high: int) -> torch.Tensor:
        """Uniform integers in [low, high], inclusive."""
        return torch.randint(low, high + 1, (self.batch,), generator=self.generator, device=self.device)


def sample_params(cfg: DegradationConfig, batch: int, generator: torch.Generator, device) -> dict:
    """Every random parameter of a batch. Values are drawn for every sample; ``*_applied`` masks say which
    samples a stage touches (kernel, scale, etc. of the other samples are drawn but unused)."""
    s = _Sampler(batch, generator, device)
    p: dict[str, torch.Tensor] = {}
    # 0. HQ pre-processing
    p["gt_shift_applied"] = s.bernoulli(cfg.gt_color_jitter_prob)
    p["gt_shift"] = s.uniform(-cfg.gt_color_jitter_shift, cfg.gt_color_jitter_shift, 3) / 255.0
    p["gt_gray_applied"] = s.bernoulli(cfg.gt_gray_prob)
    # 1. blur kernel
    p["blur_applied"] = s.bernoulli(cfg.blur_prob)
    iso_prob = dict(zip(cfg.kernel_list, cfg.kernel_prob, strict=True)).get("iso", 0.0) / sum(cfg.kernel_prob)
    p["kernel_iso"] = s.bernoulli(iso_prob)
    k_low, k_high = cfg.blur_kernel_size
    p["kernel_size"] = k_low + 2 * s.integers(0, (k_high - k_low) // 2)
    sigma_y_range = cfg.blur_sigma_y or cfg.blur_sigma
    p["sigma_x"] = s.uniform(*cfg.blur_sigma)
    p["sigma_y"] = torch.where(p["kernel_iso"], p["sigma_x"], s.uniform(*sigma_y_range))
    p["theta"] = torch.where(p["kernel_iso"], 0.0, s.uniform(*cfg.rotation_range))
    # 2. downsample
    p["downsample_applied"] = s.bernoulli(cfg.downsample_prob)
    p["scale"] = s.uniform(*cfg.downsample_range)
    # 3. noise
    p["noise_applied"] = s.bernoulli(cfg.noise_prob)
    p["noise_sigma"] = s.uniform(*cfg.noise_range)
    p["noise_gray"] = s.bernoulli(cfg.noise_gray_prob)
    # 4. JPEG
    p["jpeg_applied"] = s.bernoulli(cfg.jpeg_prob)
    p["quality"] = s.integers(*cfg.jpeg_range)
    # 6. LQ colour
    p["shift_applied"] = s.bernoulli(cfg.color_jitter_prob)
    p["shift"] = s.uniform(-cfg.color_jitter_shift, cfg.color_jitter_shift, 3) / 255.0
    p["gray_applied"] = s.bernoulli(cfg.gray_prob)
    p["jitter_applied"] = s.bernoulli(cfg.color_jitter_pt_prob)
    p["jitter_order"] = torch.argsort(s.uniform(0.0, 1.0, 4), dim=1)  # a random permutation per sample
    for name in ("brightness", "contrast", "saturation", "hue"):
        p[name] = s.uniform(*(getattr(cfg, name) or (0.0, 0.0)))
    return p


def _apply(applied: torch.Tensor, stage, x: torch.Tensor, *args: torch.Tensor, always: bool = False):
    """``stage(x, *args)`` on the samples where ``applied`` (B,), ``x`` elsewhere; args are per-sample.

    Only the selected samples are gathered, computed and copied back into ``x`` in place (pass a tensor the
    caller owns); no sample selected skips the stage and returns ``x``; every sample selected (or ``always``:
    the stage probability is 1) returns the stage's output for the whole batch."""
    if always:
        return stage(x, *args)
    index = torch.nonzero(applied).squeeze(1)
    if not index.numel():
        return x
    if index.numel() == x.shape[0]:
        return stage(x, *args)
    return x.index_copy_(0, index, stage(x[index], *(a[index] for a in args)))


def quantize(x: torch.Tensor, inplace: bool = False) -> torch.Tensor:
    """Round to uint8 levels, clamp to [0, 255]; the result is the level count (0..255) as float.
    ``inplace``: overwrite x with it."""
    x = x.mul_(255.0) if inplace else x * 255.0
    return x.round_().clamp_(0.0, 255.0)


class BlindDegradation(torch.nn.Module):
    """Synthesise LQ images from a batch of HQ images: ``out = deg(hq, seed)``.

    Args:
        preset: None or "gfpgan" (GFP-GAN defaults), "gpen" or "dfdnet"; see `PRESETS`.
        **overrides: any `DegradationConfig` field (probabilities, ranges, kernel options, interpolation).

    Call with hq (B, 3, H, W) float in [-1, 1] and an int seed. Returns ``dict(lq=..., hq=..., params=...)``:
    lq (B, 3, H, W) in [-1, 1] on uint8 levels (k / 127.5 - 1); hq, the input or, where an HQ stage changed
    it (gt_gray_prob, gt_color_jitter_prob, gt_gray), the changed HQ; params, the per-sample tensors of
    `sample_params` plus the low-resolution sizes ``lr_h``, ``lr_w``. Same (hq, seed) gives the same result.
    """

    def __init__(self, preset: str | None = None, **overrides):
        super().__init__()
        self.config = make_config(preset, **overrides)

    def extra_repr(self) -> str:
        return repr(self.config)

    @torch.no_grad()
    def forward(self, hq: torch.Tensor, seed: int) -> dict:
        if hq.dim() != 4 or hq.shape[1] != 3 or not hq.is_floating_point():
            raise ValueError(f"hq must be a float (B, 3, H, W) batch, got {tuple(hq.shape)} {hq.dtype}")
        cfg = self.config
        batch, _, height, width = hq.shape
        device = hq.device
        generator = torch.Generator(device=device)
        generator.manual_seed(int(seed))
        p = sample_params(cfg, batch, generator, device)

        # 0. HQ pre-processing; x is a fresh tensor, which the stages below may overwrite in place
        x = (hq.float() + 1.0).div_(2.0)
        hq_changed = p["gt_shift_applied"] | p["gt_gray_applied"]
        if cfg.gt_color_jitter_prob > 0:
            x = _apply(p["gt_shift_applied"], shift_colors, x, p["gt_shift"])
        if cfg.gt_gray_prob > 0:
            x = _apply(p["gt_gray_applied"], to_gray, x)
        # keep the HQ only where an HQ stage can change it
        hq_may_change = (
            cfg.gt_color_jitter_prob > 0 or cfg.gt_gray_prob > 0 or cfg.gt_gray and cfg.gray_prob > 0
        )
        hq01 = x.clone() if hq_may_change else None
        # 1. blur
        if cfg.blur_prob > 0:
            kernels = gaussian_kernels(
                p["sigma_x"], p["sigma_y"], p["theta"], p["kernel_size"], cfg.blur_kernel_size[1]
            )
            x = _apply(p["blur_applied"], blur, x, kernels, always=cfg.blur_prob == 1)
        # 2. downsample onto a common canvas
        resizing = cfg.downsample_prob > 0
        if resizing:
            scale = torch.where(p["downsample_applied"], p["scale"], 1.0)
            lr_h, lr_w = lr_sizes(height, width, scale)
            x = resize_to_canvas(x, lr_h, lr_w, cfg.interpolation)
        else:
            lr_h = torch.full((batch,), height, device=device)
            lr_w = torch.full((batch,), width, device=device)
        p["lr_h"], p["lr_w"] = lr_h, lr_w
        # 3. noise (drawn for every sample, added where applied)
        if cfg.noise_prob > 0:
            noise = gaussian_noise(x, p["noise_gray"] if cfg.noise_gray_prob > 0 else None, generator)
            x = _apply(p["noise_applied"], add_noise, x, noise, p["noise_sigma"], always=cfg.noise_prob == 1)
            if resizing:
                x = replicate_outside(x, lr_h, lr_w)
        # 4. JPEG
        if cfg.jpeg_prob > 0:
            x = _apply(p["jpeg_applied"], jpeg_compress, x, p["quality"], always=cfg.jpeg_prob == 1)
            if resizing:
                x = replicate_outside(x, lr_h, lr_w)
        # 5. back to full size
        if resizing:
            x = resize_from_canvas(x, lr_h, lr_w, height, width, cfg.interpolation)
        # 6. LQ-only colour
        if cfg.color_jitter_prob > 0:
            x = _apply(p["shift_applied"], shift_colors, x, p["shift"])
        if cfg.gray_prob > 0:
            x = _apply(p["gray_applied"], to_gray, x)
            if cfg.gt_gray:
                hq01 = _apply(p["gray_applied"], to_gray, hq01)
                hq_changed = hq_changed | p["gray_applied"]
        if cfg.color_jitter_pt_prob > 0:
            x = color_jitter_pt(x, p["jitter_applied"], p["jitter_order"], p, cfg)
        # 7. output
        lq = quantize(x, inplace=True).div_(127.5).sub_(1.0) if cfg.quantize else x.mul_(2.0).sub_(1.0)
        hq_out = hq
        if hq_may_change:
            changed = torch.nonzero(hq_changed).squeeze(1)
            if changed.numel():
                hq_out = hq.index_copy(0, changed, (hq01[changed] * 2.0 - 1.0).to(hq.dtype))
        return dict(lq=lq.to(hq.dtype), hq=hq_out, params=p)
