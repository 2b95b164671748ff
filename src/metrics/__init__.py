"""Evaluation metrics: PSNR / SSIM, LPIPS (offline backbone), soft IoU of masks and identity similarity."""

from src.metrics.identity import IdentitySimilarity
from src.metrics.image_quality import psnr_ssim_metrics
from src.metrics.lpips import LPIPS, build_lpips
from src.metrics.soft_iou import ConstantMaskSoftIoU, SoftIoU

__all__ = [
    "LPIPS",
    "ConstantMaskSoftIoU",
    "IdentitySimilarity",
    "SoftIoU",
    "build_lpips",
    "psnr_ssim_metrics",
]
