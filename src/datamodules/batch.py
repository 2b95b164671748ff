"""The batch contract: what a datamodule hands to models, metrics and callbacks.

A batch is a dict with stable keys.
- Restoration: `lq` (the degraded input), `hq` (the clean target) and, when the datamodule is asked for them,
  `boxes`.
- Retouching: groups of the semi-supervised split, `paired` = {`raw`, `retouched`[, `mask`]},
  `unpaired_raw` = {`raw`} and `unpaired_retouched` = {`retouched`} (γ = 1: `paired` only; validation and
  test batches: `paired` only).
Images are (B, 3, H, W): uint8 in the loaders, RGB float in [-1, 1] once the datamodule's
`on_after_batch_transfer` has run. `mask` is the ground-truth imperfection mask (B, 1, H, W), float in [0, 1].
Loaders also add `draw` (the sampler's draw id) and, per item, `index`; they seed the degradation.

`boxes` is (B, 4, 4) float32: one row per facial component in `COMPONENTS` order, each (x1, y1, x2, y2) in
pixel-index coordinates of the batch's images (pixel i's centre is at i; a box covers the pixels x1..x2,
y1..y2), GFP-GAN's convention (gfpgan/data/ffhq_degradation_dataset.py `get_component_coordinates`, cropped
with `roi_align(aligned=False)`). Where boxes come from: datamodules/boxes.py.
"""

from torch import Tensor

LQ, HQ, BOXES = "lq", "hq", "boxes"
RAW, RETOUCHED, MASK = "raw", "retouched", "mask"
PAIRED, UNPAIRED_RAW, UNPAIRED_RETOUCHED = "paired", "unpaired_raw", "unpaired_retouched"
IMAGE_KEYS = (RAW, RETOUCHED, LQ, HQ)  # the keys whose values are images
COMPONENTS = ("left_eye", "right_eye", "nose", "mouth")  # left_eye = the eye with the smaller x (image left)


def eval_pair(batch: dict) -> tuple[Tensor, Tensor, Tensor | None]:
    """(input, target, true mask or None) of a retouching or restoration evaluation batch."""
    if PAIRED in batch:
        paired = batch[PAIRED]
        return paired[RAW], paired[RETOUCHED], paired.get(MASK)
    return batch[LQ], batch[HQ], None


def scale_boxes(boxes: Tensor, sx: float, sy: float | None = None) -> Tensor:
    """Boxes of an image resized by (sx, sy): pixel centres map as x' = (x + 0.5)·s − 0.5, as in cv2.resize,
    so a box keeps covering the same content (a plain x·s drifts by (s − 1)/2 px)."""
    sy = sx if sy is None else sy
    scale = boxes.new_tensor((sx, sy, sx, sy))
    return (boxes + 0.5) * scale - 0.5

