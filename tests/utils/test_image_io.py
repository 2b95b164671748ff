"""Reading image files (src/utils/image_io.py): the scale of the values comes from the file's format, never
from the values, and a truncated file is refused by a real decode."""

import cv2
import numpy as np
import pytest
from PIL import Image

from facezoo.utils.errors import DataError
from facezoo.utils.image_io import decoded_size, read_rgb_uint8


def _save(path, array, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode=mode).save(path)


def _to_8bit(values):
    """What a 16-bit value is in 8 bits: round(v / 257) (65535 / 255 = 257)."""
    return np.round(np.asarray(values, np.float64) / 257.0).astype(np.uint8)


def test_gray_and_rgba_are_read_as_rgb(tmp_path):
    gray = np.arange(64, dtype=np.uint8).reshape(8, 8)
    _save(tmp_path / "gray.png", gray)
    rgba = np.zeros((8, 8, 4), dtype=np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 255
    rgba[0, 0, 3] = 0  # transparent pixel -> black
    _save(tmp_path / "rgba.png", rgba)

    g = read_rgb_uint8(tmp_path / "gray.png")
    assert g.shape == (8, 8, 3) and g.dtype == np.uint8 and (g == gray[..., None]).all()
    r = read_rgb_uint8(tmp_path / "rgba.png")
    assert r.shape == (8, 8, 3) and r[1, 1, 0] == 200 and r[0, 0, 0] == 0


# a dark 16-bit image (every value <= 255: nearly black) and one over the full range
DARK = np.arange(64, dtype=np.uint16).reshape(8, 8) * 4
FULL = np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000


@pytest.mark.parametrize("values", [DARK, FULL], ids=["dark", "full"])
def test_16bit_gray_png_is_scaled_by_its_format(tmp_path, values):
    Image.fromarray(values).save(tmp_path / "deep.png")
    with Image.open(tmp_path / "deep.png") as image:
        assert image.mode.startswith("I")  # what PIL makes of a 16-bit gray PNG
    d = read_rgb_uint8(tmp_path / "deep.png")
    assert d.dtype == np.uint8 and (d == _to_8bit(values)[..., None]).all()


@pytest.mark.parametrize("values", [DARK, FULL], ids=["dark", "full"])
def test_16bit_rgb_png_keeps_its_low_byte(tmp_path, values):
    rgb = np.stack([values, values // 2, 65535 - values], axis=-1).astype(np.uint16)
    assert cv2.imwrite(str(tmp_path / "deep.png"), rgb[..., ::-1])  # OpenCV writes BGR
    with Image.open(tmp_path / "deep.png") as image:
        assert image.mode == "RGB"  # PIL would give 8 bits, dropping the low byte
    d = read_rgb_uint8(tmp_path / "deep.png")
    assert d.shape == (8, 8, 3) and (d == _to_8bit(rgb)).all()


def test_16bit_rgba_png_is_composited_on_black(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint16)
    rgba[..., 0], rgba[..., 1], rgba[..., 3] = 65535, 200, 65535
    rgba[0, 0, 3] = 0
    assert cv2.imwrite(str(tmp_path / "deep.png"), rgba[..., [2, 1, 0, 3]])
    d = read_rgb_uint8(tmp_path / "deep.png")
    assert d.shape == (4, 4, 3) and (d[1, 1] == [255, 1, 0]).all() and (d[0, 0] == 0).all()


def test_truncated_jpeg_is_refused_by_a_real_decode(tmp_path):
    path = tmp_path / "cut.jpg"
    _save(path, np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    assert decoded_size(path) == (64, 64)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with Image.open(path) as image:
        image.verify()  # PIL's verify() does not decode JPEG data: the truncated file passes it
    with pytest.raises(DataError, match=r"cut\.jpg: not a readable image \(OSError: image file is truncated"):
        decoded_size(path)
    with pytest.raises(DataError, match=r"cut\.jpg: not a readable image"):
        read_rgb_uint8(path)


def test_exif_rotated_photos_are_read_upright(tmp_path):
    pixels = np.zeros((20, 40, 3), np.uint8)
    pixels[:, :20] = 255  # left half white, as stored
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90° clockwise to view"
    image.save(tmp_path / "turned.jpg", exif=exif, quality=95)
    upright = read_rgb_uint8(tmp_path / "turned.jpg")
    assert upright.shape == (40, 20, 3) and decoded_size(tmp_path / "turned.jpg") == (20, 40)
    assert upright[:20].mean() > 200 and upright[20:].mean() < 50  # the stored left half is now on top
