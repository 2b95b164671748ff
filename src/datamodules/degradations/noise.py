"""Noise stage: BasicSR's `add_gaussian_noise`, x + N(0, sigma/255) per pixel and channel (one field for all
channels where gray noise is drawn), clipped to [0, 1]: `gaussian_noise` draws the fields, `add_noise` adds
them."""

import torch


def gaussian_noise(x: torch.Tensor, gray: torch.Tensor | None, generator: torch.Generator) -> torch.Tensor:
    """N(0, 1) fields shaped like x, one per pixel and channel (one field for all channels where ``gray``).
    Drawn for the whole batch (the generator stream does not depend on which samples get noise)."""
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    if gray is not None:
        gray_noise = torch.randn(x[:, :1].shape, generator=generator, device=x.device, dtype=x.dtype)
        index = torch.nonzero(gray).squeeze(1)
        noise.index_copy_(0, index, gray_noise[index].expand(-1, x.shape[1], -1, -1))
    return noise


def add_noise(x: torch.Tensor, noise: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """x + noise * sigma / 255 with per-sample sigma (B,) on the 0-255 scale, clipped to [0, 1]; the result
    is written over ``noise``."""
    return noise.mul_((sigma / 255.0)[:, None, None, None]).add_(x).clamp_(0.0, 1.0)
