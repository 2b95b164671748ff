"""DFDNet's facial parts: names, feature scales, dictionary atom sizes and the part boxes (Li et al., "Blind
Face Restoration via Deep Multi-scale Component Dictionaries", ECCV 2020, Sec. 3.1).

Facts from the official code (csxmli2016/DFDNet, models/networks.py `UNetDictFace.__init__` and
test_FaceDict.py `get_part_location`):
- four parts, left eye, right eye, nose, mouth (the batch contract's `COMPONENTS` order), with nominal sizes
  80/80/50/110 px at 512 (`part_sizes`);
- the dictionaries live on the VGG-19 features at 256/128/64/32 px for a 512 input (strides 2, 4, 8, 16) with
  128/256/512/512 channels; a part's atom side at stride s is `part_size // s` (integer floor: 40/40/25/55,
  20/20/12/27, 10/10/6/13, 5/5/3/6);
- a part's box from 68 dlib/iBUG landmarks: left eye = brow 17–21 + eye 36–41, right eye = 22–26 + 42–47,
  nose = 29–35, mouth = 48–67; centre = the group's mean, half = max(largest x/y extent / 2, 16),
  box = (centre − half + 1, centre + half) truncated to integers (`astype(int)`).
For an input of another size the part sizes, and the 16 px minimum half size, scale by image_size / 512; a
network `width` times as wide (ours, for tiny test configs) has `channels(scale, width)` feature channels.
"""

import torch
from torch import Tensor

from facezoo.faces.align import FACE_TEMPLATE_512
from facezoo.losses.perceptual import scaled_width

PARTS = ("left_eye", "right_eye", "nose", "mouth")  # = datamodules.batch.COMPONENTS
SCALES = (256, 128, 64, 32)  # feature resolutions at a 512 input, finest first (strides 2, 4, 8, 16)
CHANNELS = {256: 128, 128: 256, 64: 512, 32: 512}  # VGG-19 relu2_2, relu3_4, relu4_4, conv5_4
PART_SIZES_512 = {"left_eye": 80, "right_eye": 80, "nose": 50, "mouth": 110}
REFERENCE_SIZE = 512  # the size the official sizes and boxes refer to
MIN_HALF_512 = 16  # get_part_location's smallest half box side at 512

LANDMARK_GROUPS = {
    "left_eye": (*range(17, 22), *range(36, 42)),
    "right_eye": (*range(22, 27), *range(42, 48)),
    "nose": tuple(range(29, 36)),
    "mouth": tuple(range(48, 68)),
}


def channels(scale: int, width: float = 1.0) -> int:
    """Channels of the VGG-19 feature (and the atoms) at feature scale `scale` (256/128/64/32) of a VGG
    `width` times as wide as VGG-19 (`VGG19Features(width=...)`): `CHANNELS[scale]` at width 1."""
    return scaled_width(CHANNELS[scale], width)


def stride(scale_index: int) -> int:
    """Pixels per feature cell at scale `scale_index` (0..3): 2, 4, 8, 16."""
    if scale_index not in range(len(SCALES)):
        raise ValueError(f"DFDNet scale index must be 0..{len(SCALES) - 1}, got {scale_index}")
    return 2 ** (scale_index + 1)


def atom_size(part: str, scale_index: int, image_size: int = REFERENCE_SIZE) -> int:
    """Side of `part`'s dictionary atoms at feature scale `scale_index` for `image_size` inputs: the official
    `part_sizes[j] // (512 / f_size)` at 512 (40/40/25/55 at 256 … 5/5/3/6 at 32), the part size scaled by
    image_size / 512 otherwise (floored, at least 1)."""
    if part not in PART_SIZES_512:
        raise ValueError(f"DFDNet part must be one of {PARTS}, got {part!r}")
    return max(1, PART_SIZES_512[part] * image_size // (REFERENCE_SIZE * stride(scale_index)))


def boxes_from_landmarks(landmarks: Tensor, image_size: int = REFERENCE_SIZE) -> Tensor:
    """(B, 68, 2) (x, y) landmarks of `image_size` faces → (B, 4, 4) boxes (x1, y1, x2, y2) in `PARTS` order,
    as the official `get_part_location` builds them (its minimum half size 16 scaled by image_size / 512)."""
    if landmarks.ndim != 3 or landmarks.shape[1:] != (68, 2):
        raise ValueError(f"boxes_from_landmarks: expected (B, 68, 2) landmarks, got {tuple(landmarks.shape)}")
    points = landmarks.double()
    boxes = []
    for part in PARTS:
        group = points[:, list(LANDMARK_GROUPS[part])]  # (B, n, 2)
        centre = group.mean(dim=1)
        extent = (group.amax(dim=1) - group.amin(dim=1)).amax(dim=1)  # the larger of the x and y extents
        half = (extent / 2).clamp(min=MIN_HALF_512 * image_size / REFERENCE_SIZE)[:, None]
        boxes.append(torch.cat((centre - half + 1, centre + half), dim=1).trunc())  # numpy astype(int)
    return torch.stack(boxes, dim=1).float()


def template_boxes(batch: int, image_size: int = REFERENCE_SIZE) -> Tensor:
    """(batch, 4, 4) canonical boxes for faces aligned to facexlib's 512-px five-point FFHQ template
    (`faces.align.FACE_TEMPLATE_512`): eyes centred on the template's eye centres, the nose on its nose tip,
    the mouth between its corners; half side = half the part's official nominal size (80/80/50/110 at 512),
    boxes built as `get_part_location` builds them, (centre − half + 1, centre + half), rounded. Template
    centres with the official part sizes are our choice: the official code has no template boxes (it needs
    landmarks), and its eye boxes, centred on brow and eye together, sit a little higher."""
    left, right, nose, corner_l, corner_r = torch.tensor(FACE_TEMPLATE_512, dtype=torch.float64)
    centres = torch.stack((left, right, nose, (corner_l + corner_r) / 2)) * (image_size / REFERENCE_SIZE)
    half = torch.tensor([PART_SIZES_512[p] for p in PARTS], dtype=torch.float64)[:, None] / 2
    half = half * (image_size / REFERENCE_SIZE)
    boxes = torch.cat((centres - half + 1, centres + half), dim=1).round()
    return boxes.float().expand(batch, -1, -1).clone()
