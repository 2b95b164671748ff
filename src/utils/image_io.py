"""Image files <-> tensors. The only place facezoo reads or writes image files (PIL, no torchvision.io).

Inside models images are RGB float tensors in [-1, 1]; these helpers convert once, at the edges.
Gray, gray+alpha, RGBA, palette and 16-bit files are all read as 8-bit RGB (alpha is composited on black
and dropped); single-channel masks are read as float in [0, 1]. The scale of a file's values comes from its
format, never from the values: a 16-bit file is 0..65535 (8-bit value = round(v / 257)) even when it is dark.
PIL reads 16-bit gray files as such (modes I;16, I;16B, I;16L, I) but reduces 16-bit colour files to 8 bits
by dropping the low byte, so those are read with OpenCV.
"""

from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image, ImageOps

from facezoo.utils.atomic import atomic_file
from facezoo.utils.errors import DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
_ORIENTATION = 0x0112  # the EXIF tag of the camera's orientation


def _unreadable(path: Path, err: Exception) -> DataError:
    if isinstance(err, FileNotFoundError):
        return DataError(f"{path}: file not found")
    return DataError(f"{path}: not a readable image ({err.__class__.__name__}: {err})")


def _is_16bit_colour(image: Image.Image) -> bool:
    """A 16-bit-per-channel colour file (48-bit RGB, 64-bit RGBA), which PIL would reduce to 8 bits."""
    args = image.tile[0].args if image.tile else None  # the raw mode of the file's data, e.g. "RGB;16B"
    rawmode = args[0] if isinstance(args, tuple) else args
    return not image.mode.startswith(("I", "F")) and ";16" in str(rawmode)


def _read_16bit_colour(path: Path) -> np.ndarray:
    array = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if array is None:
        raise DataError(f"{path}: not a readable image (OpenCV could not decode this 16-bit colour file)")
    if array.ndim == 3:  # OpenCV's BGR(A) -> RGB(A)
        array = array[..., [2, 1, 0, 3][: array.shape[2]]]
    return array


def decoded_size(path: str | Path) -> tuple[int, int]:
    """Decode every byte of `path` with PIL and return its (width, height); a DataError naming the file when
    it cannot be read. Truncated files are refused (PIL's LOAD_TRUNCATED_IMAGES stays False)."""
    try:
        with Image.open(path) as image:
            image.load()
            width, height = image.size
            turned = image.getexif().get(_ORIENTATION) in (5, 6, 7, 8)  # EXIF: a quarter turn on reading
            return (height, width) if turned else (width, height)
    except Exception as err:  # PIL raises many types for corrupt files
        raise _unreadable(Path(path), err) from None


def _peak(dtype: np.dtype) -> int:
    """The value of full intensity, from the data type: 8-bit 255, 16-bit (and PIL's 32-bit "I") 65535."""
    if dtype == np.bool_:
        return 1
    return 255 if dtype == np.uint8 else 65535


def _to_uint8(array: np.ndarray) -> np.ndarray:
    if array.dtype == np.uint8:
        return array
    if np.issubdtype(array.dtype, np.floating):  # float images in [0, 1]
        return np.round(np.clip(array, 0.0, 1.0) * 255.0).astype(np.uint8)
    peak = _peak(array.dtype)
    return np.round(np.clip(array.astype(np.float64), 0, peak) * (255.0 / peak)).astype(np.uint8)


def _composite_on_black(array: np.ndarray) -> np.ndarray:
    """(H, W, C + alpha) of any integer type -> (H, W, C) uint8, colour times alpha."""
    unit = array.astype(np.float64) / _peak(array.dtype)
    return np.round(unit[..., :-1] * unit[..., -1:] * 255.0).astype(np.uint8)


def _read_array(path: Path) -> np.ndarray:
    """The file's pixels as PIL or OpenCV give them: (H, W) or (H, W, C), C = 3 or 4 (RGB[A]) or 2 (LA)."""
    try:
        with Image.open(path) as image:
            deep = _is_16bit_colour(image)
            if not deep:
                image.load()
                image = ImageOps.exif_transpose(image)  # camera photos: upright as a viewer shows them
    except Exception as err:  # PIL raises many types for corrupt files
        raise _unreadable(path, err) from None
    if deep:
        return _read_16bit_colour(path)
    if image.mode in ("RGB", "RGBA", "L", "LA", "1") or image.mode.startswith(("I", "F")):
        return np.asarray(image)
    return np.asarray(image.convert("RGBA" if image.mode in ("P", "PA") else "RGB"))  # CMYK, YCbCr ...


def read_rgb_uint8(path: str | Path) -> np.ndarray:
    """Read any common image file as an (H, W, 3) uint8 RGB array."""
    array = _read_array(Path(path))
    if array.ndim == 3 and array.shape[2] in (2, 4):
        array = _composite_on_black(array)
    array = _to_uint8(array)
    if array.ndim == 2:
        array = array[..., None]
    return np.ascontiguousarray(np.repeat(array, 3, axis=2) if array.shape[2] == 1 else array)


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


def write_image(path: str | Path, image: torch.Tensor | np.ndarray, durable: bool = True) -> None:
    """Write a (3, H, W) float [-1, 1] tensor, a (1|H, W) float [0, 1] mask tensor, or a uint8 array
    (atomically, see `atomic_file` for `durable`; the format from the suffix)."""
    path = Path(path)
    image_format = Image.registered_extensions().get(path.suffix.lower())
    if image_format is None:
        raise DataError(f"{path}: not an image file name (expected a suffix: {', '.join(IMAGE_EXTENSIONS)})")
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
    with atomic_file(path, durable=durable) as f:
        Image.fromarray(np.ascontiguousarray(array)).save(f, format=image_format)


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly inside `folder`, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: folder not found (expected a folder of images)")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
