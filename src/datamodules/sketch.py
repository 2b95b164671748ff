"""Pencil sketches from photos, so a user with photos only can train sketch-to-face: the XDoG edge extractor
(Winnemöller, Kyprianidis, Olsen, "XDoG: an eXtended difference-of-Gaussians compendium including advanced
image stylization", Computers & Graphics 2012).

On the luminance L in [0, 1] (ITU-R 601): the difference of Gaussians D = G_sigma * L - tau * G_{k sigma} * L
goes through the soft threshold T(u) = 1 if u >= epsilon else 1 + tanh(phi (u - epsilon)),
which is white on flat areas and dark on the dark side of edges. The result is returned as line strength
1 - T, the polarity of the synthetic renderer's `sketch` (lines 1 on a background of 0). StyleGANEX's own
sketches (scripts/generate_sketch_data.py, data/234_sketch.jpg) are dark lines on white, i.e. 1 - this.
"""

import math

import kornia
import torch
import torch.nn.functional as F
from torch import Tensor

from facezoo.utils.errors import DataError


def pencil_sketch(images: Tensor, sigma: float = 1.0, k: float = 1.6, tau: float = 0.98,
                  epsilon: float = -0.01, phi: float = 100.0) -> Tensor:
    """RGB images (B, 3, H, W) in [-1, 1] -> XDoG line strength (B, 1, H, W) in [0, 1], lines 1.

    sigma: the finer Gaussian's standard deviation in pixels; k: ratio of the coarser one; tau: weight of the
    coarser Gaussian (below 1 keeps flat areas line-free); epsilon: threshold on D under which lines start;
    phi: steepness of the soft threshold. Deterministic and per-image: batching does not change a result.
    """
    if images.dim() != 4 or images.shape[1] != 3 or not images.is_floating_point():
        raise DataError(f"pencil_sketch: expected float RGB images (B, 3, H, W), got {tuple(images.shape)} "
                        f"{images.dtype}")
    luma = kornia.color.rgb_to_grayscale((images + 1.0) / 2.0)
    fine = _blur(luma, sigma)
    coarse = _blur(luma, k * sigma)
    d = fine - tau * coarse
    t = torch.where(d >= epsilon, torch.ones_like(d), 1.0 + torch.tanh(phi * (d - epsilon)))
    return (1.0 - t).clamp(0, 1)


def _blur(x: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian (kornia's kernel, radius 3 sigma, replicated borders) as weighted sums of shifted
    slices: elementwise per sample, so a batch gives bit-identical results to its images one by one."""
    r = math.ceil(3 * sigma)
    weights = kornia.filters.get_gaussian_kernel1d(2 * r + 1, sigma).flatten().tolist()
    h, w = x.shape[-2:]
    x = F.pad(x, (r, r, 0, 0), mode="replicate")
    x = sum(wt * x[..., i:i + w] for i, wt in enumerate(weights))
    x = F.pad(x, (0, 0, r, r), mode="replicate")
    return sum(wt * x[..., i:i + h, :] for i, wt in enumerate(weights))
