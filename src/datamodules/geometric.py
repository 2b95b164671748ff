"""Batched random affine augmentation: StyleGAN2-ADA's geometric transforms (Karras et al., NeurIPS 2020), as
StyleGANEX's coach uses them to make aligned training faces unaligned (williamyang1991/StyleGANEX,
models/stylegan2/simple_augment.py `random_apply_affine(x, 0.2)`, then the same matrices on the target).

`sample_affine(batch, p)` draws one 3×3 matrix per sample, the product of these transforms, each applied with
probability p per sample (the rotations with 1 − √(1 − p), so that one of the two happens with about p):
1. integer translation, U(−0.125, 0.125) of the image side per axis, rounded to a whole pixel of a `pixels`
   side image;
2. isotropic scale 2^N(0, 0.1²);
3. rotation U(−π/4, π/4);
4. anisotropic scale (s, 1/s), s = 2^N(0, 0.1²);
5. rotation U(−π/4, π/4);
6. fractional translation N(0, 0.125²) of the image side per axis.
The ranges are the official ones (rosinality's port of ADA: scale std 0.1·ln 2 and rotations of ±45°, where
ADA uses 0.2·ln 2 and ±180°). The official port draws ONE translation for both axes (a diagonal shift); as ADA
does, we draw one per axis.

`warp(images, matrices)` resamples a batch with them (bilinear, reflection padding: no black borders, as the
official reflect-pads) on the batch's device, only the samples whose matrix is not the identity. The matrices
live in a frame centred on the image and scaled by half its shorter side, so images of any size and aspect
(an input and its ×4 target) get the same geometric change. The official upsamples ×2 with a wavelet filter
before the warp and downsamples after it (less aliasing); we warp at the image's own resolution.

`similarity(shift, angle, scale)` builds such matrices from given per-sample values (the unaligned evaluation
faces of datamodules/unaligned.py), and `warp_boxes` moves pixel boxes with them.
"""

import math

import torch
import torch.nn.functional as F

TRANSLATE = 0.125  # integer translation range and fractional translation std, fractions of the side
SCALE_STD = 0.1  # log2 std of the isotropic and anisotropic scales
ROTATE = math.pi / 4  # rotation range


def _eye(batch: int, device) -> torch.Tensor:
    return torch.eye(3, device=device).repeat(batch, 1, 1)


def _translate(t: torch.Tensor) -> torch.Tensor:
    """(B, 2) shifts in frame units → (B, 3, 3)."""
    m = _eye(len(t), t.device)
    m[:, :2, 2] = t
    return m


def _scale(sx: torch.Tensor, sy: torch.Tensor) -> torch.Tensor:
    m = _eye(len(sx), sx.device)
    m[:, 0, 0], m[:, 1, 1] = sx, sy
    return m


def _rotate(theta: torch.Tensor) -> torch.Tensor:
    m = _eye(len(theta), theta.device)
    cos, sin = theta.cos(), theta.sin()
    m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1] = cos, -sin, sin, cos
    return m


def sample_affine(batch: int, p: float, pixels: int = 256, device=None) -> torch.Tensor:
    """(B, 3, 3) forward transforms of a square frame [−1, 1]² (see the module docstring), drawn from the
    global RNG; a sample that draws none of them gets the identity. `pixels`: the side whose whole pixels the
    integer translation is rounded to."""
    p_rot = 1 - math.sqrt(1 - p)

    def maybe(transform: torch.Tensor, prob: float) -> torch.Tensor:
        chosen = (torch.rand(batch, device=device) < prob).view(-1, 1, 1)
        return torch.where(chosen, transform, _eye(batch, device))

    shift = (torch.rand(batch, 2, device=device) * 2 - 1) * TRANSLATE
    shift = torch.round(shift * pixels) / pixels
    iso = torch.exp2(torch.randn(batch, device=device) * SCALE_STD)
    pre = (torch.rand(batch, device=device) * 2 - 1) * ROTATE
    aniso = torch.exp2(torch.randn(batch, device=device) * SCALE_STD)
    post = (torch.rand(batch, device=device) * 2 - 1) * ROTATE
    frac = torch.randn(batch, 2, device=device) * TRANSLATE
    steps = [
        (_translate(2 * shift), p),  # a side spans 2 frame units
        (_scale(iso, iso), p),
        (_rotate(pre), p_rot),
        (_scale(aniso, 1 / aniso), p),
        (_rotate(post), p_rot),
        (_translate(2 * frac), p),
    ]
    matrix = _eye(batch, device)
    for transform, prob in steps:
        matrix = maybe(transform, prob) @ matrix
    return matrix


def similarity(shift: torch.Tensor, angle: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """(B, 3, 3) forward transforms about the image centre: isotropic `scale` (B,), then rotation by `angle`
    (B,) radians (y points down: a positive angle turns the image clockwise as seen), then translation by
    `shift` (B, 2) (x, y) in frame units (the shorter side spans 2)."""
    return _translate(shift) @ _rotate(angle) @ _scale(scale, scale)


def warp_boxes(boxes: torch.Tensor, matrices: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(B, N, 4) pixel-index boxes (x1, y1, x2, y2) of (height, width) images moved as `warp(images,
    matrices)` moves the images: the axis-aligned box around the four moved corners (a rotated box grows).
    Moved boxes may reach outside the image; they are not clipped."""
    x1, y1, x2, y2 = boxes.float().unbind(-1)
    corners = torch.stack([torch.stack(c, -1) for c in ((x1, y1), (x2, y1), (x1, y2), (x2, y2))], -2)
    # pixel i's centre is at (2i + 1)/side − 1 of affine_grid's [−1, 1] (align_corners=False), which spans
    # ±side/shorter side of the frame
    sides, short = boxes.new_tensor((width, height), dtype=torch.float32), min(height, width)
    frame = (2 * corners + 1 - sides) / short  # (B, N, 4 corners, 2)
    m = matrices.float().to(boxes.device)
    moved = torch.einsum("bij,bnkj->bnki", m[:, :2, :2], frame) + m[:, None, None, :2, 2]
    pixels = (moved * short + sides - 1) / 2
    return torch.cat((pixels.amin(-2), pixels.amax(-2)), dim=-1).to(boxes.dtype)


def warp(images: torch.Tensor, matrices: torch.Tensor) -> torch.Tensor:
    """`images` (B, C, H, W) moved by the forward transforms `matrices` (B, 3, 3) of `sample_affine`."""
    h, w = images.shape[-2:]
    moved = ~torch.isclose(matrices, _eye(len(matrices), matrices.device)).flatten(1).all(1)
    index = torch.nonzero(moved).squeeze(1)
    if not index.numel():
        return images
    # affine_grid's coordinates span [−1, 1] on each axis; the frame spans ±side/shorter side
    aspect = torch.diag(torch.tensor([w / min(h, w), h / min(h, w), 1.0], device=matrices.device))
    theta = torch.linalg.inv(aspect) @ torch.linalg.inv(matrices[index].float()) @ aspect
    grid = F.affine_grid(theta[:, :2], [index.numel(), images.shape[1], h, w], align_corners=False)
    out = F.grid_sample(
        images[index].float(), grid, mode="bilinear", padding_mode="reflection", align_corners=False
    )
    return images.index_copy(0, index, out.to(images.dtype))
