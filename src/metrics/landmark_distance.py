"""Landmark distance (LMD): how far a restored face's 68 landmarks lie from its ground truth's.

LMD = mean over the 68 iBUG points of the Euclidean distance between the points predicted on the output and
on the ground truth, divided by the ground truth's inter-ocular distance (between the two eye centres, the
means of points 36-41 and 42-47: `facezoo.faces.landmarks.eye_distance`), so it is a fraction of the eye
distance, comparable across image sizes (0: the same landmarks; 0.1: a tenth of the eye distance on average).

Both point sets are predicted by dlib's 68-point shape predictor in the SAME box, the ground-truth face's
detection box: the output is never searched by the detector, so a restoration that no longer looks like a face
still gets a (large) value instead of dropping out, and a face moved inside the image moves its points.
"""

from pathlib import Path

import dlib
import numpy as np

from facezoo.faces.detector import LANDMARKS_KEY, as_rgb_uint8
from facezoo.faces.landmarks import eye_distance
from facezoo.utils.errors import DataError
from facezoo.weights.resolver import resolve


def landmark_distance(points: np.ndarray, reference: np.ndarray) -> float:
    """Mean point distance of (68, 2) `points` to (68, 2) `reference`, over the reference's eye distance."""
    points, reference = np.asarray(points, np.float64), np.asarray(reference, np.float64)
    if points.shape != reference.shape:
        raise DataError(f"landmark distance: {points.shape} and {reference.shape} points differ in shape")
    eyes = float(eye_distance(reference))
    if not eyes > 0:
        raise DataError("landmark distance: the reference's eye centres coincide (no inter-ocular distance)")
    return float(np.hypot(*(points - reference).T).mean() / eyes)


class LandmarkDistance:
    """dlib's 68-point predictor run in a given box on the output and on the ground truth (module doc)."""

    def __init__(self, landmarks: str | Path | None = None) -> None:
        self.path = resolve(LANDMARKS_KEY, landmarks, option="metrics.landmarks")
        self._predictor = dlib.shape_predictor(str(self.path))

    def points(self, image: np.ndarray, box) -> np.ndarray:
        """(68, 2) landmarks of the face in `box` (x0, y0, x1, y1 pixels) of an (H, W, 3) uint8 image."""
        rect = dlib.rectangle(*(round(v) for v in box))
        shape = self._predictor(as_rgb_uint8(image), rect)
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)

    def __call__(self, image: np.ndarray, reference: np.ndarray, box) -> float:
        """LMD of `image` against `reference`, both predicted in the reference face's `box`."""
        return landmark_distance(self.points(image, box), self.points(reference, box))
