"""Feature matching (GPEN's L_F): the sum over D's layers of a per-layer criterion, real features detached."""

import pytest
import torch
import torch.nn.functional as F

from facezoo.losses.feature_matching import FeatureMatchingLoss
from facezoo.utils.errors import ConfigError


def _features(seed, requires_grad=False):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(2, c, s, s, generator=gen).requires_grad_(requires_grad) for c, s in ((4, 8), (8, 4))]


@pytest.mark.parametrize("criterion", ["mse", "l1"])
def test_sum_of_the_layer_criteria(criterion):
    fake, real = _features(0), _features(1)
    loss = FeatureMatchingLoss(criterion)(fake, real)
    fn = F.mse_loss if criterion == "mse" else F.l1_loss
    torch.testing.assert_close(loss, fn(fake[0], real[0]) + fn(fake[1], real[1]))


def test_the_real_features_are_targets():
    fake, real = _features(0, requires_grad=True), _features(1, requires_grad=True)
    FeatureMatchingLoss()(fake, real).backward()
    assert all(f.grad is not None for f in fake) and all(r.grad is None for r in real)
    with pytest.raises(ValueError):
        FeatureMatchingLoss()(fake, real[:1])  # one feature map per layer on both sides
    with pytest.raises(ConfigError, match="fm criterion must be one of"):
        FeatureMatchingLoss("l2")
