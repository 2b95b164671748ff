"""The GAN regularizers (src/losses/gan_regularizers.py): R1 against the closed-form gradient norm, and the
path length penalty of a linear generator with its running mean."""

import math

import pytest
import torch
from torch import nn

from facezoo.losses.gan_regularizers import path_length_penalty, r1_penalty


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def test_r1_penalty_equals_the_closed_form_gradient_norm():
    a = nn.Parameter(torch.randn(3, 8, 8))
    x = torch.randn(5, 3, 8, 8, requires_grad=True)
    logits = (a * x + 0.5 * x.pow(2)).flatten(1).sum(1, keepdim=True)  # ∇_x D(x) = a + x
    penalty = r1_penalty(logits, x)
    expected = (a + x).pow(2).flatten(1).sum(1).mean()
    torch.testing.assert_close(penalty, expected)
    penalty.backward()  # create_graph: the penalty trains D
    torch.testing.assert_close(a.grad, 2 * (a + x).mean(0).detach())


@pytest.mark.parametrize("latent_shape", [(2, 5, 6), (2, 6)])
def test_path_length_penalty_for_a_linear_generator(latent_shape):
    # image = (Σ_layers w) A: the Jacobian transpose maps y to A y for every layer, so the length is ‖A y‖
    proj = nn.Parameter(torch.randn(6, 3 * 4 * 4))
    latents = torch.randn(*latent_shape, requires_grad=True)
    w = latents.sum(1) if latents.ndim == 3 else latents
    images = (w @ proj).view(2, 3, 4, 4)
    torch.manual_seed(1)
    penalty, mean, lengths = path_length_penalty(images, latents, 0.5, decay=0.1)
    torch.manual_seed(1)
    y = torch.randn_like(images) / math.sqrt(4 * 4)
    expected = (y.flatten(1) @ proj.T).norm(dim=1)
    torch.testing.assert_close(lengths, expected)
    expected_mean = 0.5 + 0.1 * (expected.mean() - 0.5)
    torch.testing.assert_close(mean, expected_mean.detach())
    assert not mean.requires_grad
    torch.testing.assert_close(penalty, (expected - expected_mean).pow(2).mean())
    penalty.backward()
    assert proj.grad is not None and proj.grad.abs().sum() > 0
