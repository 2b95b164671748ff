"""Evaluation metrics: PSNR / SSIM, LPIPS (offline backbone), soft IoU of masks and identity similarity."""
# isort: off
import facezoo.utils.torchvision_shim  # noqa: F401  (first: lets Lightning/torchmetrics import torchvision)
# isort: on

from facezoo.metrics.identity import IdentitySimilarity
from facezoo.metrics.image_quality import psnr_ssim_metrics
from facezoo.metrics.lpips import LPIPS, build_lpips
from facezoo.metrics.soft_iou import ConstantMaskSoftIoU, SoftIoU

__all__ = [
    "LPIPS",
    "ConstantMaskSoftIoU",
    "IdentitySimilarity",
    "SoftIoU",
    "build_lpips",
    "psnr_ssim_metrics",
]
