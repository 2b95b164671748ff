"""GFP-GAN's facial-component discriminators and the RoI crops they judge (Wang et al., "Towards Real-World
Blind Face Restoration with Generative Facial Prior", CVPR 2021, Sec. 3.3 "Facial Component Loss").

`FacialComponentDiscriminator` is gfpgan/archs/gfpganv1_arch.py's class of that name: VGG-style BasicSR
`ConvLayer`s with the (1, 3, 3, 1) blur (our `ConvLayer`'s default) before each stride-2 conv, one patch logit
map out. Its keys are the BasicSR ones (`conv1.0.weight`, `conv1.1.bias`, `conv2.1.weight`, `conv2.2.bias`, …,
`final_conv.0.weight`, `final_conv.0.bias`: 12 tensors, 1,110,785 elements). BasicSR keeps the blur kernel
out of the state_dict, so the blur buffers here are non-persistent and BasicSR training checkpoints of the
component discriminators (`net_d_left_eye_*.pth` etc., under 'params') match by name.

`crop_boxes` / `component_crops` replace GFP-GAN's `torchvision.ops.roi_align` (gfpgan_model.py
`get_roi_regions`), whose compiled op is unavailable here, with one batched `F.grid_sample`.
"""

import torch
import torch.nn.functional as F
from torch import nn

from facezoo.datamodules.batch import COMPONENTS
from facezoo.models.components.stylegan2 import ConvLayer

# GFP-GAN's discriminated components, rows of a batch's `boxes` (COMPONENTS order); GFP-GAN skips the nose.
GFPGAN_COMPONENTS = ("left_eye", "right_eye", "mouth")


class FacialComponentDiscriminator(nn.Module):
    """conv1 3→64 → conv2 64→128 ↓2 → conv3 128→128 → conv4 128→256 ↓2 → conv5 256→256 → final_conv 256→1
    (3×3 convs, leaky ReLU except `final_conv`). (B, 3, S, S) crops → (B, 1, S/4, S/4) patch logits
    (80 → 20, 120 → 30)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = ConvLayer(3, 64, 3)
        self.conv2 = ConvLayer(64, 128, 3, downsample=True)
        self.conv3 = ConvLayer(128, 128, 3)
        self.conv4 = ConvLayer(128, 256, 3, downsample=True)
        self.conv5 = ConvLayer(256, 256, 3)
        self.final_conv = ConvLayer(256, 1, 3, activate=False)
        for down in (self.conv2, self.conv4):  # a fixed FIR kernel, not in BasicSR's state_dict
            blur = down[0]
            blur.register_buffer("kernel", blur.kernel, persistent=False)

    def forward(
        self, x: torch.Tensor, return_feats: bool = False
    ) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
        """→ (patch logits, [features after conv3, after conv5] if `return_feats` else None); the features
        feed GFP-GAN's component style (Gram) loss."""
        feat3 = self.conv3(self.conv2(self.conv1(x)))
        feat5 = self.conv5(self.conv4(feat3))
        return self.final_conv(feat5), ([feat3, feat5] if return_feats else None)


def crop_boxes(images: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear RoI crops: (B, C, H, W) images, (B, 4) boxes (x1, y1, x2, y2 in pixels, one per image)
    → (B, C, size, size), differentiable w.r.t. the images.

    The semantics of `torchvision.ops.roi_align(images, boxes, size, spatial_scale=1, sampling_ratio=1,
    aligned=False)`: pixel i has its centre at coordinate i; a box narrower than 1 px is widened to 1 px
    (x2 − x1 → max(x2 − x1, 1)); output bin (i, j) takes one bilinear sample at
    x = x1 + (j + 0.5)·(x2 − x1)/size, y = y1 + (i + 0.5)·(y2 − y1)/size. A sample within 1 px outside the
    image takes the nearest edge pixel; further out it is 0 (torchvision's compiled C++/CUDA kernel, which
    GFP-GAN trained with; its pure-Python fallback clamps to the edge there too).
    GFP-GAN calls roi_align with the default sampling_ratio=−1, which averages ceil(box/size)² samples per
    bin: identical for boxes no larger than the crop, a little smoother for larger ones.
    """
    b, _, h, w = images.shape
    if boxes.shape != (b, 4):
        raise ValueError(f"crop_boxes: expected ({b}, 4) boxes for {b} images, got {tuple(boxes.shape)}")
    x1, y1, x2, y2 = boxes.to(images.dtype).unbind(1)
    steps = (torch.arange(size, device=images.device, dtype=images.dtype) + 0.5) / size
    xs = x1[:, None] + steps * (x2 - x1).clamp(min=1)[:, None]  # (B, size) sample columns
    ys = y1[:, None] + steps * (y2 - y1).clamp(min=1)[:, None]  # (B, size) sample rows
    # grid_sample(align_corners=False) reads pixel coordinate p at the normalised position (2p + 1)/W − 1
    gx, gy = (2 * xs + 1) / w - 1, (2 * ys + 1) / h - 1
    grid = torch.stack(torch.broadcast_tensors(gx[:, None, :], gy[:, :, None]), dim=-1)
    crops = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
    inside = ((xs >= -1) & (xs <= w))[:, None, :] & ((ys >= -1) & (ys <= h))[:, :, None]
    return crops * inside[:, None].to(crops.dtype)


def component_crops(
    images: torch.Tensor, boxes: torch.Tensor, out_size: int, eye_size: int = 80, mouth_size: int = 120
) -> dict[str, torch.Tensor]:
    """GFP-GAN's component crops of (B, C, H, W) faces:
    {left_eye, right_eye: (B, C, e, e), mouth: (B, C, m, m)}.

    `boxes` (B, 4, 4): pixel boxes in the batch order left_eye, right_eye, nose, mouth (the nose is unused).
    The crop sizes are GFP-GAN's 80 (eyes) and 120 (mouth) at 512 px, scaled by the face ratio
    out_size/512 (e = round(eye_size·out_size/512)), but never below 8 px, so that tiny test faces (64 px:
    10 and 15) still give crops the discriminator's two halvings can handle.
    """
    if boxes.ndim != 3 or boxes.shape[1:] != (len(COMPONENTS), 4):
        raise ValueError(
            f"component_crops: expected (B, 4, 4) boxes ({', '.join(COMPONENTS)}), got {tuple(boxes.shape)}"
        )
    ratio = out_size / 512
    sizes = {"left_eye": eye_size, "right_eye": eye_size, "mouth": mouth_size}
    return {
        name: crop_boxes(images, boxes[:, COMPONENTS.index(name)], max(8, round(sizes[name] * ratio)))
        for name in GFPGAN_COMPONENTS
    }
