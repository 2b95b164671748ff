"""A picture of the whole-photo pipeline on one photo: what `facezoo-restore` does before and after the model.

`pipeline_figure(image, faces)` renders four tiles from the project's own functions: the photo with each
detected box, its 68 landmarks and the 5 points (`DlibDetector`, `five_points`), the first face aligned to
the 5-point template and to the FFHQ crop (`template_transform`, `ffhq_transform`, `warp_faces`), and the
paste-back mask over the photo (`paste_mask`: the weight `paste_back` gives the restored faces at each pixel).

    python -m facezoo.faces.figure docs/restore_pipeline.jpg [--input PHOTO]

(default photo: scikit-image's astronaut, public domain; the format from the suffix).
"""

import argparse
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import skimage.data
import torch

from facezoo.cli import run_cli
from facezoo.faces.align import apply_affine, face_template, ffhq_transform, template_transform, warp_faces
from facezoo.faces.detector import DlibDetector, Face
from facezoo.faces.landmarks import five_points
from facezoo.faces.paste import paste_back
from facezoo.utils.errors import DataError
from facezoo.utils.image_io import read_rgb_uint8, write_image

TILE = 500  # the side of each of the 2 x 2 tiles (px)
CAPTION = 28  # the caption strip above each tile (px)
CROP = 512  # the aligned crops' side: the size the official releases were trained at
BOX = (0, 255, 0)  # RGB colours
LANDMARK = (255, 255, 0)
POINT5 = (255, 0, 0)
TEMPLATE_SQUARE = (255, 140, 0)
FFHQ_SQUARE = (255, 0, 255)
MASK_TINT = np.array([0, 255, 120], np.float32)


def paste_mask(image: np.ndarray, landmarks: np.ndarray, size: int = CROP, region: str = "hull",
               ) -> np.ndarray:
    """(H, W) float32 in [0, 1]: the share of the restored faces in each pixel of the pasted photo, measured
    by `paste_back` itself (restored crops of 1 pasted over a photo of -1), the faces (F, 68, 2) aligned to
    the 5-point template at `size`. Where faces overlap, the later one's mask lies on top."""
    height, width = image.shape[:2]
    points = torch.as_tensor(np.asarray(landmarks, np.float32).reshape(-1, 68, 2))
    matrices = template_transform(torch.as_tensor(five_points(points.numpy())), size)
    photo = torch.full((3, height, width), -1.0)
    restored = torch.ones(len(points), 3, size, size)
    pasted = paste_back(photo, restored, matrices, points, region=region)
    return pasted[0].add(1.0).div(2.0).clamp(0.0, 1.0).numpy()


