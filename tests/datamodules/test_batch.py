"""The batch contract (src/datamodules/batch.py): component order, evaluation pairs and box scaling."""

import pytest
import torch

from facezoo.datamodules.batch import COMPONENTS, IMAGE_KEYS, eval_pair, scale_boxes


def images(n: int = 2, size: int = 8) -> torch.Tensor:
    return torch.rand(n, 3, size, size) * 2 - 1


def test_components_are_in_the_design_order():
    assert COMPONENTS == ("left_eye", "right_eye", "nose", "mouth")
    assert set(IMAGE_KEYS) == {"raw", "retouched", "lq", "hq"}


def test_eval_pair_of_a_retouching_batch_is_raw_retouched_mask():
    raw, retouched, mask = images(), images(), torch.rand(2, 1, 8, 8)
    batch = {"paired": {"raw": raw, "retouched": retouched, "mask": mask}, "unpaired_raw": {"raw": images()}}
    source, target, true_mask = eval_pair(batch)
    assert source is raw and target is retouched and true_mask is mask
    batch["paired"].pop("mask")
    assert eval_pair(batch)[2] is None  # FFHQR without masks


def test_eval_pair_of_a_restoration_batch_is_lq_hq_without_mask():
    lq, hq = images(), images()
    source, target, true_mask = eval_pair({"lq": lq, "hq": hq, "boxes": torch.zeros(2, 4, 4)})
    assert source is lq and target is hq and true_mask is None
    with pytest.raises(KeyError):
        eval_pair({"hq": hq})  # a training batch before its degradation has no input yet


def test_scale_boxes_maps_pixel_centres_like_cv2_resize():
    whole = torch.tensor([[[0.0, 0.0, 63.0, 63.0]]])  # every pixel of a 64 px image
    # ×2: pixel 0 becomes pixels 0 and 1 (centre 0.5), pixel 63 becomes 126 and 127 (centre 126.5)
    assert torch.equal(scale_boxes(whole, 2.0), torch.tensor([[[0.5, 0.5, 126.5, 126.5]]]))
    # the image's outer edges (-0.5 and 63.5) stay the outer edges at any scale
    edges = torch.tensor([[[-0.5, -0.5, 63.5, 63.5]]])
    assert torch.allclose(scale_boxes(edges, 0.25, 0.5), torch.tensor([[[-0.5, -0.5, 15.5, 31.5]]]))
    boxes = torch.rand(3, 4, 4) * 60
    assert torch.allclose(scale_boxes(scale_boxes(boxes, 0.3, 1.7), 1 / 0.3, 1 / 1.7), boxes, atol=1e-4)
    assert scale_boxes(boxes.double(), 2.0).dtype == torch.float64
