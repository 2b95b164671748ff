"""Face detection and 68-point landmarks with dlib, offline (the metrics face_descriptor and landmark_distance
use dlib too, for facezoo-compare).

`DlibDetector` finds the faces of an (H, W, 3) uint8 RGB image and returns `Face`s (box, 68 landmarks in
iBUG order, score), sorted by box x0 then y0. How a photo is searched:

1. the fast pass: dlib's HOG detector (``model="hog"``; or its MMOD CNN, ``"cnn"``) at ``upsample``, with
   dlib's default threshold, on a copy at most ``max_side`` px long (the landmarks use the full image);
2. each detection is fitted: 68 landmarks are predicted on a crop turned upright by the face's eye line and
   scaled to a fixed size, again until the roll left is under 2 degrees, so that tilted faces get landmarks
   as good as upright ones (dlib's predictor is trained on upright faces);
3. face-likeness: on a face the predicted points barely move when the box is shifted by 8 % or scaled by
   10 %, on a non-face they wander (mean move over 6 % of the eye distance); that, or an eye distance absurd
   for the box, makes a detection "not_face_like" (the HOG detector's false positive on the astronaut photo);
4. faces whose box side is under ``min_face`` px are skipped as "small"; a face whose box lies inside a
   larger face's box (an eye taken as a face) is dropped as "nested";
5. recall (``recall=True``): degraded and tilted faces are what the fast pass misses. When it saw no face
   at all, the photo is searched again once more upsampled and on copies rotated by ±15 and ±30 degrees
   (boxes and landmarks mapped back), at a lower HOG threshold, on a copy at most 1024 px long (a 12 MP
   photo without faces then costs 3 s more, not 11); each face-like detection of these retries
   must also be confirmed by dlib's CNN detector on its upright crop (about 0.15 s each), which the
   rotated copies' false positives rarely are. ``cnn_fallback=True`` then also runs the CNN detector on the
   whole photo (about 7 s per 512 px photo on a CPU). For ``model="cnn"`` the retries are the rotations.

`detect_with_report` also returns how many detections were skipped and why; `facezoo.faces.recall` measures
recall and false positives of the fast pass against the retries.

Weights (`facezoo.weights.resolver`): ``landmarks`` and ``cnn_weights`` take a path (or a resolver key);
by default the pretrained folders are searched, then the installed ``face_recognition_models`` package.
"""

from dataclasses import dataclass
from typing import Protocol

import cv2
import dlib
import numpy as np

from facezoo.faces.landmarks import centre_and_size, eye_distance, five_points, roll_degrees
from facezoo.utils.errors import ConfigError, DataError
from facezoo.weights.resolver import KNOWN_WEIGHTS, resolve

__all__ = ["DlibDetector", "Face", "FaceDetector", "five_points"]

LANDMARKS_KEY = "dlib_landmarks68"
CNN_KEY = "dlib_mmod_detector"

FIT_SIDE = 200  # the face's side in the crop the landmarks are fitted on (the crop is twice as large)
FIT_ROUNDS = 3
UPRIGHT_DEGREES = 2.0
JITTERS = ((0.08, 0.0, 1.0), (-0.08, 0.0, 1.0), (0.0, 0.08, 1.0), (0.0, -0.08, 1.0), (0.0, 0.0, 1.1),
           (0.0, 0.0, 0.9))  # (dx, dy, scale) of the box, in box sides
STABILITY_MAX = 0.06  # mean landmark move under JITTERS / eye distance, above which it is no face
EYES_TO_BOX = (0.2, 0.8)  # plausible eye distance / box side
RETRY_ANGLES = (15.0, -15.0, 30.0, -30.0)
RETRY_THRESHOLD = -0.5  # HOG's threshold in the retries (its default is 0)
RETRY_SIDE = 1024  # the retries search a copy at most this long: they look for degraded faces, not small ones
VERIFY_SIDE = 160  # the upright crop's side for the CNN confirmation (the face about 80 px)
SAME_FACE_IOU = 0.5
NESTED_INSIDE = 0.8  # the share of a face's box inside a larger face's box that makes it nested


@dataclass(frozen=True, eq=False)  # compared and hashed by identity (the landmarks are an array)
class Face:
    """One detected face, in the pixels of the image it was found in."""

    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in image pixels
    landmarks: np.ndarray  # (68, 2) float32 (x, y) in image pixels, dlib / iBUG order
    score: float  # the detector's: HOG's margin (negative for some retry detections) or the CNN's confidence


class FaceDetector(Protocol):
    def detect(self, image: np.ndarray) -> list[Face]:
        """Faces of an (H, W, 3) uint8 RGB image, sorted by box x0 then y0."""
        ...