def _fit(image: np.ndarray, side: int = TILE) -> tuple[np.ndarray, float, np.ndarray]:
    """The image scaled to fit a side x side tile, centred on black -> (tile, scale, offset (x, y))."""
    height, width = image.shape[:2]
    scale = side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    offset = np.array([(side - size[0]) // 2, (side - size[1]) // 2])
    tile = np.zeros((side, side, 3), np.uint8)
    tile[offset[1]:offset[1] + size[1], offset[0]:offset[0] + size[0]] = cv2.resize(image, size,
                                                                                   interpolation=interpolation)
    return tile, scale, offset


def _to_tile(points: np.ndarray, scale: float, offset: np.ndarray) -> np.ndarray:
    """Pixel centres (..., 2) -> integer tile coordinates."""
    return np.round((np.asarray(points, np.float64) + 0.5) * scale - 0.5 + offset).astype(np.int32)


def _dots(tile: np.ndarray, points: np.ndarray, colour, radius: int, filled: bool = True) -> None:
    for x, y in points.reshape(-1, 2):
        cv2.circle(tile, (int(x), int(y)), radius, colour, -1 if filled else 1, cv2.LINE_AA)


def _crop_square(matrices: torch.Tensor, size: int) -> np.ndarray:
    """(N, 4, 2): the corners of each crop's square in image pixels."""
    corners = torch.tensor([[-0.5, -0.5], [size - 0.5, -0.5], [size - 0.5, size - 0.5], [-0.5, size - 0.5]])
    linear, shift = matrices[:, :, :2].double(), matrices[:, :, 2].double()
    return ((corners.double()[None] - shift[:, None]) @ torch.linalg.inv(linear).transpose(1, 2)).numpy()


def _with_caption(tile: np.ndarray, text: str) -> np.ndarray:
    strip = np.full((CAPTION, tile.shape[1], 3), 255, np.uint8)
    cv2.putText(strip, text, (6, CAPTION - 9), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([strip, tile])


def _photo_tile(image: np.ndarray, faces: Sequence[Face], template: np.ndarray, ffhq: np.ndarray,
                ) -> np.ndarray:
    tile, scale, offset = _fit(image)
    for quad, colour in ((template, TEMPLATE_SQUARE), (ffhq, FFHQ_SQUARE)):
        cv2.polylines(tile, list(_to_tile(quad, scale, offset)[:, :, None]), True, colour, 1, cv2.LINE_AA)
    for face in faces:
        x0, y0, x1, y1 = _to_tile(np.reshape(face.box, (2, 2)), scale, offset).ravel()
        cv2.rectangle(tile, (int(x0), int(y0)), (int(x1), int(y1)), BOX, 2)
        _dots(tile, _to_tile(face.landmarks, scale, offset), LANDMARK, 1)
        _dots(tile, _to_tile(five_points(face.landmarks), scale, offset), POINT5, 3)
    return tile


def _crop_tile(image: np.ndarray, matrix: torch.Tensor, landmarks: np.ndarray, template: bool) -> np.ndarray:
    photo = torch.from_numpy(image).permute(2, 0, 1).float()[None]
    crop = warp_faces(photo, matrix[None], CROP)[0].round().clamp(0, 255).byte().permute(1, 2, 0).numpy()
    tile, scale, offset = _fit(np.ascontiguousarray(crop))
    points = torch.as_tensor(landmarks if not template else five_points(landmarks), dtype=torch.float64)
    in_crop = apply_affine(matrix[None].double(), points[None])[0].numpy()
    _dots(tile, _to_tile(in_crop, scale, offset), POINT5 if template else LANDMARK,
          3 if template else 2)
    if template:  # the template's points, which the face's 5 points are fitted onto
        _dots(tile, _to_tile(face_template(CROP).numpy(), scale, offset), (255, 255, 255), 6, filled=False)
    return tile


def _mask_tile(image: np.ndarray, mask: np.ndarray, template: np.ndarray) -> np.ndarray:
    """The photo dimmed where the mask is 0 and tinted where it is 1, zoomed on the faces' crop squares."""
    shown = image.astype(np.float32) * (0.3 + 0.7 * mask[..., None])
    shown = (shown * (1 - 0.2 * mask[..., None]) + MASK_TINT * 0.2 * mask[..., None]).round()
    shown = shown.clip(0, 255).astype(np.uint8)
    (x0, y0), (x1, y1) = np.floor(template.reshape(-1, 2).min(0)), np.ceil(template.reshape(-1, 2).max(0))
    height, width = image.shape[:2]
    x0, y0 = int(max(0, x0)), int(max(0, y0))
    x1, y1 = int(min(width, x1 + 1)), int(min(height, y1 + 1))
    tile, scale, offset = _fit(np.ascontiguousarray(shown[y0:y1, x0:x1]))
    cv2.polylines(tile, list(_to_tile(template - (x0, y0), scale, offset)[:, :, None]), True,
                  TEMPLATE_SQUARE, 1, cv2.LINE_AA)
    return tile


def pipeline_figure(image: np.ndarray, faces: Sequence[Face]) -> np.ndarray:
    """(H, W, 3) uint8 RGB photo and its detected faces -> (2·(CAPTION + TILE), 2·TILE, 3) uint8 RGB panel:
    top the photo with boxes, 68 landmarks, 5 points and the crops' squares, and the first face aligned to the
    5-point template (GFP-GAN, GPEN); bottom that face's FFHQ crop and the paste-back mask over the photo."""
    if not faces:
        raise DataError("pipeline figure: no face in the photo (expected at least one)")
    landmarks = np.stack([face.landmarks for face in faces]).astype(np.float32)
    points = torch.from_numpy(landmarks)
    template = template_transform(torch.as_tensor(five_points(landmarks)), CROP)
    ffhq = ffhq_transform(points, CROP)
    template_quads, ffhq_quads = _crop_square(template, CROP), _crop_square(ffhq, CROP)
    tiles = [
        _with_caption(_photo_tile(image, faces, template_quads, ffhq_quads),
                      "1 detected box, 68 landmarks, 5 points, crop squares"),
        _with_caption(_crop_tile(image, template[0], landmarks[0], template=True),
                      f"2 template alignment, {CROP} px (GFP-GAN, GPEN)"),
        _with_caption(_crop_tile(image, ffhq[0], landmarks[0], template=False),
                      f"3 FFHQ alignment, {CROP} px (68 landmarks)"),
        _with_caption(_mask_tile(image, paste_mask(image, landmarks), template_quads),
                      "4 paste-back mask (region=hull) in the crop square"),
    ]
    return np.concatenate([np.concatenate(tiles[:2], axis=1), np.concatenate(tiles[2:], axis=1)])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m facezoo.faces.figure",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the picture to write (.png, .jpg ...)")
    parser.add_argument("--input", type=Path, help="an RGB photo (default: scikit-image's astronaut)")
    args = parser.parse_args(argv)
    return run_cli(_write, args.out, args.input)


def _write(out: Path, photo: Path | None) -> int:
    image = skimage.data.astronaut() if photo is None else read_rgb_uint8(photo)
    write_image(out, pipeline_figure(image, DlibDetector().detect(image)))
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
