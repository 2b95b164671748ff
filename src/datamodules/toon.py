"""A cartoon domain made from photos, batched on the device: the toon faces that a StyleGAN2 is fine-tuned on
(G′ of StyleGANEX video toonification, experiment=stylegan2_toon_finetune) and the targets y of the toonify
task's on-the-fly pairs (x, y = cartoon(x)) on a CPU, where the official trains on folders of real faces and
their Toonify renderings.

The classic cartoon filter (Winnemöller, Olsen, Gooch, "Real-time video abstraction", SIGGRAPH 2006; OpenCV's
`stylization` is of the same family): edge-preserving smoothing by `iterations` bilateral filters (window
(2·radius + 1)², spatial σ `sigma_space` pixels, range σ `sigma_color` on RGB in [0, 1]), colour quantisation
(the luma, Rec. 601, rounded to `levels` values, the chroma kept: flat shading without hue shifts), then dark
outlines: the result times 1 − the XDoG line strength of the input (datamodules/sketch.py `pencil_sketch`, σ
`edge_sigma`). Every operation is elementwise on shifted slices, so a batch gives
bit-identical results to its images one by one, on any device, deterministically.
"""

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from facezoo.datamodules.sketch import pencil_sketch
from facezoo.utils.errors import DataError

LUMA = (0.299, 0.587, 0.114)  # Rec. 601


def bilateral(images: Tensor, radius: int = 2, sigma_space: float = 2.0, sigma_color: float = 0.1) -> Tensor:
    """One bilateral filter of RGB images (B, 3, H, W) in [0, 1] (replicated borders)."""
    h, w = images.shape[-2:]
    padded = F.pad(images, (radius,) * 4, mode="replicate")
    total, weight = torch.zeros_like(images), torch.zeros_like(images[:, :1])
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            near = padded[..., radius + dy : radius + dy + h, radius + dx : radius + dx + w]
            distance = (near - images).square().sum(1, keepdim=True)
            wt = math.exp(-(dy * dy + dx * dx) / (2 * sigma_space**2)) * torch.exp(
                -distance / (2 * sigma_color**2)
            )
            total, weight = total + wt * near, weight + wt
    return total / weight


def cartoon(images: Tensor, iterations: int = 2, radius: int = 2, sigma_space: float = 2.0,
            sigma_color: float = 0.1, levels: int = 8, edge_sigma: float = 1.0) -> Tensor:
    """RGB faces (B, 3, H, W) in [-1, 1] → their cartoon version, the same shape and range (see the module
    docstring)."""
    if images.dim() != 4 or images.shape[1] != 3 or not images.is_floating_point():
        raise DataError(f"cartoon: expected float RGB images (B, 3, H, W), got {tuple(images.shape)} "
                        f"{images.dtype}")
    x = ((images + 1) / 2).clamp(0, 1)
    for _ in range(iterations):
        x = bilateral(x, radius, sigma_space, sigma_color)
    luma = torch.einsum("bchw,c->bhw", x, x.new_tensor(LUMA)).unsqueeze(1)
    flat = (x + torch.round(luma * (levels - 1)) / (levels - 1) - luma).clamp(0, 1)
    lines = pencil_sketch(images.clamp(-1, 1), sigma=edge_sigma)
    return flat * (1 - lines) * 2 - 1
