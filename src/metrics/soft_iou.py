"""Soft IoU between predicted and true masks (RetouchFormer's blemish masks, face parsing masks)."""

import torch
from torch import Tensor
from torchmetrics import Metric


class SoftIoU(Metric):
    r"""Soft intersection over union of masks in [0, 1], averaged over images.

    For one image with predicted mask :math:`p` and true mask :math:`t` (shape ``(1, H, W)``, or any
    ``(C, H, W)``; all pixels and channels count):

    .. math::
        \mathrm{IoU}(p, t) = \frac{\sum_i \min(p_i, t_i)}{\sum_i \max(p_i, t_i)},

    defined as 1 when both masks are empty (:math:`\sum_i \max(p_i, t_i) = 0`). For binary masks this is the
    usual IoU. ``compute`` returns the mean over all images seen (each image counts once, whatever its size).

    States: ``iou_sum`` (sum of per-image IoUs) and ``count`` (number of images), both summed across
    processes.
    """

    is_differentiable = True
    higher_is_better = True
    full_state_update = False

    iou_sum: Tensor
    count: Tensor

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("iou_sum", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0), dist_reduce_fx="sum")

    def update(self, preds: Tensor, target: Tensor) -> None:
        """Add a batch of masks, ``(B, 1, H, W)`` (or ``(B, C, H, W)``), values in [0, 1]."""
        if preds.shape != target.shape:
            raise ValueError(f"SoftIoU: preds {tuple(preds.shape)} and target {tuple(target.shape)} differ")
        if preds.ndim < 2:
            raise ValueError(f"SoftIoU: expected (B, 1, H, W) masks, got shape {tuple(preds.shape)}")
        for name, mask in (("preds", preds), ("target", target)):
            if mask.numel() and (mask.min() < 0 or mask.max() > 1):
                lo, hi = mask.min().item(), mask.max().item()
                raise ValueError(f"SoftIoU: {name} must be in [0, 1], got values in [{lo:.3g}, {hi:.3g}]")
        p = preds.flatten(1).double()
        t = target.flatten(1).double()
        inter = torch.minimum(p, t).sum(dim=1)
        union = torch.maximum(p, t).sum(dim=1)
        empty = union == 0  # both masks empty: IoU defined as 1
        iou = torch.where(empty, torch.ones_like(union), inter / union.masked_fill(empty, 1.0))
        self.iou_sum += iou.sum()
        self.count += iou.numel()

    def compute(self) -> Tensor:
        """Mean soft IoU over all images (NaN before any update)."""
        return (self.iou_sum / self.count).float()


class ConstantMaskSoftIoU(Metric):
    """The Soft-IoU of the best *constant* predicted mask (the same value c at every pixel of every image),
    c searched on a grid of `steps` values in [0, 1]: the score a mask predictor must beat to be informative.
    ``compute`` returns that best mean Soft-IoU; ``best_constant`` the c that reaches it."""

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    iou_sum: Tensor
    count: Tensor

    def __init__(self, steps: int = 101, **kwargs) -> None:
        super().__init__(**kwargs)
        self.register_buffer("levels", torch.linspace(0, 1, steps, dtype=torch.float64), persistent=False)
        self.add_state("iou_sum", default=torch.zeros(steps, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0), dist_reduce_fx="sum")

    def update(self, target: Tensor) -> None:
        t = target.flatten(1).double()
        for i, c in enumerate(self.levels):  # a loop over the grid, vectorised over images and pixels
            inter, union = torch.minimum(t, c).sum(1), torch.maximum(t, c).sum(1)
            self.iou_sum[i] += torch.where(union == 0, 1.0, inter / union.clamp_min(1e-12)).sum()
        self.count += t.shape[0]

    def compute(self) -> Tensor:
        return (self.iou_sum / self.count).max().float()

    def best_constant(self) -> float:
        return float(self.levels[(self.iou_sum / self.count).argmax()])
