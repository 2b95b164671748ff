"""Downsample and resize-back stages: per-sample low-resolution sizes on a common canvas, resampled by
``grid_sample`` with OpenCV's pixel-centre mapping so bilinear / bicubic match ``cv2.resize`` (no antialias).

Each sample's LR image sits at the top-left corner of a canvas as large as the largest LR image (where a JPEG
encoder puts its 8x8 block grid) and its last row and column are replicated over the rest of the canvas (as
libjpeg pads partial blocks)."""

import torch
import torch.nn.functional as F


def lr_sizes(height: int, width: int, scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """GFP-GAN's low-resolution size (int(h // s), int(w // s)), at least 1 pixel."""
    scale = scale.double()
    return (height / scale).floor().long().clamp(min=1), (width / scale).floor().long().clamp(min=1)


def _axis_coords(n_out: int, valid: torch.Tensor, src: torch.Tensor, n_in: int) -> torch.Tensor:
    """(B, n_out) grid_sample coordinates along one axis.

    Output pixel j (clamped to valid - 1, which replicates the last valid pixel) reads the source pixel
    ``(j + 0.5) * src / valid - 0.5`` (OpenCV's mapping from a ``src``-pixel image to a ``valid``-pixel one),
    normalised for an input tensor of n_in pixels (align_corners=False)."""
    j = torch.arange(n_out, device=valid.device, dtype=torch.float64)
    j = torch.minimum(j[None], (valid - 1).double()[:, None])
    pos = (j + 0.5) * (src.double() / valid.double())[:, None] - 0.5
    return ((2.0 * pos + 1.0) / n_in - 1.0).float()


def _resample(x, out_hw, valid_hw, src_hw, mode: str) -> torch.Tensor:
    gy = _axis_coords(out_hw[0], valid_hw[0], src_hw[0], x.shape[-2])
    gx = _axis_coords(out_hw[1], valid_hw[1], src_hw[1], x.shape[-1])
    grid = torch.stack(torch.broadcast_tensors(gx[:, None, :], gy[:, :, None]), dim=-1)
    return F.grid_sample(x, grid, mode=mode, padding_mode="border", align_corners=False)


def resize_to_canvas(x: torch.Tensor, lr_h: torch.Tensor, lr_w: torch.Tensor, mode: str) -> torch.Tensor:
    """Resize sample b to (lr_h[b], lr_w[b]) like cv2.resize (no antialias), at the top-left of a common
    (max lr_h, max lr_w) canvas whose remainder replicates the sample's last row / column."""
    height, width = x.shape[-2:]
    canvas_hw = (int(lr_h.max()), int(lr_w.max()))
    full = (torch.full_like(lr_h, height), torch.full_like(lr_w, width))
    return _resample(x, canvas_hw, (lr_h, lr_w), full, mode)


def resize_from_canvas(
    canvas: torch.Tensor, lr_h: torch.Tensor, lr_w: torch.Tensor, height: int, width: int, mode: str
) -> torch.Tensor:
    """Resize each sample's (lr_h, lr_w) top-left region of the canvas to (height, width) like cv2.resize.

    Exact replicate-border semantics need the canvas to replicate each sample's edge (`replicate_outside`)."""
    full = (torch.full_like(lr_h, height), torch.full_like(lr_w, width))
    return _resample(canvas, (height, width), full, (lr_h, lr_w), mode)


def replicate_outside(canvas: torch.Tensor, lr_h: torch.Tensor, lr_w: torch.Tensor) -> torch.Tensor:
    """Overwrite each sample's canvas outside its (lr_h, lr_w) region with its last row / column."""
    b, c, h, w = canvas.shape
    rows = torch.minimum(torch.arange(h, device=canvas.device)[None], lr_h[:, None] - 1)
    cols = torch.minimum(torch.arange(w, device=canvas.device)[None], lr_w[:, None] - 1)
    index = (rows[:, :, None] * w + cols[:, None, :]).view(b, 1, h * w).expand(b, c, h * w)
    return canvas.reshape(b, c, h * w).gather(2, index).view(b, c, h, w)  # one gather for rows and columns
