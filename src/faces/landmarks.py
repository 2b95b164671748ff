"""The 68-point iBUG layout that dlib's shape predictor follows, and the few measures derived from it.

Indices (0-based, iBUG 300-W order): jaw 0-16, brows 17-26, nose 27-35 (tip 30), eyes 36-41 and 42-47,
mouth 48-67 (corners 48 and 54). The eye 36-41 is the subject's right eye, which lies on the image's left in
a frontal face; "left" below always means the smaller x in the image, as in facexlib.

Pure numpy, no dlib: every function works on (..., 68, 2) arrays of (x, y) pixels.
"""

import numpy as np

from facezoo.utils.errors import DataError

EYE_IMAGE_LEFT = slice(36, 42)
EYE_IMAGE_RIGHT = slice(42, 48)
NOSE_TIP = 30
MOUTH_IMAGE_LEFT = 48
MOUTH_IMAGE_RIGHT = 54
JAW_ENDS = (0, 16)


def _check(landmarks: np.ndarray) -> np.ndarray:
    landmarks = np.asarray(landmarks)
    if landmarks.ndim < 2 or landmarks.shape[-2:] != (68, 2):
        raise DataError(f"landmarks of shape {landmarks.shape}: expected (..., 68, 2) iBUG points")
    return landmarks


def eye_centres(landmarks: np.ndarray) -> np.ndarray:
    """(..., 2, 2): the centres (means of the six points) of the image-left and image-right eyes."""
    landmarks = _check(landmarks)
    left, right = landmarks[..., EYE_IMAGE_LEFT, :], landmarks[..., EYE_IMAGE_RIGHT, :]
    return np.stack([left.mean(-2), right.mean(-2)], -2)


def five_points(landmarks: np.ndarray) -> np.ndarray:
    """(..., 68, 2) -> (..., 5, 2) in facexlib's order: left eye centre, right eye centre, nose tip, left
    mouth corner, right mouth corner ("left" = smaller x in the image).

    The order is that of facexlib's 5-point FFHQ template (``FaceRestoreHelper.face_template``, left eye at
    x 193, right eye at x 319 of 512), which GFP-GAN / GPEN inference align to; facexlib's own 68-point rule
    (``align_crop_face_landmarks`` in ``facexlib/utils/face_utils.py``) takes the eyes as the means of 36-41
    and 42-47 and the mouth corners as 48 and 54; the nose tip is iBUG point 30.
    """
    landmarks = _check(landmarks)
    eyes = eye_centres(landmarks)
    rest = landmarks[..., [NOSE_TIP, MOUTH_IMAGE_LEFT, MOUTH_IMAGE_RIGHT], :]
    return np.concatenate([eyes, rest.astype(eyes.dtype)], -2)


def eye_distance(landmarks: np.ndarray) -> np.ndarray:
    """(...,): the distance between the two eye centres, in pixels."""
    left, right = np.moveaxis(eye_centres(landmarks), -2, 0)
    return np.hypot(*np.moveaxis(right - left, -1, 0))


def roll_degrees(landmarks: np.ndarray) -> np.ndarray:
    """(...,): the angle of the line from the left to the right eye centre, in degrees; positive when the
    image-right eye is lower (y grows downwards), i.e. the face is turned clockwise on screen."""
    left, right = np.moveaxis(eye_centres(landmarks), -2, 0)
    dx, dy = np.moveaxis(right - left, -1, 0)
    return np.degrees(np.arctan2(dy, dx))


def centre_and_size(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(..., 2) centre (mean of the 68 points) and (...,) size (jaw width, points 0 to 16): for a frontal face
    about the side of dlib's detection box."""
    landmarks = _check(landmarks)
    a, b = JAW_ENDS
    width = landmarks[..., b, :] - landmarks[..., a, :]
    return landmarks.mean(-2), np.hypot(*np.moveaxis(width, -1, 0))
