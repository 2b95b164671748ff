"""The 19-class CelebAMask-HQ face-parsing convention of StyleGANEX's mask-to-face input, and the renderer's
7 labels mapped onto it.

Order: the BiSeNet face parser (zllrunning/face-parsing.PyTorch, prepropess_data.py: the `atts` list numbered
from 1 over background 0) whose weights StyleGANEX ships as faceparsing.pth. CelebAMask-HQ's own face_parsing
code numbers the same 19 names in another order (2 nose, 3 eye_g, ...); that order is not the one used here.
Sides: `l_` is the person's left, i.e. the image's right half. Checked on StyleGANEX's example mask
data/ILip77SbmOE_mask.png: l_brow, l_eye and l_ear (2, 4, 7) lie right of r_brow, r_eye, r_ear (3, 5, 8).
Encoding: StyleGANEX one-hot encodes the label map into 19 float channels of 0 / 1, no rescaling
(image_translation.py: F.one_hot(x, num_classes=19).permute(0, 3, 1, 2).float()).
"""

import torch
import torch.nn.functional as F
from torch import Tensor

from facezoo.datamodules.synthetic.renderer import BROWS, EYES, HAIR, LIPS, NOSE, PARSING_LABELS, SKIN
from facezoo.utils.errors import DataError

CELEBAMASK_LABELS = ("background", "skin", "l_brow", "r_brow", "l_eye", "r_eye", "eye_g", "l_ear", "r_ear",
                     "ear_r", "nose", "mouth", "u_lip", "l_lip", "neck", "neck_l", "cloth", "hair", "hat")
# Drawn by the renderer but labelled skin (ears, neck) or background (clothes), or never drawn (glasses,
# earrings, necklace, hat, an open mouth): to_celebamask never outputs these.
NOT_RENDERED = ("eye_g", "l_ear", "r_ear", "ear_r", "mouth", "neck", "neck_l", "cloth", "hat")
# The renderer's lips are one label; its upper lip is on average ~0.4 of their height (lip_up vs lip_low).
UPPER_LIP_SHARE = 0.4

_ID = {name: i for i, name in enumerate(CELEBAMASK_LABELS)}


def to_celebamask(parsing: Tensor) -> Tensor:
    """Renderer parsing (B, H, W) int64 over PARSING_LABELS -> (B, H, W) int64 CelebAMask-HQ labels.

    Brows and eyes split at the face's vertical midline, the mean column of the eye and brow pixels (the
    renderer mirrors them about the face centre; the image centre when a face has none): right of it is the
    person's left. Lips split per column at UPPER_LIP_SHARE of their height: above is u_lip, below l_lip.
    """
    if parsing.dim() != 3 or parsing.dtype != torch.int64:
        raise DataError(f"to_celebamask: expected a (B, H, W) int64 parsing map, got {tuple(parsing.shape)} "
                        f"{parsing.dtype}")
    if parsing.numel() and (parsing.min() < 0 or parsing.max() >= len(PARSING_LABELS)):
        raise DataError(f"to_celebamask: parsing labels must be in [0, {len(PARSING_LABELS)}), got "
                        f"[{int(parsing.min())}, {int(parsing.max())}]")
    _, h, w = parsing.shape
    cols = torch.arange(w, device=parsing.device, dtype=torch.float32).view(1, 1, w)
    rows = torch.arange(h, device=parsing.device).view(1, h, 1)
    pair = ((parsing == EYES) | (parsing == BROWS)).float()
    count = pair.sum((1, 2))
    centre = torch.where(count > 0, (pair * cols).sum((1, 2)) / count.clamp(min=1), (w - 1) / 2.0)
    persons_left = cols > centre.view(-1, 1, 1)
    lips = parsing == LIPS
    top = torch.where(lips, rows, h).amin(1, keepdim=True)
    bottom = torch.where(lips, rows, -1).amax(1, keepdim=True)
    upper = rows < top + UPPER_LIP_SHARE * (bottom - top + 1)

    out = torch.zeros_like(parsing)
    out[parsing == SKIN] = _ID["skin"]
    out[parsing == NOSE] = _ID["nose"]
    out[parsing == HAIR] = _ID["hair"]
    for label, left, right in ((BROWS, "l_brow", "r_brow"), (EYES, "l_eye", "r_eye")):
        side = torch.where(persons_left, _ID[left], _ID[right])
        out = torch.where(parsing == label, side, out)
    return torch.where(lips, torch.where(upper, _ID["u_lip"], _ID["l_lip"]), out)


def one_hot(labels: Tensor, num_classes: int = len(CELEBAMASK_LABELS)) -> Tensor:
    """(B, H, W) int64 labels -> (B, num_classes, H, W) float32 one-hot of 0 / 1: StyleGANEX's mask input."""
    if labels.dim() != 3 or labels.dtype != torch.int64:
        raise DataError(f"one_hot: expected (B, H, W) int64 labels, got {tuple(labels.shape)} {labels.dtype}")
    if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataError(f"one_hot: labels must be in [0, {num_classes}), got "
                        f"[{int(labels.min())}, {int(labels.max())}]")
    return F.one_hot(labels, num_classes).permute(0, 3, 1, 2).float()