@dataclass(frozen=True)
class _Candidate:
    """A detection mapped back to the image: a square box and the roll of the pass that found it."""

    centre: tuple[float, float]
    side: float
    angle: float  # degrees the image was turned (counter-clockwise) for the detector to see the face upright
    score: float

    @property
    def box(self) -> tuple[float, float, float, float]:
        (x, y), half = self.centre, self.side / 2
        return (x - half, y - half, x + half, y + half)


def as_rgb_uint8(image: np.ndarray) -> np.ndarray:
    """The detector's input contract: (H, W, 3) uint8 RGB; gray (H, W) or (H, W, 1) is repeated to RGB."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        what = image.dtype if isinstance(image, np.ndarray) else type(image).__name__
        raise DataError(f"face detection: expected an (H, W, 3) uint8 RGB image, got {what}")
    if image.ndim == 2 or image.ndim == 3 and image.shape[2] == 1:
        image = np.repeat(image.reshape(*image.shape[:2], 1), 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3 or not image.size:
        raise DataError(
            f"face detection: expected an (H, W, 3) uint8 RGB image, got shape {image.shape} "
            "(RGBA: composite it first, as facezoo.utils.image_io.read_rgb_uint8 does)"
        )
    return np.ascontiguousarray(image)


def _apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:, :2].T + matrix[:, 2]


def _rotation(height: int, width: int, angle: float) -> tuple[np.ndarray, tuple[int, int]]:
    """The image turned by `angle` degrees counter-clockwise on a canvas that holds all of it."""
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), angle, 1.0)
    cos, sin = abs(matrix[0, 0]), abs(matrix[0, 1])
    size = (int(np.ceil(height * sin + width * cos)), int(np.ceil(height * cos + width * sin)))
    matrix[:, 2] += (size[0] - width) / 2, (size[1] - height) / 2
    return matrix, size


def _to_upright(centre, side: float, angle: float) -> np.ndarray:
    """Image -> fitting crop: the face at the crop's centre, turned upright, its side FIT_SIDE."""
    matrix = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), float(angle), FIT_SIDE / side)
    matrix[:, 2] += FIT_SIDE - np.asarray(centre, float)
    return matrix


def _rect(x: float, y: float, side: float) -> dlib.rectangle:
    half = side / 2
    return dlib.rectangle(round(x - half), round(y - half), round(x + half), round(y + half))


def _landmark_box(landmarks: np.ndarray) -> tuple[float, float, float, float]:
    (x, y), side = centre_and_size(landmarks)
    return (x - side / 2, y - side / 2, x + side / 2, y + side / 2)


def _iou(a, b) -> float:
    inter = _intersection(a, b)
    return inter / (_area(a) + _area(b) - inter)


def _area(box) -> float:
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


def _intersection(a, b) -> float:
    return _area((max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])))


def drop_small_and_nested(faces: list[Face], min_face: float) -> tuple[list[Face], int, int]:
    """(kept faces, how many were smaller than `min_face` px, how many lay inside a larger face's box): a
    face is nested when NESTED_INSIDE of its box's area lies inside the box of a larger kept-size face."""
    sized = [f for f in faces if f.box[2] - f.box[0] >= min_face]
    kept = [f for f in sized if not any(
        _area(f.box) < _area(other.box) and _intersection(f.box, other.box) >= NESTED_INSIDE * _area(f.box)
        for other in sized)]
    return kept, len(faces) - len(sized), len(sized) - len(kept)


def _weights(value, key: str, option: str):
    """A path, a resolver key, or None (the resolver's search) -> the file's path."""
    if isinstance(value, str) and value in KNOWN_WEIGHTS:
        return resolve(value, option=option)
    return resolve(key, explicit=value, option=option)


