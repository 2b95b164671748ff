"""Metrics: PSNR / SSIM on [-1, 1] images, soft IoU of masks, LPIPS with an offline backbone."""

import logging
import math

import pytest
import torch
import torchvision

from facezoo.metrics import LPIPS, SoftIoU, build_lpips, psnr_ssim_metrics
from facezoo.utils.errors import FacezooError, WeightsNotFoundError

ALEX_FILE = "alexnet-owt-7be5be79.pth"


# ---------------------------------------------------------------- PSNR / SSIM


def test_psnr_of_constant_offset_is_analytic():
    target = torch.zeros(2, 3, 16, 16)  # mid grey in [-1, 1]
    preds = target + 0.2  # 0.1 on the [0, 1] scale -> mse 0.01 -> 20 dB
    metrics = psnr_ssim_metrics()
    out = metrics(preds, target)
    assert out["psnr"].item() == pytest.approx(20.0, abs=1e-4)
    mse_01 = ((preds - target) / 2).pow(2).mean().item()  # on [0, 1]-scaled images
    assert out["psnr"].item() == pytest.approx(10 * math.log10(1 / mse_01), abs=1e-4)


def test_psnr_is_averaged_per_image():
    target = torch.zeros(2, 3, 8, 8)
    preds = target.clone()
    preds[0] += 0.2  # 20 dB
    preds[1] += 0.02  # 40 dB
    metrics = psnr_ssim_metrics()
    metrics.update(preds[:1], target[:1])
    metrics.update(preds[1:], target[1:])
    assert metrics.compute()["psnr"].item() == pytest.approx(30.0, abs=1e-3)


def test_ssim_identical_and_noisy():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 32, 32, generator=gen) * 2 - 1
    metrics = psnr_ssim_metrics(prefix="val/")
    assert metrics(x, x)["val/ssim"].item() == pytest.approx(1.0, abs=1e-5)
    metrics.reset()
    noisy = (x + 0.3 * torch.randn(x.shape, generator=gen)).clamp(-1, 1)
    assert metrics(noisy, x)["val/ssim"].item() < 0.9


# ---------------------------------------------------------------- Soft IoU


def _masks(h=8, w=8):
    return torch.zeros(1, 1, h, w), torch.zeros(1, 1, h, w)


def test_soft_iou_identical_and_disjoint():
    p, t = _masks()
    p[..., :4] = 1
    t[..., :4] = 1
    assert SoftIoU()(p, t).item() == pytest.approx(1.0)
    q = 1 - p
    assert SoftIoU()(q, t).item() == pytest.approx(0.0)


def test_soft_iou_partial_overlap_and_soft_values():
    p, t = _masks()
    p[..., 0:4] = 1  # columns 0-3
    t[..., 2:6] = 1  # columns 2-5: overlap 2, union 6
    assert SoftIoU()(p, t).item() == pytest.approx(1 / 3)
    half = torch.full((1, 1, 4, 4), 0.5)
    assert SoftIoU()(half, torch.ones(1, 1, 4, 4)).item() == pytest.approx(0.5)


def test_soft_iou_both_empty_is_one():
    p, t = _masks()
    assert SoftIoU()(p, t).item() == 1.0


def test_soft_iou_accumulates_the_mean_over_images():
    metric = SoftIoU()
    p, t = _masks()
    p[..., :4] = 1
    t[..., :4] = 1
    metric.update(p, t)  # 1.0
    p2, t2 = _masks()
    p2[..., 0:4] = 1
    t2[..., 2:6] = 1
    metric.update(torch.cat([p2, 1 - t]), torch.cat([t2, t]))  # 1/3 and 0
    assert metric.compute().item() == pytest.approx((1 + 1 / 3 + 0) / 3)


def test_soft_iou_rejects_bad_input():
    with pytest.raises(ValueError, match="differ"):
        SoftIoU().update(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 5))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        SoftIoU().update(torch.full((1, 1, 4, 4), 2.0), torch.zeros(1, 1, 4, 4))


# ---------------------------------------------------------------- LPIPS


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
    with pytest.raises(WeightsNotFoundError, match=ALEX_FILE):
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
