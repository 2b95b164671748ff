"""Landmark distance (src/metrics/landmark_distance.py): the mean point error over the inter-ocular distance;
0 for the same face, growing as the face is shifted (the astronaut's face, scikit-image, at 160 px)."""

import cv2
import numpy as np
import pytest
import skimage.data

from facezoo.faces.detector import DlibDetector
from facezoo.faces.landmarks import eye_distance
from facezoo.metrics.landmark_distance import LandmarkDistance, landmark_distance
from facezoo.utils.errors import DataError


def test_the_distance_is_the_mean_point_error_over_the_eye_distance():
    reference = np.random.default_rng(0).uniform(0, 100, (68, 2))
    moved = reference + [3.0, 4.0]  # every point 5 px away
    assert landmark_distance(reference, reference) == 0.0
    assert landmark_distance(moved, reference) == pytest.approx(5.0 / eye_distance(reference))
    with pytest.raises(DataError, match="eye centres coincide"):
        landmark_distance(moved, np.zeros((68, 2)))


def test_lmd_is_zero_for_the_same_face_and_grows_when_the_face_is_shifted():
    image = cv2.resize(skimage.data.astronaut()[20:250, 110:330], (160, 160), interpolation=cv2.INTER_AREA)
    (face,) = DlibDetector(recall=False).detect(image)
    lmd = LandmarkDistance()
    assert lmd(image, image, face.box) == 0.0
    shifted = [lmd(np.roll(image, dx, axis=1), image, face.box) for dx in (2, 5, 10)]
    assert 0 < shifted[0] < shifted[1] < shifted[2]
    eyes = float(eye_distance(face.landmarks))
    assert shifted[2] == pytest.approx(10 / eyes, rel=0.3)  # the points follow the face
