"""Identity distance with dlib's ResNet face descriptor: the Euclidean distance between the 128-d descriptors
of a restored face and of its ground truth (dlib's face-verification threshold: two photos of one person are
usually within 0.6).

Both descriptors are taken with the SAME 68 landmarks, those found on the ground-truth image: dlib aligns a
150 x 150 chip (padding 0.25) from the landmarks and describes it, so the distance measures what the method
changed inside the face, and a restoration on which the detector would find no face still gets a value
(detecting on the output would drop exactly the worst results).

The network file `dlib_face_recognition_resnet_model_v1.dat` is found offline by the resolver (key
`dlib_face_descriptor`): an explicit path, the pretrained folders, then the installed face-recognition-models
package.
"""

from pathlib import Path

import dlib
import numpy as np

from facezoo.faces.detector import as_rgb_uint8
from facezoo.utils.errors import DataError
from facezoo.weights.resolver import resolve

DESCRIPTOR_KEY = "dlib_face_descriptor"
PADDING = 0.25  # dlib's default chip padding
SAME_PERSON = 0.6  # dlib's documented threshold


def _shape(landmarks: np.ndarray) -> dlib.full_object_detection:
    points = np.asarray(landmarks, dtype=np.float64)
    if points.shape != (68, 2):
        raise DataError(f"face descriptor: expected (68, 2) landmarks, got shape {points.shape}")
    (x0, y0), (x1, y1) = points.min(0), points.max(0)
    box = dlib.rectangle(round(x0), round(y0), round(x1), round(y1))
    return dlib.full_object_detection(box, [dlib.point(round(x), round(y)) for x, y in points])


class FaceDescriptor:
    """dlib's ResNet face descriptor (`dlib.face_recognition_model_v1`) of faces given by 68 landmarks."""

    def __init__(self, path: str | Path | None = None, option: str = "metrics.dlib_descriptor") -> None:
        self.path = resolve(DESCRIPTOR_KEY, explicit=path, option=option)
        self._net = dlib.face_recognition_model_v1(str(self.path))

    def describe(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """The (128,) descriptor of the face at (68, 2) `landmarks` in an (H, W, 3) uint8 image."""
        chip_face = _shape(landmarks)
        return np.asarray(self._net.compute_face_descriptor(as_rgb_uint8(image), chip_face, 0, PADDING))

    def distance(self, image: np.ndarray, reference: np.ndarray, landmarks: np.ndarray) -> float:
        """Euclidean distance of the descriptors of `image` and `reference`, both at the reference's
        `landmarks` (0 for the same image; dlib calls under 0.6 the same person)."""
        return float(np.linalg.norm(self.describe(image, landmarks) - self.describe(reference, landmarks)))
