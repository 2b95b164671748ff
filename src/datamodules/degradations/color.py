"""Colour stages (images (B, 3, H, W) float in [0, 1]): GFP-GAN's RGB shift and gray conversion, and the
brightness / contrast / saturation / hue jitter of its `color_jitter_pt` with torchvision semantics."""

import math
from functools import lru_cache

import torch
from kornia.enhance import adjust_hue as _kornia_adjust_hue

CV2_GRAY = (0.299, 0.587, 0.114)  # cv2.COLOR_RGB2GRAY (GFP-GAN's gray stage)
TORCHVISION_GRAY = (0.2989, 0.587, 0.114)  # torchvision rgb_to_grayscale (used by adjust_contrast/saturation)


@lru_cache(maxsize=64)
def constant(values: tuple, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """``torch.tensor(values)`` made once per device and dtype (never modify the result in place)."""
    return torch.tensor(values, device=device, dtype=dtype)


def color_matrix(x: torch.Tensor, matrix) -> torch.Tensor:
    """Per-pixel 3x3 colour transform of (B, 3, H, W) images (matrix rows: output channels)."""
    return torch.einsum("ij,bjhw->bihw", constant(matrix, x.device, x.dtype), x)


def shift_colors(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """GFP-GAN `color_jitter`: add a per-sample RGB offset (B, 3), clip to [0, 1]."""
    return (x + shift[:, :, None, None]).clamp_(0.0, 1.0)


def to_gray(x: torch.Tensor, weights=CV2_GRAY) -> torch.Tensor:
    """Luma as 3 equal channels (cv2.COLOR_RGB2GRAY weights by default)."""
    w = constant(weights, x.device, x.dtype)
    return (x * w[:, None, None]).sum(dim=-3, keepdim=True).expand_as(x).contiguous()


def adjust_brightness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """torchvision adjust_brightness: x * factor, clipped."""
    return (x * factor[:, None, None, None]).clamp(0.0, 1.0)


def adjust_contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """torchvision adjust_contrast: blend with the mean gray level of each image, clipped."""
    mean = to_gray(x, TORCHVISION_GRAY)[:, :1].mean(dim=(-2, -1), keepdim=True)
    f = factor[:, None, None, None]
    return (f * x + (1 - f) * mean).clamp(0.0, 1.0)


def adjust_saturation(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """torchvision adjust_saturation: blend with the gray image, clipped."""
    f = factor[:, None, None, None]
    return (f * x + (1 - f) * to_gray(x, TORCHVISION_GRAY)).clamp(0.0, 1.0)


def adjust_hue(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """torchvision adjust_hue: rotate the HSV hue by factor (a fraction of the circle, in [-0.5, 0.5])."""
    return _kornia_adjust_hue(x, factor * (2 * math.pi)).clamp(0.0, 1.0)


JITTER_OPS = (("brightness", adjust_brightness), ("contrast", adjust_contrast),
              ("saturation", adjust_saturation), ("hue", adjust_hue))  # fmt: skip


def color_jitter_pt(x: torch.Tensor, applied: torch.Tensor, order: torch.Tensor, params: dict, cfg):
    """GFP-GAN `color_jitter_pt`: brightness, contrast, saturation and hue adjustments in a random order per
    sample (order: (B, 4) permutations of JITTER_OPS indices). Each (position, op) pair runs only on the
    samples that have that op at that position. x is updated in place."""
    jittered = torch.nonzero(applied).squeeze(1)
    if not jittered.numel():
        return x
    sub, order = x[jittered], order[jittered]
    for position in range(len(JITTER_OPS)):
        for index, (name, op) in enumerate(JITTER_OPS):
            if getattr(cfg, name) is None:
                continue
            samples = torch.nonzero(order[:, position] == index).squeeze(1)
            if samples.numel():
                sub[samples] = op(sub[samples], params[name][jittered][samples])
    return x.index_copy_(0, jittered, sub)
