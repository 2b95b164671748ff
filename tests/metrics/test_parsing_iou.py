"""Parsing agreement (src/metrics/parsing_iou.py): mIoU of label maps, counted over all images first."""

import pytest
import torch

from facezoo.metrics.parsing_iou import ParsingIoU
from facezoo.utils.errors import DataError


def test_identical_maps_agree_fully():
    labels = torch.randint(19, (2, 8, 8))
    metric = ParsingIoU(19)
    metric.update(labels, labels.clone())
    assert metric.compute().item() == 1.0


def test_partial_overlaps_give_the_exact_value():
    target = torch.tensor([[[0, 0, 1, 1], [0, 0, 1, 1]]])  # class 0: 4 px, class 1: 4 px
    prediction = torch.tensor([[[0, 0, 0, 1], [0, 0, 2, 1]]])  # one 1 → 0, one 1 → 2
    metric = ParsingIoU(3)
    metric.update(prediction, target)
    # class 0: 4 / 5; class 1: 2 / 4; class 2: 0 / 1 → mean 13/30
    torch.testing.assert_close(metric.per_class(), torch.tensor([0.8, 0.5, 0.0], dtype=torch.float64))
    assert metric.compute().item() == pytest.approx(13 / 30)
    only = ParsingIoU(3, classes=[0, 1])  # the classes a renderer draws
    only.update(prediction, target)
    assert only.compute().item() == pytest.approx(0.65)
    # pixels are counted over the images first: a second, perfect image of class 1 only
    metric.update(torch.ones(1, 2, 4, dtype=torch.long), torch.ones(1, 2, 4, dtype=torch.long))
    torch.testing.assert_close(metric.per_class(), torch.tensor([0.8, 10 / 12, 0.0], dtype=torch.float64))


def test_unseen_classes_are_left_out_and_bad_maps_refused():
    metric = ParsingIoU(19)
    metric.update(torch.zeros(1, 2, 2, dtype=torch.long), torch.zeros(1, 2, 2, dtype=torch.long))
    assert metric.compute().item() == 1.0 and metric.per_class()[1:].isnan().all()
    with pytest.raises(DataError, match=r"labels must be in \[0, 19\), got \[19, 19\]"):
        metric.update(torch.full((1, 2, 2), 19), torch.zeros(1, 2, 2, dtype=torch.long))
    with pytest.raises(DataError, match="two int64 label maps of one shape"):
        metric.update(torch.zeros(1, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long))
