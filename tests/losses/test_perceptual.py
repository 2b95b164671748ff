"""The VGG19 perceptual / style loss (src/losses/perceptual.py): torchvision-layout weights, a Frozen VGG out
of the owner's state, clear errors."""

import logging

import pytest
import torch
from torch import nn

from facezoo.losses.perceptual import NAMES, PerceptualLoss, VGG19Features, gram
from facezoo.utils.errors import ConfigError, FacezooError, WeightsNotFoundError
from facezoo.weights.resolver import KNOWN_WEIGHTS

VGG19 = KNOWN_WEIGHTS["vgg19"].filename
SHALLOW = {"conv1_2": 0.5, "relu2_1": 1.0}


@pytest.fixture
def found(vgg19_folder, monkeypatch):
    """The resolver finds the test VGG19 in the project's pretrained folder."""
    monkeypatch.setenv("FACEZOO_PRETRAINED", str(vgg19_folder))
    return vgg19_folder / VGG19


@pytest.fixture
def missing(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEZOO_PRETRAINED", str(tmp_path / "empty"))


def _images(*shape, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_features_match_torchvision(found, vgg19_features):
    vgg = VGG19Features(list(NAMES))
    assert len(NAMES) == len(vgg19_features) == 37 and vgg.weights_file == found
    x = _images(1, 3, 32, 32)
    feats = vgg(x)
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    h = ((x + 1) / 2 - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)
    with torch.no_grad():
        for name, layer in zip(NAMES, vgg19_features, strict=True):
            h = layer(h).clone()  # torchvision's ReLUs are in place
            assert torch.equal(feats[name], h), name
    assert feats["pool5"].shape == (1, 512, 1, 1)


def test_no_input_norm_and_partial_stack(found, vgg19_features):
    vgg = VGG19Features(["relu1_1", "relu2_1"], input_norm="none")
    assert vgg.stack == NAMES[:7]  # built only up to the deepest requested layer
    x = _images(2, 3, 16, 16)
    with torch.no_grad():
        expected = vgg19_features[:7](x.clone())
    assert list(vgg(x)) == ["relu1_1", "relu2_1"]
    assert torch.equal(vgg(x)["relu2_1"], expected)


def test_frozen_vgg_is_not_a_parameter_nor_in_state_dict(found):
    loss = PerceptualLoss(SHALLOW)
    assert loss.state_dict() == {} and list(loss.parameters()) == []
    owner = nn.Module()
    owner.head, owner.loss = nn.Conv2d(3, 3, 1), loss
    assert set(owner.state_dict()) == {"head.weight", "head.bias"}
    assert len(list(loss.vgg.net.buffers())) > 0  # but the VGG is there, as buffers
    owner.double()
    assert {b.dtype for b in loss.vgg.net.buffers()} == {torch.float64}  # and moves with its owner


def test_missing_weights_names_the_file(missing):
    with pytest.raises(WeightsNotFoundError, match=VGG19):
        PerceptualLoss(SHALLOW)


def test_allow_random_warns_and_is_deterministic(missing, caplog):
    with caplog.at_level(logging.WARNING, logger="facezoo"):
        a = VGG19Features(["relu1_2"], allow_random=True)
    assert "RANDOMLY INITIALISED" in caplog.text and a.weights_file is None
    b = VGG19Features(["relu1_2"], allow_random=True)
    x = _images(1, 3, 8, 8)
    assert torch.equal(a(x)["relu1_2"], b(x)["relu1_2"])


def test_explicit_path_and_wrong_file(missing, found, tmp_path):
    assert VGG19Features(["conv1_1"], weights=found).weights_file == found
    full = torch.load(found, weights_only=True)
    bad = {k: full[k] for k in ("features.0.weight", "features.0.bias", "features.2.bias")}
    bad["features.2.weight"] = torch.zeros(64, 32, 3, 3)
    torch.save(bad, tmp_path / "bad.pth")
    with pytest.raises(FacezooError, match=r"bad\.pth: 'features\.2\.weight' \(conv1_2 weight\) has shape"):
        VGG19Features(["relu1_2"], weights=tmp_path / "bad.pth")
    del bad["features.2.weight"]
    torch.save(bad, tmp_path / "bad.pth")
    with pytest.raises(FacezooError, match=r"no 'features\.2\.weight'"):
        VGG19Features(["relu1_2"], weights=tmp_path / "bad.pth")
    with pytest.raises(WeightsNotFoundError, match="nope"):
        VGG19Features(["conv1_1"], weights=tmp_path / "nope.pth", allow_random=True)


def test_bad_options_are_config_errors(found):
    with pytest.raises(ConfigError, match="conv6_1"):
        VGG19Features(["conv6_1"])
    with pytest.raises(ConfigError, match="input_norm"):
        VGG19Features(["conv1_1"], input_norm="caffe")
    with pytest.raises(ConfigError, match="criterion"):
        PerceptualLoss(SHALLOW, criterion="fro")


def test_loss_zero_for_identical_positive_otherwise(found):
    loss = PerceptualLoss(SHALLOW, style_weight=10.0)
    x = _images(2, 3, 16, 16)
    perceptual, style = loss(x, x.clone())
    assert perceptual.item() == 0 and style.item() == 0
    perceptual, style = loss(_images(2, 3, 16, 16, seed=1), x)
    assert perceptual.item() > 0 and style.item() > 0


def test_gradient_flows_to_pred_only(found):
    loss = PerceptualLoss(SHALLOW, style_weight=1.0)
    pred = _images(1, 3, 16, 16).requires_grad_()
    target = _images(1, 3, 16, 16, seed=1).requires_grad_()
    sum(loss(pred, target)).backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0
    assert target.grad is None
    assert all(b.grad is None and not b.requires_grad for b in loss.vgg.net.buffers())


def test_perceptual_and_style_match_hand_computation(found):
    loss = PerceptualLoss(SHALLOW, criterion="mse", perceptual_weight=2.0, style_weight=50.0)
    pred, target = _images(2, 3, 16, 16), _images(2, 3, 16, 16, seed=1)
    with torch.no_grad():
        fp, ft = loss.vgg(pred), loss.vgg(target)
        perceptual, style = loss(pred, target)

    def hand_gram(f):
        b, c, h, w = f.shape
        return torch.einsum("bihw,bjhw->bij", f, f) / (c * h * w)

    want_p = 2.0 * sum(w * (fp[k] - ft[k]).pow(2).mean() for k, w in SHALLOW.items())
    want_s = 50.0 * sum(w * (hand_gram(fp[k]) - hand_gram(ft[k])).pow(2).mean() for k, w in SHALLOW.items())
    torch.testing.assert_close(perceptual, want_p)
    torch.testing.assert_close(style, want_s)
    assert gram(fp["conv1_2"]).shape == (2, 64, 64)


def test_zero_weight_terms_are_not_computed(found, monkeypatch):
    loss = PerceptualLoss(SHALLOW, perceptual_weight=0.0, style_weight=0.0)
    monkeypatch.setattr(loss.vgg, "forward", lambda x: pytest.fail("VGG run for zero-weight losses"))
    x = _images(1, 3, 8, 8)
    assert [t.item() for t in loss(x, x)] == [0.0, 0.0]


def test_to_dtype_moves_the_buffers(found):
    loss = PerceptualLoss(SHALLOW).to(torch.float64)
    assert {b.dtype for b in loss.vgg.net.buffers()} == {torch.float64}
    perceptual, _ = loss(_images(1, 3, 8, 8).double(), _images(1, 3, 8, 8, seed=1).double())
    assert perceptual.dtype == torch.float64
