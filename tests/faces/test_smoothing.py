"""Landmark tracking and One-Euro smoothing (src/faces/smoothing.py), on a synthetic 68-point face: noise at
rest is removed, a moving face is followed with the lag the 1€ filter predicts, ids follow faces."""

import numpy as np
import pytest

from facezoo.faces.landmarks import eye_distance
from facezoo.faces.smoothing import LandmarkSmoother, OneEuroFilter, jitter

FPS = 30
IOD = 60.0  # pixels


@pytest.fixture
def face68(face) -> np.ndarray:
    """The shared synthetic face (tests/faces/conftest.py), its eye centres IOD pixels apart."""
    return face(IOD).double().numpy()


def _run(face, centres, noise=0.0, seed=0, **smoother_args):
    """Feed `face` along `centres` (T, 2) -> raw and smoothed tracks (for `jitter`), errors over IOD."""
    rng = np.random.default_rng(seed)
    smoother = LandmarkSmoother(FPS, **smoother_args)
    raw, smoothed, errors = {}, {}, []
    for i, centre in enumerate(centres):
        truth = face + centre
        noisy = truth + rng.normal(0, noise, face.shape)
        ((track, out),) = smoother.update(i, [noisy])
        raw.setdefault(track, []).append((i, noisy))
        smoothed.setdefault(track, []).append((i, out))
        errors.append(np.linalg.norm(out - truth, axis=-1).mean() / IOD)
    return raw, smoothed, np.array(errors)


def test_the_face_has_its_eyes_iod_apart(face68):
    assert eye_distance(face68) == pytest.approx(IOD)


def test_noise_at_rest_is_removed(face68):
    """1.5 px of landmark noise (2.5 % of the IOD) on a still face: the jitter drops more than 4-fold (6 at
    the defaults) and the smoothed points are nearer the truth than the raw ones."""
    still = np.tile([200.0, 150.0], (120, 1))
    raw, smoothed, errors = _run(face68, still, noise=1.5)
    before, after = jitter(raw), jitter(smoothed)
    assert list(raw) == [0]  # one face, one track
    assert before > 0.04 and after < before / 4, (before, after)
    assert errors[15:].mean() < 0.5 * 1.5 * np.sqrt(np.pi / 2) / IOD  # half the raw error (Rayleigh mean)


@pytest.mark.parametrize("speed", [0.5, 1.0, 3.0])  # inter-ocular distances per second
def test_constant_speed_is_followed_with_the_predicted_lag(face68, speed):
    """Without noise the filter's speed estimate converges on the true speed and the points trail by
    v / (2 pi fc), fc = min_cutoff + beta v (an exponential filter's lag is its time constant): below
    1 / (2 pi beta) = 0.04 IOD at any speed."""
    path = np.stack([100 + speed * IOD * np.arange(90) / FPS, np.full(90, 150.0)], 1)
    _, _, errors = _run(face68, path)
    smoother = LandmarkSmoother(FPS)
    lag = speed / (2 * np.pi * (smoother.min_cutoff + smoother.beta * speed))
    assert errors[-10:] == pytest.approx(lag, rel=0.05)
    assert errors[30:].max() < 1 / (2 * np.pi * smoother.beta)  # once the speed is learned (in a second)


def test_moving_noisy_face_is_followed_within_a_small_error(face68):
    path = np.stack([100 + 3 * IOD * np.arange(90) / FPS, np.full(90, 150.0)], 1)
    raw, smoothed, errors = _run(face68, path, noise=1.5)
    assert errors[15:].max() < 0.06
    assert jitter(smoothed) < jitter(raw)


def test_two_faces_crossing_keep_their_ids(face68):
    """Two faces walk through each other at different speeds; when they are 4 px apart each is nearer the
    other's last box than its own one: the tracks' predicted boxes (last velocity) keep each on its face."""
    smoother = LandmarkSmoother(FPS)
    ids = []
    for i in range(60):
        left, right = np.array([100.0 + 5 * i, 150]), np.array([344.0 - 3 * i, 152])
        order = [left, right] if i % 2 else [right, left]  # the detector's order means nothing
        out = smoother.update(i, [face68 + c for c in order])
        by_face = dict(zip(["left", "right"] if i % 2 else ["right", "left"], out, strict=True))
        ids.append((by_face["left"][0], by_face["right"][0]))
        assert np.abs(by_face["left"][1] - (face68 + left)).max() < 10  # each output follows its own face
    assert set(ids) == {ids[0]} and ids[0][0] != ids[0][1]


@pytest.mark.parametrize("absent", [3, 4])
def test_a_face_back_after_more_than_max_missed_frames_is_a_new_track(face68, absent):
    smoother = LandmarkSmoother(FPS, max_missed=3)
    seen = [i for i in range(20) if not 8 <= i < 8 + absent]
    ids = {i: smoother.update(i, [face68 + [200, 150]])[0][0] for i in seen}
    assert set(ids[i] for i in seen if i < 8) == {0}
    assert set(ids[i] for i in seen if i >= 8) == ({0} if absent <= 3 else {1})


def test_a_new_face_gets_a_new_id_and_faces_far_apart_stay_apart(face68):
    smoother = LandmarkSmoother(FPS)
    assert [t for t, _ in smoother.update(0, [face68 + [100, 100]])] == [0]
    assert [t for t, _ in smoother.update(1, [face68 + [500, 100], face68 + [100, 100]])] == [1, 0]


def test_jitter_is_displacement_over_iod_between_consecutive_frames_only(face68):
    track = [
        (0, face68),
        (1, face68 + [6, 0]),
        (2, face68 + [6, 8]),
        (5, face68 + [90, 90]),
        (6, face68 + [90, 90]),
    ]
    assert jitter({7: track}) == pytest.approx((0.1 + 8 / 60 + 0.0) / 3)  # 2 -> 5 is a gap, not a motion
    doubled = {7: [(i, 2 * landmarks) for i, landmarks in track]}
    assert jitter(doubled) == pytest.approx(jitter({7: track}))  # the same at any face size
    assert np.isnan(jitter({7: track[:1]}))


def test_the_filter_refuses_time_going_back():
    one_euro = OneEuroFilter(min_cutoff=1.0, beta=0.0)
    one_euro(np.zeros((68, 2)), 1.0)
    with pytest.raises(ValueError, match="not after"):
        one_euro(np.zeros((68, 2)), 1.0)
