"""Editing directions (src/models/editing.py): the file layouts InterFaceGAN and StyleGANEX ship, refused in
one line otherwise; edits in W+; the SVM boundary; and a direction fitted on a tiny generator with RANDOM
weights (on purpose: the measured face brightness still varies with w) that moves that brightness
monotonically."""

import pickle

import numpy as np
import pytest
import torch

from facezoo.models.components.stylegan2 import Generator
from facezoo.models.editing import (
    edit,
    face_brightness,
    fit_direction,
    load_direction,
    save_direction,
    train_boundary,
)
from facezoo.utils.errors import DataError

L, S = 10, 64  # a 32 px generator: n_latent = 2·log2(32) − 2
STRENGTHS = torch.linspace(-2, 2, 7)  # in units of the spread of w along the direction
FIT = dict(samples=400, seed=1, chosen_num_or_ratio=0.25)  # 100 highest / lowest, 70 of each to train


def _save(path, value):
    if path.suffix == ".npy":
        np.save(path, value.numpy())
    else:
        torch.save(value, path)
    return path


@pytest.mark.parametrize("suffix", [".npy", ".pt"])
@pytest.mark.parametrize("shape", [(S,), (1, S), (L, S), (1, L, S)])
def test_each_accepted_layout_loads_as_one_code_per_layer(tmp_path, suffix, shape):
    value = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    direction = load_direction(_save(tmp_path / f"d{suffix}", value), L, S)
    assert direction.shape == (L, S) and direction.dtype == torch.float32
    expected = value.reshape(-1, S).expand(L, S)  # a W direction is the same at every layer
    torch.testing.assert_close(direction, expected)


def test_save_then_load_gives_the_direction_back(tmp_path):
    value = torch.randn(L, S)
    for name in ("d.npy", "d.pt"):
        save_direction(tmp_path / name, value)
        torch.testing.assert_close(load_direction(tmp_path / name, L, S), value)


class _Opaque:  # a pickled object, which weights_only loading refuses
    pass


@pytest.mark.parametrize(
    "name, write",
    [
        ("wrong_shape.pt", lambda p: torch.save(torch.zeros(L + 1, S), p)),
        ("wrong_dim.npy", lambda p: np.save(p, np.zeros((1, S + 1), np.float32))),
        ("dict.pt", lambda p: torch.save({"direction": torch.zeros(S)}, p)),
        ("pickled.pt", lambda p: torch.save(_Opaque(), p)),
        ("objects.npy", lambda p: np.save(p, np.array([_Opaque()], dtype=object), allow_pickle=True)),
        ("integers.npy", lambda p: np.save(p, np.zeros(S, np.int64))),
        ("not_finite.pt", lambda p: torch.save(torch.full((S,), float("nan")), p)),
        ("garbage.pt", lambda p: p.write_bytes(b"not a tensor file")),
        ("junk.pt", lambda p: p.write_bytes(b"junk")),
        ("empty.npy", lambda p: p.write_bytes(b"")),
        ("pickle.pkl", lambda p: p.write_bytes(pickle.dumps([0.0] * S))),
        ("missing.npy", lambda p: None),
    ],
)
def test_a_bad_file_is_refused_in_one_line_naming_it(tmp_path, name, write):
    path = tmp_path / name
    write(path)
    with pytest.raises(DataError) as err:
        load_direction(path, L, S)
    message = str(err.value)
    assert "\n" not in message and message.startswith(str(path)) and f"({L}, {S})" in message


def test_edit_moves_every_layer_by_the_strength():
    w_plus = torch.randn(3, L, S)
    w_direction, wplus_direction = torch.randn(S), torch.randn(L, S)
    torch.testing.assert_close(edit(w_plus, w_direction, 2.0), w_plus + 2 * w_direction)
    strengths = torch.tensor([-1.0, 0.0, 3.0])  # one per sample
    expected = w_plus + strengths[:, None, None] * wplus_direction
    torch.testing.assert_close(edit(w_plus, wplus_direction, strengths), expected)