class DlibDetector:
    """dlib's face detector and 68-point shape predictor behind `FaceDetector` (see the module's docstring).

    Args:
        model: "hog" (fast, the default) or "cnn" (dlib's MMOD CNN: better on hard faces, slow on a CPU).
        upsample: how many times the image is doubled before detecting (1: faces from about 40 px).
        min_face: faces whose box side is smaller (px) are skipped and counted as "small".
        landmarks: the 68-point predictor file (a path or a resolver key); None: the resolver's search.
        recall: retry upsampled and rotated where the fast pass saw no face.
        cnn_weights: the MMOD CNN file (a path or a resolver key); None: the resolver's search.
        cnn_fallback: after the retries found nothing, also run the CNN detector on the whole image.
        max_side: detect on a copy whose longer side is at most this (px; None: the image itself), landmarks
            are fitted on the image: a 12 MP photo takes 4 s and 0.7 GB at upsample 1, its retries far more.
    """

    def __init__(self, model: str = "hog", upsample: int = 1, min_face: float = 32, landmarks=None,
                 recall: bool = True, cnn_weights=None, cnn_fallback: bool = False,
                 max_side: int | None = 2048):
        if model not in ("hog", "cnn"):
            raise ConfigError(f"detector.model={model!r}: expected hog or cnn")
        if isinstance(upsample, bool) or not isinstance(upsample, int) or not 0 <= upsample <= 4:
            raise ConfigError(f"detector.upsample={upsample!r}: expected an integer from 0 to 4")
        if isinstance(min_face, bool) or not isinstance(min_face, int | float) or min_face < 0:
            raise ConfigError(f"detector.min_face={min_face!r}: expected a side in pixels (>= 0)")
        bad_side = isinstance(max_side, bool) or not isinstance(max_side, int) or max_side < 64
        if max_side is not None and bad_side:
            raise ConfigError(f"detector.max_side={max_side!r}: expected null or a side in pixels (>= 64)")
        self.model, self.upsample, self.min_face, self.max_side = model, upsample, float(min_face), max_side
        self.recall, self.cnn_fallback = bool(recall), bool(cnn_fallback)
        self._predictor = dlib.shape_predictor(str(_weights(landmarks, LANDMARKS_KEY, "detector.landmarks")))
        needs_cnn = model == "cnn" or self.recall or self.cnn_fallback
        self._cnn_path = _weights(cnn_weights, CNN_KEY, "detector.cnn_weights") if needs_cnn else None
        self._cnn_model = None
        self._hog = dlib.get_frontal_face_detector()

    # -- public ---------------------------------------------------------------------------------------------
    def detect(self, image: np.ndarray) -> list[Face]:
        return self.detect_with_report(image)[0]

    def detect_with_report(self, image: np.ndarray, retry: bool = True) -> tuple[list[Face], dict]:
        """Faces (sorted by box x0 then y0) and what was skipped: ``{"small": n, "nested": n,
        "not_face_like": n, "retried": bool}`` (retried: the fast pass found no face, the photo was searched
        again). `retry=False`: the fast pass only, for this image (a video frame with no face to look for)."""
        image = as_rgb_uint8(image)
        stages = [(lambda im: self._candidates(im, self.upsample, 0.0, 0.0), False, self.max_side)]
        if self.recall and retry:  # (search, confirm by the CNN, the longest side searched)
            retry_side = min(RETRY_SIDE, self.max_side or RETRY_SIDE)
            stages.append((self._retry_candidates, self.model == "hog", retry_side))
        if self.cnn_fallback:
            stages.append((lambda im: self._cnn_candidates(im, self.upsample, 0.0), False, self.max_side))
        fitted, rejected, searches = [], [], 0
        for search, confirm, side in stages:
            if fitted:
                break
            searches += 1
            scale = min(1.0, side / max(image.shape[:2])) if side else 1.0
            work = image if scale == 1 else cv2.resize(image, None, fx=scale, fy=scale,
                                                       interpolation=cv2.INTER_AREA)
            found = [_Candidate((c.centre[0] / scale, c.centre[1] / scale), c.side / scale, c.angle, c.score)
                     for c in search(work)]
            fitted, more = self._evaluate(image, found, [c.box for c in rejected], confirm)
            rejected += more
        found_faces = [Face(c.box, landmarks, c.score) for c, landmarks in fitted]
        faces, small, nested = drop_small_and_nested(found_faces, self.min_face)
        report = {"small": small, "nested": nested, "not_face_like": sum(c.score >= 0 for c in rejected),
                  "retried": searches > 1}
        return sorted(faces, key=lambda f: (f.box[0], f.box[1])), report

    # -- candidates -----------------------------------------------------------------------------------------
    def _candidates(self, image: np.ndarray, upsample: int, angle: float, threshold: float) -> list:
        if self.model == "cnn":
            return self._cnn_candidates(image, upsample, angle)
        turned, inverse = self._turned(image, angle)
        rects, scores, _ = self._hog.run(turned, upsample, threshold)
        boxes = [(r.left(), r.top(), r.right(), r.bottom()) for r in rects]
        return self._mapped(image, inverse, angle, boxes, scores)

    def _cnn_candidates(self, image: np.ndarray, upsample: int, angle: float) -> list[_Candidate]:
        turned, inverse = self._turned(image, angle)
        found = self._cnn()(turned, upsample)
        boxes = [(d.rect.left(), d.rect.top(), d.rect.right(), d.rect.bottom()) for d in found]
        return self._mapped(image, inverse, angle, boxes, [d.confidence for d in found])

    def _retry_candidates(self, image: np.ndarray) -> list[_Candidate]:
        if self.model == "cnn":  # the CNN finds small faces already; upsampling it costs 4x its 7 s
            return [c for a in RETRY_ANGLES for c in self._cnn_candidates(image, self.upsample, a)]
        found = self._candidates(image, self.upsample + 1, 0.0, RETRY_THRESHOLD)
        for angle in RETRY_ANGLES:
            found += self._candidates(image, self.upsample, angle, RETRY_THRESHOLD)
        return found

    @staticmethod
    def _turned(image: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray | None]:
        if not angle:
            return image, None
        matrix, size = _rotation(*image.shape[:2], angle)
        turned = cv2.warpAffine(image, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        return turned, cv2.invertAffineTransform(matrix)

    @staticmethod
    def _mapped(image, inverse, angle, boxes, scores) -> list[_Candidate]:
        """Boxes found on `image` turned by `angle` -> candidates on `image` (`inverse`: turned -> image)."""
        height, width = image.shape[:2]
        found = []
        for (x0, y0, x1, y1), score in zip(boxes, scores, strict=True):
            centre = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
            if inverse is not None:
                centre = _apply(inverse, centre)
                if not (0 <= centre[0] < width and 0 <= centre[1] < height):  # on the canvas's padding
                    continue
            x, y = float(centre[0]), float(centre[1])
            found.append(_Candidate((x, y), float(x1 - x0), angle, float(score)))
        return found

    # -- fitting and filtering ------------------------------------------------------------------------------
    def _evaluate(self, image, candidates: list[_Candidate], seen: list, confirm: bool) -> tuple[list, list]:
        """Fit the candidates that are no duplicate (of a stronger one or of a box in `seen`); → the
        (candidate, landmarks) of faces and the rejected candidates."""
        kept_boxes, fitted, rejected = list(seen), [], []
        for cand in sorted(candidates, key=lambda c: -c.score):
            if any(_iou(cand.box, box) > SAME_FACE_IOU for box in kept_boxes):
                continue
            kept_boxes.append(cand.box)
            landmarks, face_like, crop = self._fit(image, cand)
            if not face_like or confirm and not self._confirmed(crop):
                rejected.append(cand)
            elif all(_iou(_landmark_box(landmarks), _landmark_box(lm)) <= SAME_FACE_IOU for _, lm in fitted):
                fitted.append((cand, landmarks))  # else: a face found again from another box
        return fitted, rejected

    def _fit(self, image: np.ndarray, cand: _Candidate) -> tuple[np.ndarray, bool, np.ndarray]:
        """Landmarks fitted upright (see the module's docstring, step 2); → (68, 2) image pixels, whether
        they are face-like, the upright crop."""
        centre, side, angle = np.array(cand.centre), cand.side, cand.angle
        for _ in range(FIT_ROUNDS):
            to_crop = _to_upright(centre, side, angle)
            crop = cv2.warpAffine(image, to_crop, (2 * FIT_SIDE, 2 * FIT_SIDE), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_REPLICATE)
            upright = self._predict(crop, FIT_SIDE, FIT_SIDE, FIT_SIDE)
            landmarks = _apply(cv2.invertAffineTransform(to_crop), upright)
            residual = float(roll_degrees(upright))
            if abs(residual) < UPRIGHT_DEGREES:
                break
            angle += residual
            centre, side = centre_and_size(landmarks)
        eyes = float(eye_distance(upright))
        moves = [np.hypot(*(self._predict(crop, FIT_SIDE * (1 + dx), FIT_SIDE * (1 + dy), FIT_SIDE * s)
                            - upright).T).mean() for dx, dy, s in JITTERS]
        plausible = EYES_TO_BOX[0] <= eyes / FIT_SIDE * side / cand.side <= EYES_TO_BOX[1]
        face_like = plausible and float(np.mean(moves)) <= STABILITY_MAX * eyes
        return landmarks.astype(np.float32), face_like, crop

    def _predict(self, crop: np.ndarray, x: float, y: float, side: float) -> np.ndarray:
        shape = self._predictor(crop, _rect(x, y, side))
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)

    def _cnn(self):
        if self._cnn_model is None:
            self._cnn_model = dlib.cnn_face_detection_model_v1(str(self._cnn_path))
        return self._cnn_model

    def _confirmed(self, crop: np.ndarray) -> bool:
        """The CNN detector finds a face on the upright crop (the face about 80 px)."""
        small = cv2.resize(crop, (VERIFY_SIDE, VERIFY_SIDE), interpolation=cv2.INTER_AREA)
        return len(self._cnn()(small, 0)) > 0

