"""The identity similarity metric (src/metrics/identity.py): the mean cosine similarity of ArcFace embeddings
over all pairs, with a frozen network kept out of the state_dict. ArcFace has random weights (tests only)."""

import pytest
import torch
from torch import nn

from facezoo.metrics import IdentitySimilarity
from facezoo.models.components.arcface import gfpgan_identity_input


def test_identity_similarity_of_identical_images_is_one(arcface):
    metric = IdentitySimilarity(arcface, gfpgan_identity_input)
    x = torch.rand(3, 3, 64, 64) * 2 - 1
    metric.update(x, x.clone())
    assert metric.compute().item() == pytest.approx(1.0, abs=1e-5)


def test_identity_similarity_of_different_faces_is_below_one(arcface):
    torch.manual_seed(1)
    metric = IdentitySimilarity(arcface, gfpgan_identity_input)
    metric.update(torch.rand(2, 3, 64, 64) * 2 - 1, torch.rand(2, 3, 64, 64) * 2 - 1)
    assert metric.compute().item() < 1 - 1e-4


def test_identity_similarity_accumulates_as_the_mean_over_all_pairs(arcface):
    torch.manual_seed(2)
    preds, target = torch.rand(3, 3, 64, 64) * 2 - 1, torch.rand(3, 3, 64, 64) * 2 - 1
    split = IdentitySimilarity(arcface, gfpgan_identity_input)
    whole = IdentitySimilarity(arcface, gfpgan_identity_input)
    split.update(preds[:2], target[:2])
    split.update(preds[2:], target[2:])  # unequal batches: a mean of batch means would differ
    whole.update(preds, target)
    assert split.compute().item() == pytest.approx(whole.compute().item(), abs=1e-6)
    with torch.no_grad():
        embed = arcface(gfpgan_identity_input(torch.cat([preds, target])))
    per_pair = torch.nn.functional.cosine_similarity(embed[:3], embed[3:], dim=1)
    assert whole.compute().item() == pytest.approx(per_pair.mean().item(), abs=1e-6)


def test_identity_similarity_freezes_its_network_and_keeps_it_out_of_the_state_dict():
    net = nn.Sequential(nn.Flatten(), nn.Linear(128 * 128, 8), nn.BatchNorm1d(8)).train()
    metric = IdentitySimilarity(net, gfpgan_identity_input)
    assert not net.training and not any(p.requires_grad for p in net.parameters())
    net.train()  # e.g. a parent module switched back to training
    x = torch.rand(2, 3, 32, 32, requires_grad=True)
    metric.update(x, torch.rand(2, 3, 32, 32))
    assert net[2].num_batches_tracked == 0  # ran in eval mode: BN statistics untouched
    assert not list(metric.parameters()) and not any("weight" in k for k in metric.state_dict())
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        metric.update(x, torch.rand(2, 3, 16, 16))