def test_the_boundary_of_a_linear_score_is_its_normal_pointing_up():
    # codes whose score is a noisy linear function: the boundary's normal is that function's direction
    gen = torch.Generator().manual_seed(0)
    codes, truth = torch.randn(2000, 16, generator=gen), torch.randn(16, generator=gen)
    truth /= truth.norm()
    scores = codes @ truth + 0.1 * torch.randn(2000, generator=gen)
    normal = train_boundary(codes, scores, chosen_num_or_ratio=0.1)
    assert normal.shape == (16,) and abs(normal.norm().item() - 1) < 1e-5
    assert normal @ truth > 0.9  # oriented toward high scores
    assert train_boundary(codes, -scores, chosen_num_or_ratio=0.1) @ truth < -0.9


@pytest.fixture(scope="module")
def generator():
    torch.manual_seed(0)  # random weights, on purpose
    return Generator(32, style_dim=S, n_mlp=2, channel_multiplier=1, narrow=0.03125).eval()


@pytest.fixture(scope="module")
def fitted(generator):
    return fit_direction(generator, face_brightness, **FIT)


def _spearman(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Rank correlation of x (K,) with each row of y (B, K) (no ties in x)."""
    rx, ry = x.argsort().argsort().double(), y.argsort(1).argsort(1).double()
    rx, ry = rx - rx.mean(), ry - ry.mean(1, keepdim=True)
    return (ry @ rx) / (ry.norm(dim=1) * rx.norm())


@torch.no_grad()
def _brightness_along(generator, direction):
    """Face brightness (B, K) of 6 faces moved along `direction` by STRENGTHS · (spread of w along it)."""
    gen = torch.Generator().manual_seed(5)
    w = generator.get_latent(torch.randn(6, S, generator=gen))
    spread = (generator.get_latent(torch.randn(256, S, generator=gen)) @ direction).std()
    w_plus = w.unsqueeze(1).expand(-1, generator.n_latent, -1)
    images = [
        generator([edit(w_plus, direction, s * spread)], input_is_latent=True, randomize_noise=False)[0]
        for s in STRENGTHS
    ]
    return torch.stack([face_brightness(image) for image in images], 1)


def test_the_fitted_direction_raises_face_brightness_monotonically(generator, fitted):
    assert fitted.shape == (S,) and abs(fitted.norm().item() - 1) < 1e-5
    along = _brightness_along(generator, fitted)
    assert _spearman(STRENGTHS, along).mean() > 0.9
    gain = (along[:, -1] - along[:, 0]).mean()
    randoms = torch.randn(4, S, generator=torch.Generator().manual_seed(7))
    random_gains = [
        (lambda b: (b[:, -1] - b[:, 0]).mean().abs())(_brightness_along(generator, r / r.norm()))
        for r in randoms
    ]
    assert gain > 2 * max(random_gains)


def test_the_fit_is_deterministic_given_the_seed(generator, fitted):
    state = torch.get_rng_state()
    assert torch.equal(fit_direction(generator, face_brightness, **FIT), fitted)
    assert torch.equal(torch.get_rng_state(), state)  # the global RNG is left as it was
    other = fit_direction(generator, face_brightness, **{**FIT, "seed": 2})
    assert not torch.equal(other, fitted) and other @ fitted > 0.5  # another sample, the same attribute


def test_a_concat_noise_generator_is_fitted_deterministically_too():
    # GPEN's generators (experiment=stylegan2_synthetic) store no noise: it is drawn from the seeded RNG
    torch.manual_seed(0)
    concat = Generator(32, style_dim=S, n_mlp=2, channel_multiplier=1, narrow=0.03125, isconcat=True).eval()
    fit = dict(samples=64, seed=3, chosen_num_or_ratio=0.25)
    direction = fit_direction(concat, face_brightness, **fit)
    assert direction.shape == (S,) and torch.equal(fit_direction(concat, face_brightness, **fit), direction)
