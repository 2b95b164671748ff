"""PSNR and SSIM on images in [-1, 1], the range used inside every facezoo model.

Convention: the metrics take the images as they are, with ``data_range=(-1.0, 1.0)``: inputs are clamped to
[-1, 1] (as when an image is saved) and the range is 2. This gives exactly the values on [0, 1]-scaled
images with range 1: PSNR = 10 log10(2^2 / mse_[-1,1]) = 10 log10(1 / mse_[0,1]) since mse_[-1,1] =
4 mse_[0,1], and SSIM is unchanged because its constants scale with the range.

PSNR is computed per image (over C, H, W) and averaged over images, as face restoration papers report it
(an identical pair gives +inf). SSIM is torchmetrics' Gaussian SSIM (11x11, sigma 1.5) on all RGB channels,
averaged per image and then over images; papers that report SSIM on the Y channel give other numbers.
"""

from torchmetrics import MetricCollection
from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure

DATA_RANGE = (-1.0, 1.0)


def psnr_ssim_metrics(prefix: str | None = None) -> MetricCollection:
    """A ``MetricCollection`` with ``psnr`` and ``ssim`` for ``(B, C, H, W)`` images in [-1, 1]."""
    return MetricCollection(
        {
            "psnr": PeakSignalNoiseRatio(data_range=DATA_RANGE, dim=(1, 2, 3), reduction="elementwise_mean"),
            "ssim": StructuralSimilarityIndexMeasure(data_range=DATA_RANGE),
        },
        prefix=prefix,
    )
