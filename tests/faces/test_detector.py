"""Face detection and 68 landmarks with dlib (src/faces/detector.py, landmarks.py, recall.py) on
scikit-image's astronaut photo, where dlib's HOG detector finds the face at (175, 76)-(265, 166) and one false
positive."""

import copy

import cv2
import numpy as np
import pytest
import skimage.data

from facezoo.faces.detector import DlibDetector, Face, drop_small_and_nested, five_points
from facezoo.faces.landmarks import eye_distance
from facezoo.faces.recall import detection_recall
from facezoo.utils.errors import ConfigError, DataError, WeightsNotFoundError
from facezoo.weights.resolver import KNOWN_WEIGHTS, PRETRAINED_ENV, resolve

ASTRONAUT_BOX = (175, 76, 265, 166)


@pytest.fixture(scope="module")
def detector() -> DlibDetector:
    return DlibDetector()  # hog, upsample 1, min_face 32, recall on


def variant(detector: DlibDetector, **options) -> DlibDetector:
    """The same loaded models with other options (loading the 68-point predictor takes ~0.8 s)."""
    other = copy.copy(detector)
    for name, value in options.items():
        setattr(other, name, value)
    return other


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return skimage.data.astronaut()


def turned(image: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray]:
    height, width = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), angle, 1.0)
    return cv2.warpAffine(image, matrix, (width, height), borderMode=cv2.BORDER_REPLICATE), matrix


