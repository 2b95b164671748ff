"""Blur stage: per-sample bivariate Gaussian kernels (BasicSR `bivariate_Gaussian`) correlated with each
image like ``cv2.filter2D`` (reflect-101 border), by FFT."""

import torch
import torch.nn.functional as F


def gaussian_kernels(
    sigma_x: torch.Tensor, sigma_y: torch.Tensor, theta: torch.Tensor, size: torch.Tensor, max_size: int
) -> torch.Tensor:
    """(B, max_size, max_size) bivariate Gaussian kernels as BasicSR's `bivariate_Gaussian`: covariance
    R(theta) diag(sx^2, sy^2) R(theta)^T on the integer grid, zero outside each sample's size x size support,
    normalised to sum 1. Row index is y, column index is x (BasicSR's mesh_grid)."""
    r = max_size // 2
    ax = torch.arange(-r, r + 1, device=sigma_x.device, dtype=torch.float32)
    y, x = ax[None, :, None], ax[None, None, :]
    cos, sin = torch.cos(theta)[:, None, None], torch.sin(theta)[:, None, None]
    inv_x, inv_y = 1.0 / sigma_x[:, None, None] ** 2, 1.0 / sigma_y[:, None, None] ** 2
    # inverse covariance R diag(1/sx^2, 1/sy^2) R^T
    a = cos**2 * inv_x + sin**2 * inv_y
    b = cos * sin * (inv_x - inv_y)
    d = sin**2 * inv_x + cos**2 * inv_y
    kernel = torch.exp(-0.5 * (a * x**2 + 2 * b * x * y + d * y**2))
    half = (size // 2)[:, None, None]
    kernel = kernel * ((x.abs() <= half) & (y.abs() <= half))
    return kernel / kernel.sum(dim=(1, 2), keepdim=True)


def _reflect101_index(n: int, pad: int, device) -> torch.Tensor:
    """Source indices of a reflect-101 padded axis (cv2.BORDER_REFLECT_101), for any pad, even pad >= n."""
    i = torch.arange(-pad, n + pad, device=device)
    if n == 1:
        return torch.zeros_like(i)
    period = 2 * (n - 1)
    i = i.remainder(period)
    return torch.where(i >= n, period - i, i)


def reflect101_pad(x: torch.Tensor, pad: int) -> torch.Tensor:
    """Pad the last two axes like cv2.BORDER_REFLECT_101; pads as large as the image (where F.pad's "reflect"
    refuses) repeat the reflection as OpenCV does."""
    if pad < min(x.shape[-2:]):
        return F.pad(x, (pad, pad, pad, pad), mode="reflect")
    rows = _reflect101_index(x.shape[-2], pad, x.device)
    cols = _reflect101_index(x.shape[-1], pad, x.device)
    return x.index_select(-2, rows).index_select(-1, cols)


def _fft_size(n: int) -> int:
    """Smallest 7-smooth integer >= n (fast FFT length)."""
    while True:
        m = n
        for p in (2, 3, 5, 7):
            while m % p == 0:
                m //= p
        if m == 1:
            return n
        n += 1


def _fft_input(x: torch.Tensor, pad: int) -> torch.Tensor:
    """``reflect101_pad(x, pad)`` followed by zeros at the bottom and right up to fast FFT sizes, written
    into one buffer (the copies of the image and its reflected borders are exact)."""
    h, w = x.shape[-2:]
    hp, wp = h + 2 * pad, w + 2 * pad
    size = (_fft_size(hp), _fft_size(wp))
    if pad >= min(h, w):  # reflections repeat: the general (slower) path
        return F.pad(reflect101_pad(x, pad), (0, size[1] - wp, 0, size[0] - hp))
    out = x.new_empty(*x.shape[:-2], *size)
    out[..., pad : pad + h, pad : pad + w] = x
    if pad:  # reflect-101: rows first, then all padded rows' columns (which fills the corners)
        out[..., :pad, pad : pad + w] = x[..., 1 : pad + 1, :].flip(-2)
        out[..., pad + h : hp, pad : pad + w] = x[..., h - 1 - pad : h - 1, :].flip(-2)
        out[..., :hp, :pad] = out[..., :hp, pad + 1 : 2 * pad + 1].flip(-1)
        out[..., :hp, pad + w : wp] = out[..., :hp, w - 1 : w + pad - 1].flip(-1)
    out[..., hp:, :] = 0.0
    out[..., :hp, wp:] = 0.0
    return out


def blur(x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Correlate each sample with its own (k, k) kernel, reflect-101 border, like cv2.filter2D.

    Same result as ``kornia.filters.filter2d(reflect101_pad(x, k // 2), kernels, padding="valid")`` up to
    float rounding, computed by FFT (as OpenCV does for large kernels): 2-8x faster on CPU for 41x41 kernels,
    and not slowed down by denormal products of the tiny tails of narrow Gaussians."""
    k = kernels.shape[-1]
    # zero padding beyond the reflect-padded (height, width) up to a fast FFT size cannot wrap into the crop
    padded = _fft_input(x, k // 2)
    height, width = x.shape[-2] + k - 1, x.shape[-1] + k - 1
    size = padded.shape[-2:]
    spectrum = torch.fft.rfft2(padded).mul_(torch.fft.rfft2(kernels.flip(-2, -1), s=size)[:, None])
    # irfft2 in its two steps (as torch does it on CPU), the second only on the rows that are kept
    rows = torch.fft.ifft(spectrum, dim=-2)[..., k - 1 : height, :]
    return torch.fft.irfft(rows, n=size[1], dim=-1)[..., k - 1 : width]
