"""Image files <-> tensors. The only place facezoo reads or writes image files (PIL, no torchvision.io).

Inside models images are RGB float tensors in [-1, 1]; these helpers convert once, at the edges.
Gray, gray+alpha, RGBA, palette and 16-bit files are all read as 8-bit RGB (alpha is composited on black
and dropped); single-channel masks are read as float in [0, 1].
"""

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from facezoo.utils.errors import DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


def _open(path: Path) -> Image.Image:
    try:
        image = Image.open(path)
        image.load()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DataError(f"{path}: not a readable image ({err.__class__.__name__}: {err})") from None
    return image


def _to_uint8(array: np.ndarray) -> np.ndarray:
    if array.dtype == np.uint8:
        return array
    if array.dtype == bool:
        return array.astype(np.uint8) * 255
    if np.issubdtype(array.dtype, np.integer):  # 16-bit (and 32-bit) integer images
        peak = 65535 if array.max(initial=0) > 255 else 255
        return np.round(array.astype(np.float64) * (255.0 / peak)).astype(np.uint8)
    return np.round(np.clip(array, 0.0, 1.0) * 255.0).astype(np.uint8)  # float images in [0, 1]


def read_rgb_uint8(path: str | Path) -> np.ndarray:
    """Read any common image file as an (H, W, 3) uint8 RGB array."""
    path = Path(path)
    image = _open(path)
    if image.mode in ("RGB", "L"):
        array = np.asarray(image)
    elif image.mode in ("RGBA", "LA", "P", "PA"):
        rgba = np.asarray(image.convert("RGBA")).astype(np.float32)
        array = np.round(rgba[..., :3] * (rgba[..., 3:] / 255.0)).astype(np.uint8)
    else:  # I;16, I, F, CMYK, YCbCr, 1 ...
        array = np.asarray(image) if image.mode.startswith(("I", "F")) else np.asarray(image.convert("RGB"))
    array = _to_uint8(array)
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    return np.ascontiguousarray(array[..., :3])


def read_mask(path: str | Path) -> np.ndarray:
    """Read a mask image as an (H, W) float32 array in [0, 1] (colour masks are averaged)."""
    array = read_rgb_uint8(path).astype(np.float32).mean(axis=2) / 255.0
    return array


def uint8_to_tensor(array: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> (3, H, W) uint8 tensor (conversion to float happens on the device)."""
    array = np.ascontiguousarray(array)
    if not array.flags.writeable:  # PIL's read-only buffers
        array = array.copy()
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


def to_float(image: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1]."""
    return image.float().div(127.5).sub(1.0)


def to_uint8(image: torch.Tensor) -> torch.Tensor:
    """float [-1, 1] -> uint8 [0, 255] (clamped, rounded)."""
    return image.detach().add(1.0).mul(127.5).round().clamp(0, 255).to(torch.uint8)


def write_image(path: str | Path, image: torch.Tensor | np.ndarray) -> None:
    """Write a (3, H, W) float [-1, 1] tensor, a (1|H, W) float [0, 1] mask tensor, or a uint8 array."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(image, torch.Tensor):
        if image.dtype == torch.uint8:
            array = image.cpu().numpy()
        elif image.dim() == 3 and image.shape[0] == 3:
            array = to_uint8(image).cpu().numpy()
        else:  # a mask in [0, 1]
            array = image.detach().squeeze(0).mul(255).round().clamp(0, 255).to(torch.uint8).cpu().numpy()
        if array.ndim == 3 and array.shape[0] in (1, 3):
            array = array.transpose(1, 2, 0).squeeze(2) if array.shape[0] == 1 else array.transpose(1, 2, 0)
    else:
        array = _to_uint8(np.asarray(image))
    Image.fromarray(np.ascontiguousarray(array)).save(path)


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly inside `folder`, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: folder not found (expected a folder of images)")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
