"""Where a batch's facial-component boxes (left eye, right eye, nose, mouth) come from.

The boxes' format and coordinates are the batch contract's (`batch.py`: (x1, y1, x2, y2) in pixel-index
coordinates, rows in `COMPONENTS` order), GFP-GAN's convention, whose boxes are built as
(centre − half_len + 1, centre + half_len) (`centre_boxes`). Sources:
- `load_gfpgan_landmarks`: GFP-GAN's FFHQ_eye_mouth_landmarks_512.pth, eyes and mouth of every FFHQ image at
  512 px (scripts/parse_landmark.py); the nose, absent there, is the canonical one;
- `load_boxes_json`: the boxes.json that the synthetic writers put beside the images (synthetic/writers.py);
- `canonical_boxes`: one set for every aligned face, from the five-point template faces are aligned to.
`ComponentBoxes` answers one image's boxes in the pixels of that image as loaded (resized or not), and
`hflip_boxes` follows a horizontal flip of the images.
"""

import json
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from facezoo.datamodules.batch import COMPONENTS, scale_boxes
from facezoo.utils.errors import DataError

EYE_ENLARGE = 1.4  # official `eye_enlarge_ratio` (options/train_gfpgan_v1.yml)
BOXES_JSON = "boxes.json"
GFPGAN_FRAME = 512  # GFP-GAN's landmarks and facexlib's template are at 512 px

# facexlib FaceRestoreHelper.face_template at 512 px (what GFPGANer aligns faces to): left eye, right eye,
# nose, left and right mouth corners, (x, y)
_TEMPLATE_512 = ((192.98138, 239.94708), (318.90277, 240.1936), (256.63416, 314.01935),
                 (201.26117, 371.41043), (313.08905, 371.15118))
# Half sizes of the canonical eye and nose boxes at 512 px: our choice, not from the official code. The eye's
# 24 is about half an FFHQ eye's width, what GFP-GAN's parse_landmark.py stores as an eye's half_len (before
# the ×1.4 enlargement); the nose has no official box. The mouth's half size is half the corner distance,
# as parse_landmark.py's half_len of the mouth points is half the mouth's width.
_EYE_HALF_512, _NOSE_HALF_512 = 24.0, 32.0
# row order after a horizontal flip: the image-left eye becomes the image-right one and vice versa
_SWAPPED = {"left_eye": "right_eye", "right_eye": "left_eye"}
_MIRRORED_ROWS = [COMPONENTS.index(_SWAPPED.get(c, c)) for c in COMPONENTS]
# parse_landmark.py saved numpy scalars (np.float64 from np.mean): torch.load(weights_only=True) may rebuild
# those (numpy's scalar reconstructor under its numpy 1 and 2 names, and the dtypes), nothing else
_SCALAR = np.float64(0).__reduce__()[0]
_NUMPY_SCALARS = [np.dtype, _SCALAR, (_SCALAR, "numpy.core.multiarray.scalar"),
                  *(type(np.dtype(code)) for code in ("f8", "f4", "i8", "i4"))]


def centre_boxes(centres: Tensor, half: Tensor) -> Tensor:
    """(..., 2) centres, (...) half lengths -> (..., 4) boxes (c − h + 1, c + h), as GFP-GAN builds them."""
    half = half.unsqueeze(-1)
    return torch.cat((centres - half + 1, centres + half), dim=-1)


def canonical_boxes(size: int, eye_enlarge: float = EYE_ENLARGE) -> Tensor:
    """(4, 4) boxes in COMPONENTS order for a face aligned to facexlib's five-point template, at `size` px.

    Eyes: half size 24 (at 512) × `eye_enlarge` like GFP-GAN's eyes; nose: 32; mouth: half the distance
    between the mouth corners, centred between them. The half sizes are our choice (see `_EYE_HALF_512`)."""
    left, right, nose, corner_l, corner_r = torch.tensor(_TEMPLATE_512, dtype=torch.float64)
    centres = torch.stack((left, right, nose, (corner_l + corner_r) / 2))
    eye = _EYE_HALF_512 * eye_enlarge
    mouth = float((corner_r - corner_l).norm() / 2)
    half = torch.tensor((eye, eye, _NOSE_HALF_512, mouth), dtype=torch.float64)
    return scale_boxes(centre_boxes(centres, half), size / GFPGAN_FRAME).float()


def landmark_key(name: str) -> str:
    """GFP-GAN's landmark key for an image name: FFHQ stems ('00042', 5 digits) and the file's own
    '{idx:08d}' keys both become '00000042'; other names stay as they are."""
    return f"{int(name):08d}" if name.isdigit() else name


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{err.__class__.__name__}: {text[0] if text else ''}"


