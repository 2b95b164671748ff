"""The pipeline picture (src/faces/figure.py) on scikit-image's astronaut: a 2 x 2 panel with the detected box
drawn, and the paste-back mask it shows is paste_back's weight: in [0, 1], inside the face hull only."""

import cv2
import numpy as np
import pytest
import skimage.data
from PIL import Image

from facezoo.faces.detector import DlibDetector
from facezoo.faces.figure import BOX, CAPTION, TILE, main, paste_mask, pipeline_figure
from facezoo.utils.errors import DataError


@pytest.fixture(scope="module")
def astronaut():
    image = skimage.data.astronaut()
    return image, DlibDetector(recall=False).detect(image)


def hull_region(landmarks: np.ndarray, shape: tuple, grow: int) -> np.ndarray:
    """The convex hull of landmarks 0-26 rasterised, grown (grow > 0) or shrunk (< 0) by |grow| pixels."""
    hull = cv2.convexHull(np.round(landmarks[:27] * 256).astype(np.int32))
    inside = cv2.fillConvexPoly(np.zeros(shape, np.uint8), hull, 1, lineType=cv2.LINE_8, shift=8)
    kernel = np.ones((2 * abs(grow) + 1,) * 2, np.uint8)
    return (cv2.dilate(inside, kernel) if grow > 0 else cv2.erode(inside, kernel)).astype(bool)


def test_the_panel_has_four_captioned_tiles_and_draws_the_detected_box(astronaut):
    image, faces = astronaut
    assert len(faces) == 1
    panel = pipeline_figure(image, faces)
    assert panel.shape == (2 * (CAPTION + TILE), 2 * TILE, 3) and panel.dtype == np.uint8
    x0, y0, x1, y1 = (round(v * TILE / image.shape[1]) for v in faces[0].box)  # the photo fills tile 1
    top_edge = panel[CAPTION + y0 - 2:CAPTION + y0 + 3, x0 + 5:x1 - 5]
    is_box = (top_edge == BOX).all(axis=-1)
    assert is_box.mean(axis=1).max() > 0.9  # a row of the box's colour along its top edge
    assert not (panel[CAPTION:CAPTION + TILE, :TILE] == BOX).all(axis=-1)[y1 + 10:].any()  # nothing below


def test_the_paste_mask_lies_in_the_face_hull(astronaut):
    image, faces = astronaut
    landmarks = faces[0].landmarks
    mask = paste_mask(image, landmarks[None])
    assert mask.shape == image.shape[:2] and mask.min() >= 0 and mask.max() <= 1
    assert (mask[hull_region(landmarks, mask.shape, -2)] > 0).all()
    assert mask[~hull_region(landmarks, mask.shape, 2)].max() == 0
    nose = np.round(landmarks[30]).astype(int)
    assert mask[nose[1], nose[0]] == pytest.approx(1.0, abs=1e-3)
    assert paste_mask(image, landmarks[None], region="crop").sum() > 1.5 * mask.sum()  # the whole square


def test_a_photo_without_a_face_is_refused_with_one_line(tmp_path, capsys):
    with pytest.raises(DataError, match="no face"):
        pipeline_figure(np.zeros((64, 64, 3), np.uint8), [])
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "out.jpg"), "--input", str(tmp_path / "missing.png")])
    assert exit_info.value.code == 2
    assert "missing.png" in capsys.readouterr().err and not (tmp_path / "out.jpg").exists()


def test_the_command_writes_the_picture(tmp_path):
    assert main([str(tmp_path / "pipeline.jpg")]) == 0  # the astronaut
    assert Image.open(tmp_path / "pipeline.jpg").size == (2 * TILE, 2 * (CAPTION + TILE))
