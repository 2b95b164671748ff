"""Paste restored face crops back into the photo: feathered convex masks, optional colour matching, batched.

The mask of a face is a convex polygon (by default the hull of the jaw and brow landmarks 0-26) with a soft
inner edge: 0 on and outside the polygon, rising with the depth d inside it as smoothstep(d / feather) to 1,
where feather is a fraction of the inter-ocular distance. For a convex polygon d is the smallest distance to
its edge lines, so the mask is computed in closed form at every output pixel (no rasterising, no warp of a
binary mask): it is continuous with a bounded slope, hence no seam. This plays the part of facexlib's
erode-then-Gaussian-blur of the warped square (`paste_faces_to_input_image`), with the edge width tied to the
eyes instead of the square's area.

Everything per pixel is batched over faces; only the final blend of each face's patch into the photo is a
loop, in the given face order (a later face lies on top of an earlier one).
"""

import math

import torch
import torch.nn.functional as F
from kornia.color import lab_to_rgb, rgb_to_lab
from kornia.filters import gaussian_blur2d
from kornia.geometry.transform import warp_affine
from torch import Tensor

from facezoo.faces.align import apply_affine, invert_affine, warp_faces
from facezoo.utils.errors import ConfigError

HULL_LANDMARKS = slice(0, 27)  # jaw 0-16 and brows 17-26 of the 68
REGIONS = ("hull", "crop")
COLOUR_SCALE_RANGE = (0.5, 2.0)  # clamp on the std ratio of colour matching


def _hull_edges(polygons: Tensor) -> tuple[Tensor, Tensor]:
    """(N, P, 2) points -> the edge lines of each convex hull as inward unit normals (N, K, 2) and offsets
    (N, K), depth(x) = normal·x - offset. A pair of points is a hull edge when every point lies on one side of
    its line; faces with fewer than K edges get empty slots (normal 0, offset -inf: depth +inf)."""
    centre = polygons.mean(dim=1, keepdim=True)  # work around the centre, for float32 precision
    points = polygons - centre
    start, end = points[:, :, None], points[:, None]  # (N, P, 1, 2), (N, 1, P, 2)
    direction = end - start
    length = direction.norm(dim=-1, keepdim=True)
    normal = torch.stack([-direction[..., 1], direction[..., 0]], dim=-1) / length.clamp_min(1e-12)
    offset = (normal * start).sum(dim=-1)  # (N, P, P)
    side = torch.einsum("nijc,nkc->nijk", normal, points) - offset[..., None]  # (N, P, P, P)
    valid = (length[..., 0] > 1e-6) & (side >= -1e-3).all(dim=-1)
    offset = offset + (normal * centre[:, :, None]).sum(dim=-1)  # back to the polygons' frame
    count = int(valid.flatten(1).sum(dim=1).max().item()) if valid.numel() else 0
    order = valid.flatten(1).float().argsort(dim=1, descending=True, stable=True)[:, :count]
    keep = valid.flatten(1).gather(1, order)
    normal = normal.flatten(1, 2).gather(1, order[..., None].expand(-1, -1, 2)) * keep[..., None]
    offset = offset.flatten(1).gather(1, order).masked_fill(~keep, -math.inf)
    return normal, offset


def polygon_mask(
    polygons: Tensor, feather: Tensor, height: int, width: int, origins: Tensor | None = None
) -> Tensor:
    """Soft masks of convex hulls: polygons (N, P, 2), feather widths (N,) in pixels -> (N, 1, height, width).

    Pixel (i, j) of mask n sits at origins[n] + (j, i) (origins (N, 2) in the polygons' frame, default 0).
    The value is smoothstep(clamp(depth / feather, 0, 1)), depth being the distance inside the hull (0 on and
    outside it); feather 0 gives a hard 0/1 mask.
    """
    normal, offset = _hull_edges(polygons)
    if origins is not None:
        offset = offset - (normal * origins[:, None]).sum(dim=-1)
    xs = torch.arange(width, device=polygons.device, dtype=polygons.dtype)
    ys = torch.arange(height, device=polygons.device, dtype=polygons.dtype)
    depth = torch.full(
        (polygons.shape[0], height, width), math.inf, device=polygons.device, dtype=polygons.dtype
    )
    for k in range(normal.shape[1]):  # the hull edges, each a plane over all faces and pixels
        nx, ny, c = (t[:, k, None, None] for t in (normal[..., 0], normal[..., 1], offset))
        depth = torch.minimum(depth, nx * xs + ny * ys[:, None] - c)
    depth = depth.nan_to_num(posinf=0.0)  # no edge at all: the points coincide, the hull is empty
    t = (depth / feather.clamp_min(1e-6)[:, None, None]).clamp(0.0, 1.0)
    return (t * t * (3.0 - 2.0 * t)).unsqueeze(1)


def match_colour(restored: Tensor, reference: Tensor, weights: Tensor) -> Tensor:
    """Move each restored face's colours to the reference's: per-channel mean and std in CIE Lab, weighted by
    `weights` (N, 1, s, s), the std ratio clamped to COLOUR_SCALE_RANGE. Images (N, 3, s, s) in [-1, 1]."""
    total = weights.sum(dim=(2, 3), keepdim=True).clamp_min(1e-6)

    def stats(lab: Tensor) -> tuple[Tensor, Tensor]:
        mean = (lab * weights).sum(dim=(2, 3), keepdim=True) / total
        var = ((lab - mean).square() * weights).sum(dim=(2, 3), keepdim=True) / total
        return mean, var.sqrt()

    lab = rgb_to_lab(restored.add(1.0).div(2.0).clamp(0.0, 1.0))
    mean, std = stats(lab)
    target_mean, target_std = stats(rgb_to_lab(reference.add(1.0).div(2.0).clamp(0.0, 1.0)))
    scale = (target_std / std.clamp_min(1e-6)).clamp(*COLOUR_SCALE_RANGE)
    return lab_to_rgb((lab - mean) * scale + target_mean).mul(2.0).sub(1.0)


