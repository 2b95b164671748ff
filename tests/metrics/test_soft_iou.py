"""Soft IoU of imperfection masks (src/metrics/soft_iou.py): identical, disjoint, partial and soft masks, the
empty case, the mean over images, bad input."""

import pytest
import torch

from facezoo.metrics import SoftIoU


def _masks(h=8, w=8):
    return torch.zeros(1, 1, h, w), torch.zeros(1, 1, h, w)


def test_soft_iou_identical_and_disjoint():
    p, t = _masks()
    p[..., :4] = 1
    t[..., :4] = 1
    assert SoftIoU()(p, t).item() == pytest.approx(1.0)
    q = 1 - p
    assert SoftIoU()(q, t).item() == pytest.approx(0.0)


def test_soft_iou_partial_overlap_and_soft_values():
    p, t = _masks()
    p[..., 0:4] = 1  # columns 0-3
    t[..., 2:6] = 1  # columns 2-5: overlap 2, union 6
    assert SoftIoU()(p, t).item() == pytest.approx(1 / 3)
    half = torch.full((1, 1, 4, 4), 0.5)
    assert SoftIoU()(half, torch.ones(1, 1, 4, 4)).item() == pytest.approx(0.5)


def test_soft_iou_both_empty_is_one():
    p, t = _masks()
    assert SoftIoU()(p, t).item() == 1.0


def test_soft_iou_accumulates_the_mean_over_images():
    metric = SoftIoU()
    p, t = _masks()
    p[..., :4] = 1
    t[..., :4] = 1
    metric.update(p, t)  # 1.0
    p2, t2 = _masks()
    p2[..., 0:4] = 1
    t2[..., 2:6] = 1
    metric.update(torch.cat([p2, 1 - t]), torch.cat([t2, t]))  # 1/3 and 0
    assert metric.compute().item() == pytest.approx((1 + 1 / 3 + 0) / 3)


def test_soft_iou_rejects_bad_input():
    with pytest.raises(ValueError, match="differ"):
        SoftIoU().update(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 5))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        SoftIoU().update(torch.full((1, 1, 4, 4), 2.0), torch.zeros(1, 1, 4, 4))
