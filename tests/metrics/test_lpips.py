"""LPIPS with an offline backbone (src/metrics/lpips.py): none (and a warning) without its weights, the
torchvision AlexNet / VGG16 weights mapped into a frozen backbone kept out of the checkpoint. The backbones
have random weights (tests only)."""

import logging

import pytest
import torch
import torchvision

from facezoo.metrics import LPIPS, build_lpips
from facezoo.utils.errors import FacezooError, WeightsNotFoundError

ALEX_FILE = "alexnet-owt-7be5be79.pth"


@pytest.fixture(scope="module")
def random_alexnet(tmp_path_factory):
    """RANDOM AlexNet weights, saved under the official torchvision file name, for the test only.

    The scores they give are meaningless; the tests check the plumbing (resolver, key mapping, freezing).
    """
    torch.manual_seed(0)
    state = torchvision.models.alexnet(weights=None).state_dict()
    folder = tmp_path_factory.mktemp("pretrained")
    torch.save(state, folder / ALEX_FILE)
    return folder, state


@pytest.fixture
def with_alexnet(random_alexnet, monkeypatch):
    folder, state = random_alexnet
    monkeypatch.setenv("FACEZOO_PRETRAINED", str(folder))
    return state


def test_lpips_without_backbone_is_none_and_warns(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("FACEZOO_PRETRAINED", str(tmp_path))
    with caplog.at_level(logging.WARNING, logger="facezoo"):
        assert build_lpips() is None
    assert "LPIPS unavailable" in caplog.text and ALEX_FILE in caplog.text
    # what to set: the folder (and its variable), the config key of the file, the key that turns LPIPS off
    assert f"Put it in {tmp_path}/ (the folder $FACEZOO_PRETRAINED names" in caplog.text
    assert "model.lpips_weights=<file>" in caplog.text and "model.lpips_net=null" in caplog.text
    with pytest.raises(WeightsNotFoundError, match=f"{ALEX_FILE}.*model.lpips_weights=<file>"):
        LPIPS()  # the class itself never builds with a random backbone


def test_lpips_explicit_missing_path_raises(tmp_path):
    with pytest.raises(WeightsNotFoundError, match="typo.pth"):
        build_lpips(weights_path=tmp_path / "typo.pth")


def test_lpips_with_backbone(with_alexnet):
    metric = build_lpips()
    assert isinstance(metric, LPIPS)
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(2, 3, 64, 64, generator=gen) * 2 - 1
    assert metric(x, x).item() == pytest.approx(0.0, abs=1e-6)
    metric.reset()
    noisy = (x + 0.5 * torch.randn(x.shape, generator=gen)).clamp(-1, 1)
    assert metric(noisy, x).item() > 0

    # the backbone holds exactly the saved weights, and is frozen and out of the checkpoint
    backbone = metric.network.net.state_dict()
    assert len(backbone) == 10
    for key, value in backbone.items():  # e.g. slice2.3.weight <- features.3.weight
        assert torch.equal(value, with_alexnet["features." + key.split(".", 1)[1]])
    assert not any(p.requires_grad for p in metric.network.parameters())
    assert not metric.network.training
    assert list(metric.parameters()) == []
    assert all(not k.startswith(("_lpips", "net")) for k in metric.state_dict())


def test_lpips_backbone_matches_torchvision(with_alexnet):
    metric = LPIPS(net="alex")
    reference = torchvision.models.alexnet(weights=None)
    reference.load_state_dict(with_alexnet)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        outs = metric.network.net(x)
        for relu_out, end in zip(outs, (2, 5, 8, 10, 12), strict=True):  # lpips slice ends in features
            assert torch.allclose(relu_out, reference.features[:end](x), atol=1e-5)


def test_lpips_vgg_mapping(tmp_path):
    # RANDOM VGG16 feature weights (torchvision layout, classifier left out to keep the file small)
    torch.manual_seed(0)
    features = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["D"])
    state = {f"features.{k}": v for k, v in features.state_dict().items()}
    path = tmp_path / "vgg16-397923af.pth"
    torch.save(state, path)
    metric = build_lpips("vgg", weights_path=path)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(metric.network.net(x)[-1], features[:30](x), atol=1e-4)
    with pytest.raises(FacezooError, match="not a torchvision alexnet"):
        build_lpips("alex", weights_path=path)  # a VGG file given for AlexNet