def _antialias(restored: Tensor, shrink: Tensor) -> Tensor:
    """Gaussian pre-filter of crops about to shrink by `shrink` (N,) (skimage's sigma = (shrink - 1) / 2)."""
    sigma = ((shrink - 1.0) / 2.0).clamp_min(0.0)
    largest = float(sigma.max())
    if largest < 0.25:
        return restored
    size = 2 * math.ceil(3.0 * largest) + 1
    return gaussian_blur2d(restored, size, sigma.clamp_min(1e-3)[:, None].expand(-1, 2))


def paste_back(
    image: Tensor,
    restored: Tensor,
    matrices: Tensor,
    landmarks68: Tensor,
    upscale: int = 1,
    color_match: bool = False,
    region: str = "hull",
    feather: float = 0.3,
) -> Tensor:
    """Blend restored crops into the photo: image (3, H, W) and restored (N, 3, s, s) in [-1, 1], the
    image-to-crop `matrices` (N, 2, 3) that cut the crops, `landmarks68` (N, 68, 2) in image pixels
    -> (3, H·upscale, W·upscale).

    region: "hull" (the convex hull of landmarks 0-26) or "crop" (the whole crop square, as facexlib);
    feather: the width of the mask's soft edge as a fraction of the inter-ocular distance (0: hard edge).
    color_match: match each face's Lab mean/std to the photo's face under the same mask first.
    The background is upscaled bicubically; crops that shrink on the way back are low-pass filtered first.
    """
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"paste_back: expected image (3, H, W), got {tuple(image.shape)}")
    count = restored.shape[0]
    if restored.ndim != 4 or restored.shape[1] != 3 or restored.shape[2] != restored.shape[3]:
        raise ValueError(f"paste_back: expected restored (N, 3, s, s), got {tuple(restored.shape)}")
    if matrices.shape != (count, 2, 3) or landmarks68.shape != (count, 68, 2):
        raise ValueError(
            f"paste_back: expected matrices ({count}, 2, 3) and landmarks68 ({count}, 68, 2), "
            f"got {tuple(matrices.shape)} and {tuple(landmarks68.shape)}"
        )
    if isinstance(upscale, bool) or not isinstance(upscale, int) or upscale < 1:
        raise ConfigError(f"upscale: expected a whole number >= 1, got {upscale!r}")
    if region not in REGIONS:
        raise ConfigError(f"region: expected one of {', '.join(REGIONS)}, got {region!r}")
    if not feather >= 0:
        raise ConfigError(f"feather: expected a fraction of the eye distance >= 0, got {feather!r}")

    height, width = image.shape[1] * upscale, image.shape[2] * upscale
    if upscale == 1:
        output = image.clone()
    else:
        output = F.interpolate(image[None], scale_factor=upscale, mode="bicubic", antialias=True)[0]
        output = output.clamp(-1.0, 1.0)  # bicubic overshoots
    if count == 0:
        return output

    size = restored.shape[-1]
    matrices = matrices.to(image)
    landmarks = apply_affine(matrices, landmarks68.to(image))  # crop pixels
    if region == "hull":
        polygons = landmarks[:, HULL_LANDMARKS]
    else:
        edge = torch.tensor([-0.5, size - 0.5], device=image.device, dtype=image.dtype)
        polygons = torch.cartesian_prod(edge, edge).expand(count, -1, -1)  # the corners
    eye_distance = (landmarks[:, 42:48].mean(dim=1) - landmarks[:, 36:42].mean(dim=1)).norm(dim=-1)
    crop_feather = feather * eye_distance

    if color_match:
        weights = polygon_mask(polygons, crop_feather, size, size)
        restored = match_colour(restored, warp_faces(image[None], matrices, size), weights)

    scale = matrices[:, :, :2].det().abs().sqrt()  # crop pixels per image pixel
    restored = _antialias(restored, scale / upscale)

    to_output = invert_affine(matrices, upscale)
    polygons = apply_affine(to_output, polygons)
    lows = polygons.amin(dim=1).floor().clamp_min(0)
    highs = (polygons.amax(dim=1).ceil() + 1).minimum(torch.tensor([width, height]).to(polygons))
    boxes = torch.cat([lows, highs], dim=1).long()  # (N, 4) x0, y0, x1, y1 in the output
    patch_width, patch_height = (boxes[:, 2:] - boxes[:, :2]).amax(dim=0).clamp_min(1).tolist()
    to_patch = torch.cat([to_output[:, :, :2], to_output[:, :, 2:] - lows[..., None]], dim=-1)
    patches = warp_affine(
        restored,
        to_patch,
        (patch_height, patch_width),
        mode="bilinear",
        padding_mode="zeros",
        align_corners=True,
    )
    masks = polygon_mask(polygons, crop_feather * upscale / scale, patch_height, patch_width, origins=lows)

    for (x0, y0, x1, y1), patch, mask in zip(boxes.tolist(), patches, masks, strict=True):
        if x1 <= x0 or y1 <= y0:  # the face lies outside the photo
            continue
        window = output[:, y0:y1, x0:x1]
        window.lerp_(patch[:, : y1 - y0, : x1 - x0], mask[:, : y1 - y0, : x1 - x0])
    return output