def landmark_error(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean point distance over the true eye distance."""
    return float(np.hypot(*(found - truth).T).mean() / eye_distance(truth))


def test_astronaut_face_with_plausible_landmarks(detector, astronaut):
    faces, report = detector.detect_with_report(astronaut)
    assert report == {"small": 0, "nested": 0, "not_face_like": 1, "retried": False}  # the HOG false positive
    assert len(faces) == 1
    face = faces[0]
    assert isinstance(face, Face) and face.score > 0.5
    assert np.allclose(face.box, ASTRONAUT_BOX, atol=3)
    points = face.landmarks
    assert points.shape == (68, 2) and points.dtype == np.float32
    x0, y0, x1, y1 = face.box
    margin = 0.15 * (x1 - x0)
    assert (points[:, 0] > x0 - margin).all() and (points[:, 0] < x1 + margin).all()
    assert (points[:, 1] > y0 - margin).all() and (points[:, 1] < y1 + margin).all()
    eyes, nose, mouth = points[36:48], points[30], points[48:68]
    assert eyes[:, 1].max() < nose[1] < mouth[:, 1].min()  # eyes above the nose tip above the mouth
    assert points[36:42, 0].mean() < nose[0] < points[42:48, 0].mean()  # image-left eye first
    assert np.allclose(points[[36, 45, 48, 54]], [(195, 101), (255, 105), (201, 139), (246, 141)], atol=3)
    assert detector.detect(astronaut)[0].box == face.box


def test_tilted_degraded_face_is_found_only_by_the_retries(detector, astronaut):
    truth = detector.detect(astronaut)[0].landmarks
    image, matrix = turned(astronaut, -25)
    blurred = cv2.GaussianBlur(image, (0, 0), 3.0)
    image = cv2.resize(cv2.resize(blurred, (256, 256), interpolation=cv2.INTER_AREA), (512, 512))
    fast_faces, fast_report = variant(detector, recall=False).detect_with_report(image)
    assert fast_faces == [] and not fast_report["retried"]
    faces, report = detector.detect_with_report(image)
    assert report["retried"] and len(faces) == 1
    assert landmark_error(faces[0].landmarks, truth @ matrix[:, :2].T + matrix[:, 2]) < 0.08


@pytest.mark.parametrize("angle", [55, -60])
def test_strongly_tilted_face_is_found_on_a_rotated_copy(detector, astronaut, angle):
    truth = detector.detect(astronaut)[0].landmarks
    image, matrix = turned(astronaut, angle)
    assert variant(detector, recall=False).detect(image) == []  # beyond the HOG's own tilted filters
    faces = detector.detect(image)
    assert len(faces) == 1
    expected = truth @ matrix[:, :2].T + matrix[:, 2]
    assert landmark_error(faces[0].landmarks, expected) < 0.015  # upright fit: 0.008-0.01; one round: 0.018
    x0, y0, x1, y1 = faces[0].box  # the box: the face's scale around its centre
    assert np.hypot((x0 + x1) / 2 - expected[:, 0].mean(), (y0 + y1) / 2 - expected[:, 1].mean()) < 15
    assert 0.8 < (x1 - x0) / (ASTRONAUT_BOX[2] - ASTRONAUT_BOX[0]) < 1.25


def test_min_face_skips_and_counts_without_retrying(detector, astronaut):
    faces, report = variant(detector, min_face=100).detect_with_report(astronaut)
    assert faces == []
    assert report == {"small": 1, "nested": 0, "not_face_like": 1, "retried": False}


def _face(x0: float, y0: float, side: float) -> Face:
    return Face((x0, y0, x0 + side, y0 + side), np.zeros((68, 2), np.float32), 1.0)


def test_nested_and_small_faces_are_dropped_and_counted():
    big, eye, beside, tiny = _face(100, 100, 200), _face(140, 150, 50), _face(250, 120, 120), _face(0, 0, 20)
    kept, small, nested = drop_small_and_nested([big, eye, beside, tiny], min_face=32)
    assert kept == [big, beside] and (small, nested) == (1, 1)  # `beside` overlaps big but is not inside it
    assert drop_small_and_nested([eye], min_face=32) == ([eye], 0, 0)
    assert drop_small_and_nested([big, eye], min_face=60) == ([big], 1, 0)


def test_no_face_photo(detector):
    faces, report = detector.detect_with_report(skimage.data.chelsea())  # a cat
    assert faces == [] and report["retried"]


def test_five_points_from_68(detector, astronaut):
    rng = np.random.default_rng(0)
    points = rng.uniform(0, 100, (2, 3, 68, 2)).astype(np.float32)
    five = five_points(points)
    assert five.shape == (2, 3, 5, 2)
    expected = np.stack([points[..., 36:42, :].mean(-2), points[..., 42:48, :].mean(-2), points[..., 30, :],
                         points[..., 48, :], points[..., 54, :]], -2)
    assert np.allclose(five, expected)
    assert np.allclose(five_points(points[0, 0]), expected[0, 0])
    left_eye, right_eye, nose, left_mouth, right_mouth = five_points(detector.detect(astronaut)[0].landmarks)
    assert left_eye[0] < right_eye[0] and left_mouth[0] < right_mouth[0]  # facexlib's "left": smaller x
    assert max(left_eye[1], right_eye[1]) < nose[1] < min(left_mouth[1], right_mouth[1])
    with pytest.raises(DataError, match=r"\(\.\.\., 68, 2\)"):
        five_points(np.zeros((5, 2)))


def test_input_contract(detector, astronaut):
    gray = cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY)
    as_rgb = detector.detect(np.repeat(gray[..., None], 3, axis=2))
    assert len(as_rgb) == 1
    for image in (gray, gray[..., None]):
        assert [f.box for f in detector.detect(image)] == [f.box for f in as_rgb]
    rgba = np.concatenate([astronaut, np.full_like(astronaut[..., :1], 255)], axis=2)
    with pytest.raises(DataError, match="RGBA"):
        detector.detect(rgba)
    with pytest.raises(DataError, match="uint8"):
        detector.detect(astronaut.astype(np.float32) / 255)
    with pytest.raises(DataError, match="list"):
        detector.detect(astronaut.tolist())
    with pytest.raises(DataError, match=r"shape \(0, 5, 3\)"):
        detector.detect(astronaut[:0, :5])


@pytest.mark.parametrize("options, option", [
    (dict(model="mtcnn"), "detector.model"), (dict(upsample=-1), "detector.upsample"),
    (dict(min_face="big"), "detector.min_face"), (dict(max_side=10), "detector.max_side"),
])
def test_bad_options(options, option):
    with pytest.raises(ConfigError, match=option):
        DlibDetector(**options)


def test_dlib_files_resolve_from_the_installed_package_unless_given(tmp_path, monkeypatch):
    monkeypatch.setenv(PRETRAINED_ENV, str(tmp_path / "pretrained"))
    for key in ("dlib_landmarks68", "dlib_mmod_detector"):
        found = resolve(key)
        assert found.parent.parent.name == "face_recognition_models"
        assert found.name == KNOWN_WEIGHTS[key].filename
    own = tmp_path / "pretrained" / KNOWN_WEIGHTS["dlib_landmarks68"].filename
    own.parent.mkdir()
    own.write_bytes(b"")
    assert resolve("dlib_landmarks68") == own  # the pretrained folder comes first
    explicit = tmp_path / "elsewhere.dat"
    explicit.write_bytes(b"")
    assert resolve("dlib_landmarks68", explicit=explicit) == explicit
    with pytest.raises(WeightsNotFoundError, match="missing.dat does not exist"):
        DlibDetector(landmarks=tmp_path / "missing.dat")
    own.unlink()
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)  # the package not installed
    assert resolve("dlib_landmarks68", required=False) is None


def test_detection_recall_rows(detector):
    fast = variant(detector, recall=False)
    rows = detection_recall({"fast": fast}, strengths=("clean", "mild"), angles=(0, 30), samples=1,
                            no_face=False)
    assert [(r["strength"], r["angle"]) for r in rows] == [("clean", 0), ("clean", 30), ("mild", 0),
                                                           ("mild", 30)]
    clean = rows[:2]
    assert all(r["images"] == 1 and r["recall"] == 1.0 and r["false_positives"] == 0 for r in clean)
    assert all(r["landmark_error"] < 0.05 and r["seconds_per_image"] > 0 for r in clean)
