"""Parsing agreement: the mean intersection over union (mIoU) of two label maps, the measure of how well a
translated face keeps the layout of its input parsing map (StyleGANEX mask-to-face: the output parsed again,
compared with the input; src/translate.py `miou=true`).

Per class c, over everything the metric has seen: IoU_c = |P = c ∧ T = c| / |P = c ∨ T = c| (pixels counted
over all images first, as the segmentation benchmarks do); mIoU is the mean over `classes` (all by default)
of the classes present in P or T. Identical maps give 1.
"""

from collections.abc import Sequence

import torch
from torch import Tensor
from torchmetrics import Metric

from facezoo.utils.errors import DataError


class ParsingIoU(Metric):
    """mIoU of predicted vs target label maps (B, H, W) int64 in [0, num_classes), over `classes`."""

    full_state_update = False
    higher_is_better = True

    def __init__(self, num_classes: int, classes: Sequence[int] | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.num_classes = int(num_classes)
        self.classes = list(range(self.num_classes)) if classes is None else [int(c) for c in classes]
        if not self.classes or not all(0 <= c < self.num_classes for c in self.classes):
            raise DataError(f"ParsingIoU classes={self.classes}: expected class ids in "
                            f"0..{self.num_classes - 1}")
        self.add_state("intersection", torch.zeros(self.num_classes, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("union", torch.zeros(self.num_classes, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, prediction: Tensor, target: Tensor) -> None:
        if prediction.shape != target.shape or prediction.dtype != torch.int64 or target.dtype != torch.int64:
            got = f"{tuple(prediction.shape)} {prediction.dtype} and {tuple(target.shape)} {target.dtype}"
            raise DataError(f"ParsingIoU: expected two int64 label maps of one shape, got {got}")
        n = self.num_classes
        for labels in (prediction, target):
            if labels.numel() and (labels.min() < 0 or labels.max() >= n):
                raise DataError(f"ParsingIoU: labels must be in [0, {n}), got [{int(labels.min())}, "
                                f"{int(labels.max())}]")
        pairs = torch.bincount((prediction * n + target).flatten(), minlength=n * n).view(n, n)
        both = pairs.diagonal()
        self.intersection += both
        self.union += pairs.sum(0) + pairs.sum(1) - both

    def per_class(self) -> Tensor:
        """IoU of each class of `classes` (NaN where the class was never seen)."""
        index = torch.tensor(self.classes, device=self.union.device)
        union = self.union[index].double()
        return torch.where(union > 0, self.intersection[index].double() / union.clamp(min=1), torch.nan)

    def compute(self) -> Tensor:
        iou = self.per_class()
        seen = ~iou.isnan()
        return iou[seen].mean() if seen.any() else torch.tensor(torch.nan, dtype=torch.float64)
