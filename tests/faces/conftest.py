"""A synthetic face for the geometry tests: a plausible 68-point layout in dlib/iBUG order, built from a few
ellipses and lines (symmetric, eyes level, inter-ocular distance 1), placed by a similarity transform."""

import math

import pytest
import torch


def _arc(cx: float, cy: float, rx: float, ry: float, start: float, stop: float, count: int) -> list:
    angles = [start + (stop - start) * k / (count - 1) for k in range(count)]
    return [(cx + rx * math.cos(a), cy + ry * math.sin(a)) for a in angles]


def _ring(cx: float, cy: float, rx: float, ry: float, count: int) -> list:
    """`count` points on an ellipse from its left end, clockwise on screen (through the top first)."""
    return [
        (cx - rx * math.cos(2 * math.pi * k / count), cy - ry * math.sin(2 * math.pi * k / count))
        for k in range(count)
    ]


def canonical_landmarks68() -> torch.Tensor:
    """(68, 2) in face units: eye centres at (-0.5, 0) and (0.5, 0), y down, point 0 on the image's left."""
    jaw = _arc(0.0, 0.05, 0.95, 1.3, math.pi, 0.0, 17)  # 0-16: left temple, down to the chin, up to the right
    brow_left = _arc(-0.5, -0.2, 0.35, 0.15, math.pi, 2 * math.pi, 5)  # 17-21, arching up
    brow_right = _arc(0.5, -0.2, 0.35, 0.15, math.pi, 2 * math.pi, 5)  # 22-26
    nose_bridge = [(0.0, 0.1 + 0.15 * k) for k in range(4)]  # 27-30, 30 = tip at (0, 0.55)
    nostrils = [(-0.2 + 0.1 * k, 0.68 - 0.04 * (2 - abs(k - 2))) for k in range(5)]  # 31-35
    eye_left = _ring(-0.5, 0.0, 0.2, 0.08, 6)  # 36-41, centre (-0.5, 0)
    eye_right = _ring(0.5, 0.0, 0.2, 0.08, 6)  # 42-47
    mouth_outer = _ring(0.0, 1.0, 0.4, 0.15, 12)  # 48-59, corners 48 (-0.4, 1) and 54 (0.4, 1)
    mouth_inner = _ring(0.0, 1.0, 0.3, 0.05, 8)  # 60-67
    points = jaw + brow_left + brow_right + nose_bridge + nostrils + eye_left + eye_right + mouth_outer
    return torch.tensor(points + mouth_inner, dtype=torch.float32)


def place_face(eye_distance: float, angle: float = 0.0, centre: tuple = (0.0, 0.0)) -> torch.Tensor:
    """The canonical face at `eye_distance` pixels between the eyes, turned by `angle`, eyes around centre."""
    c, s = math.cos(angle), math.sin(angle)
    rotation = torch.tensor([[c, -s], [s, c]]) * eye_distance
    return canonical_landmarks68() @ rotation.T + torch.tensor(centre)


@pytest.fixture()
def face():
    """place_face, for the tests: face(eye_distance, angle, centre) -> (68, 2) landmarks in image pixels."""
    return place_face


def smooth_photo(height: int, width: int) -> torch.Tensor:
    """(3, H, W) in [-1, 1]: low-frequency colour waves, which bilinear resampling reproduces closely."""
    ys = torch.arange(height, dtype=torch.float32)[:, None]
    xs = torch.arange(width, dtype=torch.float32)[None]
    return 0.6 * torch.stack(
        [torch.sin(xs / 9.0 + ys / 13.0), torch.cos(ys / 7.0 - xs / 17.0), torch.sin((xs - ys) / 11.0)]
    )


@pytest.fixture()
def photo():
    """smooth_photo, for the tests: photo(height, width) -> (3, H, W) in [-1, 1]."""
    return smooth_photo
