"""Identity losses: GPEN's 1 − cos of unit embeddings, GFP-GAN's L1 of embeddings; the network is a Frozen
helper, the target's embedding a constant. A tiny random embedding network stands in for ArcFace."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from facezoo.losses.identity import IdentityLoss
from facezoo.utils.errors import ConfigError


class Embed(nn.Module):
    def __init__(self, normalise: bool) -> None:
        super().__init__()
        self.linear, self.normalise = nn.Linear(48, 8), normalise

    def forward(self, x):
        e = self.linear(F.adaptive_avg_pool2d(x, 4).flatten(1))
        return F.normalize(e, dim=1) if self.normalise else e


def _images(seed):
    return torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_cosine_distance_of_unit_embeddings_is_one_minus_the_cosine():
    torch.manual_seed(0)
    loss = IdentityLoss(Embed(normalise=True), lambda x: x, "cosine")
    fake, real = _images(0), _images(1)
    expected = 1 - F.cosine_similarity(loss.net(fake), loss.net(real), dim=1).mean()
    torch.testing.assert_close(loss(fake, real), expected)
    assert loss(real, real.clone()).item() == pytest.approx(0.0, abs=1e-6)


def test_l1_distance_of_embeddings_with_the_preprocessing():
    torch.manual_seed(0)
    crop = lambda x: x[..., 2:-2, 2:-2]  # noqa: E731
    loss = IdentityLoss(Embed(normalise=False), crop, "l1")
    fake, real = _images(0), _images(1)
    torch.testing.assert_close(loss(fake, real), F.l1_loss(loss.net(crop(fake)), loss.net(crop(real))))


def test_only_the_restoration_gets_a_gradient():
    loss = IdentityLoss(Embed(normalise=True), lambda x: x, "cosine")
    fake, real = _images(0).requires_grad_(), _images(1).requires_grad_()
    loss(fake, real).backward()
    assert fake.grad is not None and fake.grad.abs().sum() > 0 and real.grad is None
    assert all(p.grad is None for p in loss.net.net.parameters())
    assert loss.state_dict() == {} and list(loss.parameters()) == []  # a frozen helper


def test_an_unknown_distance_is_a_config_error():
    with pytest.raises(ConfigError, match="identity loss distance must be one of"):
        IdentityLoss(Embed(normalise=True), lambda x: x, "l2")
