"""Identity distance with dlib's face descriptor (src/metrics/face_descriptor.py), on the astronaut's face (a
public-domain photo shipped with scikit-image) at 160 px: 0 for the same image, growing with the blur."""

import cv2
import numpy as np
import pytest
import skimage.data

from facezoo.faces.detector import DlibDetector
from facezoo.metrics.face_descriptor import FaceDescriptor
from facezoo.utils.errors import WeightsNotFoundError


@pytest.fixture(scope="module")
def detector():
    return DlibDetector(recall=False)


@pytest.fixture(scope="module")
def descriptor():
    return FaceDescriptor()


@pytest.fixture(scope="module")
def face(detector):
    """The astronaut's head at 160 px and its detected face (box about 62 px)."""
    image = cv2.resize(skimage.data.astronaut()[20:250, 110:330], (160, 160), interpolation=cv2.INTER_AREA)
    (found,) = detector.detect(image)
    return image, found


def test_identity_distance_is_zero_for_the_same_face_and_grows_with_the_degradation(face, descriptor):
    image, found = face
    assert descriptor.distance(image, image, found.landmarks) == 0.0
    distances = [descriptor.distance(cv2.GaussianBlur(image, (0, 0), sigma), image, found.landmarks)
                 for sigma in (1.0, 3.0, 8.0)]
    assert 0 < distances[0] < distances[1] < distances[2]
    assert distances[0] < 0.6  # a light blur keeps the person (dlib's threshold)


def test_a_face_without_detection_still_gets_a_distance(face, detector, descriptor):
    image, found = face
    noise = np.random.default_rng(0).integers(0, 256, image.shape, dtype=np.uint8)
    assert detector.detect(noise) == []
    assert descriptor.distance(noise, image, found.landmarks) > 0.6  # at the HQ landmarks: no drop


def test_a_wrong_descriptor_path_is_named(tmp_path):
    with pytest.raises(WeightsNotFoundError, match="nope.dat"):
        FaceDescriptor(tmp_path / "nope.dat")