def load_gfpgan_landmarks(path, eye_enlarge: float = EYE_ENLARGE) -> dict[str, Tensor]:
    """Read GFP-GAN's FFHQ_eye_mouth_landmarks_512.pth: '{idx:08d}' -> {'left_eye': [cx, cy, half_len],
    'right_eye': [...], 'mouth': [...]} at 512 px. Returns landmark_key -> (4, 4) float32 boxes at 512 px in
    COMPONENTS order: eyes and mouth as `get_component_coordinates` builds them (the eyes' half_len ×
    `eye_enlarge`), the nose from `canonical_boxes(512)`. A missing, unreadable or malformed file raises
    DataError naming it."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: GFP-GAN landmarks file not found")
    try:
        with torch.serialization.safe_globals(_NUMPY_SCALARS):
            data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch.load raises many types (UnpicklingError, RuntimeError, EOFError, ...)
        raise DataError(f"{path}: not a readable GFP-GAN landmarks file ({_first_line(err)})") from None
    expected = "{'00000000': {'left_eye': [cx, cy, half_len], 'right_eye': [...], 'mouth': [...]}, ...}"
    if not isinstance(data, Mapping) or not data:
        raise DataError(f"{path}: expected GFP-GAN's landmarks dict {expected}, found {type(data).__name__}")
    keys, rows = [], []
    for key, parts in data.items():
        try:
            rows.append([[float(v) for v in parts[p]] for p in ("left_eye", "right_eye", "mouth")])
        except (KeyError, TypeError, ValueError) as err:
            raise DataError(f"{path}: entry {key!r} is not like {expected} ({_first_line(err)})") from None
        if any(len(r) != 3 for r in rows[-1]):
            raise DataError(f"{path}: entry {key!r} is not like {expected} (expected 3 numbers per part)")
        keys.append(landmark_key(str(key)))
    values = torch.tensor(rows, dtype=torch.float64)  # (N, 3 parts, [cx, cy, half_len])
    half = values[..., 2] * values.new_tensor((eye_enlarge, eye_enlarge, 1.0))
    eyes_mouth = centre_boxes(values[..., :2], half).float()
    nose = canonical_boxes(GFPGAN_FRAME)[COMPONENTS.index("nose")].expand(len(keys), 1, 4)
    boxes = torch.cat((eyes_mouth[:, :2], nose, eyes_mouth[:, 2:]), dim=1)
    return dict(zip(keys, boxes, strict=True))


def load_boxes_json(folder) -> dict[str, Tensor] | None:
    """`folder/boxes.json` of the synthetic writers (name -> 4 boxes in COMPONENTS order), or None if absent.

    The file holds continuous coordinates in the image's own pixels (pixel i spans [i, i + 1]: the renderer's
    pixel centres are at i + 0.5, synthetic/canvas.py `pixel_grid`); they are returned in pixel-index
    coordinates (− 0.5), as (4, 4) float32 tensors."""
    path = Path(folder) / BOXES_JSON
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise DataError(f"{path}: not a readable JSON file ({_first_line(err)})") from None
    if not isinstance(data, dict):
        found = type(data).__name__
        raise DataError(f"{path}: expected {{image name: 4 boxes [x1, y1, x2, y2]}}, found {found}")
    out = {}
    for name, boxes in data.items():
        try:
            out[name] = torch.tensor(boxes, dtype=torch.float32) - 0.5
        except (TypeError, ValueError) as err:
            raise DataError(f"{path}: entry {name!r} is not 4 boxes [x1, y1, x2, y2] ({err})") from None
        if out[name].shape != (len(COMPONENTS), 4):
            raise DataError(
                f"{path}: entry {name!r} has shape {tuple(out[name].shape)}, expected {len(COMPONENTS)} "
                f"boxes [x1, y1, x2, y2] ({', '.join(COMPONENTS)})"
            )
    return out


class ComponentBoxes:
    """Boxes of named images, answered in the pixels of each image as loaded.

    `table` (name -> (4, 4)) None: `canonical_boxes` for every image. `frame` is the (width, height) the
    table's coordinates refer to (512 × 512 for GFP-GAN's file and the template, the default), or None when
    it is each image file's own size (boxes.json). `source` names the table's file in errors; `key` maps an
    image name to its table key. Picklable, so loader workers can hold it."""

    def __init__(
        self,
        table: Mapping[str, Tensor] | None = None,
        frame: tuple[int, int] | None = (GFPGAN_FRAME, GFPGAN_FRAME),
        source: str | Path | None = None,
        key: Callable[[str], str] = str,
    ) -> None:
        self.frame, self.source, self.key = frame, source, key
        if table is None:
            self.index, self.rows = None, canonical_boxes(GFPGAN_FRAME)[None]
        else:
            self.index = {k: i for i, k in enumerate(table)}
            self.rows = torch.stack(list(table.values())) if table else torch.zeros(0, len(COMPONENTS), 4)

    def check(self, paths: Mapping[str, Path]) -> None:
        """DataError naming the first image (name -> file) without an entry in the table."""
        if self.index is None:
            return
        missing = [name for name in paths if self.key(name) not in self.index]
        if missing:
            raise DataError(
                f"{paths[missing[0]]}: no component boxes in {self.source} (expected an entry "
                f"'{self.key(missing[0])}'; {len(missing)} of {len(paths)} images have none)"
            )

    def __call__(self, name: str, path: Path, size: tuple[int, int]) -> Tensor:
        """(4, 4) float32 boxes of image `name` (file `path`) in the pixels of the image as loaded, whose
        (height, width) is `size`."""
        boxes = self.rows[0 if self.index is None else self.index[self.key(name)]]
        if self.frame is None:
            with Image.open(path) as image:
                frame = image.size
        else:
            frame = self.frame
        height, width = size
        return scale_boxes(boxes, width / frame[0], height / frame[1])


def hflip_boxes(boxes: Tensor, width: int, flipped: Tensor) -> Tensor:
    """(B, 4, 4) boxes of (B, C, H, `width`) images; rows of samples where `flipped` (B,) bool follow
    `images.flip(-1)`: x mirrored about the image centre and the left/right eye rows swapped.

    In pixel-index coordinates pixel x lands on width − 1 − x, so x1' = width − 1 − x2, x2' = width − 1 − x1.
    GFP-GAN mirrors box centres with `out_size − x` (get_component_coordinates), one pixel off; we mirror
    exactly so a crop of the flipped image lands on the flipped pixels of the same part."""
    x1, y1, x2, y2 = boxes.unbind(-1)
    mirrored = torch.stack((width - 1 - x2, y1, width - 1 - x1, y2), dim=-1)[:, _MIRRORED_ROWS]
    return torch.where(flipped.to(boxes.device).view(-1, 1, 1), mirrored, boxes)
