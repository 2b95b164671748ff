"""How well the face detector does on degraded, tilted photos: `detection_recall` (rows for `make bench`).

The set: scikit-image's astronaut photo (512 px, one face about 90 px wide) turned by each of ``angles``
degrees about its centre (borders replicated), then degraded by the zoo's own blind degradation, built from
``conf/datamodule/degradation/gfpgan.yaml`` (GFP-GAN's pipeline: blur, downsample, noise, JPEG, colour) with
the blur / downsample / noise / JPEG ranges narrowed to one strength of `STRENGTHS`, ``samples`` seeds each;
plus `NO_FACE` photos of scikit-image with no face in them, for false positives.

The ground truth is the face the first detector finds on the clean, upright photo, turned with the photo. A
detection is that face when its landmarks' centre lies within a quarter of the true box side of the true
landmarks' centre; every other detection is a false positive. ``landmark_error`` is the mean distance of the
68 points to the true ones over the true eye distance (the usual inter-ocular normalisation).
"""

import time
from pathlib import Path

import cv2
import numpy as np
import skimage.data
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from facezoo.cli import CONF_DIR
from facezoo.faces.detector import DlibDetector, FaceDetector
from facezoo.faces.landmarks import eye_distance
from facezoo.utils.errors import DataError

# blur sigma, downsample factor, noise sigma (0-255) and JPEG quality ranges, inside GFP-GAN's own
# (blur 0.1-10, downsample 0.8-8, noise 0-20, JPEG 60-100), from light to heavy
STRENGTHS: dict[str, dict | None] = {
    "clean": None,
    "mild": dict(blur_sigma=(0.5, 2.0), downsample_range=(1.0, 2.0), noise_range=(0.0, 5.0),
                 jpeg_range=(80, 95)),
    "medium": dict(blur_sigma=(2.0, 4.0), downsample_range=(2.0, 4.0), noise_range=(5.0, 10.0),
                   jpeg_range=(60, 80)),
    "strong": dict(blur_sigma=(3.0, 5.0), downsample_range=(4.0, 6.0), noise_range=(10.0, 15.0),
                   jpeg_range=(60, 70)),
}
ANGLES = (0, 12, -12, 20, -20, 30, -30)
NO_FACE = ("chelsea", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field")
DEGRADATION_YAML = Path(CONF_DIR) / "datamodule" / "degradation" / "gfpgan.yaml"


def _turned(image: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray]:
    height, width = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), angle, 1.0)
    turned = cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_REPLICATE)
    return turned, matrix


def degraded(images: np.ndarray, strength: str, seed: int) -> np.ndarray:
    """(N, H, W, 3) uint8 -> the same degraded at `strength` by the gfpgan.yaml degradation, seeded."""
    overrides = STRENGTHS[strength]
    if overrides is None:
        return images
    degradation = instantiate(OmegaConf.load(DEGRADATION_YAML), **overrides)
    hq = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
    lq = degradation(hq, seed)["lq"].add(1.0).mul(127.5).round().clamp(0, 255).to(torch.uint8)
    return np.ascontiguousarray(lq.permute(0, 2, 3, 1).numpy())


def _score(faces, truth) -> tuple[bool, int, float | None]:
    """(found, false positives, landmark error) of one image's faces against the true (68, 2) or None."""
    matches = [] if truth is None else [
        f for f in faces
        if np.hypot(*(f.landmarks.mean(0) - truth["landmarks"].mean(0))) < truth["side"] / 4
    ]
    error = None
    if matches:
        error = float(np.hypot(*(matches[0].landmarks - truth["landmarks"]).T).mean() / truth["eyes"])
    return bool(matches), len(faces) - len(matches[:1]), error


def detection_recall(detectors: dict[str, FaceDetector] | None = None, strengths=tuple(STRENGTHS),
                     angles=ANGLES, samples: int = 2, seed: int = 0, no_face: bool = True) -> list[dict]:
    """One row per (detector, strength, angle), and per detector one "no face" row when `no_face`:
    ``detector, strength, angle, images, found, recall, false_positives, landmark_error, seconds_per_image``.

    Default detectors: ``fast`` (`DlibDetector` without the recall retries) and ``recall`` (with them).
    """
    if detectors is None:
        detectors = {"fast": DlibDetector(recall=False), "recall": DlibDetector(recall=True)}
    photo = skimage.data.astronaut()
    truth_faces = next(iter(detectors.values())).detect(photo)
    if len(truth_faces) != 1:
        raise DataError(f"detection_recall: {len(truth_faces)} faces on the clean astronaut, expected 1")
    truth = truth_faces[0]
    sets = []  # (strength, angle, images, truth)
    for strength in strengths:
        for angle in angles:
            turned, matrix = _turned(photo, angle)
            landmarks = truth.landmarks @ matrix[:, :2].T + matrix[:, 2]
            set_seed = seed + 1000 * list(STRENGTHS).index(strength) + angle % 360  # the same in any subset
            copies = samples if STRENGTHS[strength] else 1
            images = degraded(np.repeat(turned[None], copies, 0), strength, set_seed)
            face = {"landmarks": landmarks, "side": truth.box[2] - truth.box[0],
                    "eyes": eye_distance(landmarks)}
            sets.append((strength, angle, images, face))
    if no_face:
        sets.append(("no face", 0, [getattr(skimage.data, name)() for name in NO_FACE], None))
    rows = []
    for name, detector in detectors.items():
        for strength, angle, images, face in sets:
            found, false_positives, errors, seconds = 0, 0, [], 0.0
            for image in images:
                start = time.perf_counter()
                faces = detector.detect(image)
                seconds += time.perf_counter() - start
                hit, extra, error = _score(faces, face)
                found, false_positives = found + hit, false_positives + extra
                errors += [] if error is None else [error]
            rows.append({
                "detector": name, "strength": strength, "angle": angle, "images": len(images), "found": found,
                "recall": found / len(images) if face is not None else None,
                "false_positives": false_positives,
                "landmark_error": float(np.mean(errors)) if errors else None,
                "seconds_per_image": seconds / len(images),
            })
    return rows
