"""The fast restore path (src/faces/inference.py `prepare`) and the StyleGAN2 layers' shared-weight inference
form it relies on: both compute what the plain fp32 forward computes (training's per-sample grouped convs),
bf16 within its documented bound, a batch what its faces give one by one. Tiny release architectures with
random weights."""

from pathlib import Path

import pytest
import torch

from facezoo.checkpoints import ModelFile, load_model
from facezoo.faces.inference import prepare
from facezoo.faces.pipeline import FaceRestorer
from facezoo.models.components.gfpgan import GFPGANv1, GFPGANv1Clean
from facezoo.models.components.gpen import GPENGenerator
from facezoo.models.components.stylegan2 import ModulatedConv2d
from facezoo.models.components.stylegan2_clean import ModulatedConv2d as CleanModulatedConv2d
from facezoo.utils.errors import ConfigError
from facezoo.weights.releases import import_release
from helpers import noisy, official_gfpganv1_state

TINY = {  # the release architectures at 64 px, ≤ 64 channels
    "GFPGANv1Clean": lambda: {"params_ema": GFPGANv1Clean(out_size=64, num_style_feat=32, num_mlp=2,
                                                          narrow=0.125).state_dict()},
    "GFPGANv1": lambda: {"params_ema": official_gfpganv1_state(noisy(GFPGANv1(
        out_size=64, num_style_feat=32, num_mlp=2, narrow=0.125)))},
    "GPEN": lambda: GPENGenerator(size=64, style_dim=32, n_mlp=2, narrow=0.0625).state_dict(),
}


def tiny_release(name: str):
    """A `load_model` model of a tiny release file (random weights, noise strengths on)."""
    torch.manual_seed(0)
    imported = import_release(TINY[name]())
    model = load_model(ModelFile(Path(f"{name}.pth"), imported.state_dict(), imported=imported))
    return noisy(model)


def plain_fp32(model, x: torch.Tensor) -> torch.Tensor:
    """The reference: the eval-mode forward with gradients on, i.e. training's per-sample grouped convs."""
    with torch.enable_grad():
        return model.predict(x)["image"].detach()


@pytest.fixture(scope="module", params=list(TINY))
def release(request):
    return request.param, tiny_release(request.param)


def faces(n: int = 4) -> torch.Tensor:
    torch.manual_seed(1)
    return torch.rand(n, 3, 64, 64) * 2 - 1


def test_the_fast_path_computes_the_plain_fp32_forward(release):
    name, model = release
    x = faces()
    reference = plain_fp32(model, x)
    out = prepare(model, "cpu", channels_last=True)(x)["image"]
    assert out.dtype == torch.float32 and out.is_contiguous() and out.shape == x.shape
    assert reference.abs().max() > 0.1  # a real image, not a vanishing one
    torch.testing.assert_close(out, reference, rtol=0, atol=1e-5)
    nchw = prepare(model, "cpu")(x)["image"]
    torch.testing.assert_close(nchw, reference, rtol=0, atol=1e-5)


def test_a_batch_gives_what_its_faces_give_one_by_one(release):
    _, model = release
    run, x = prepare(model, "cpu", channels_last=True), faces()
    one_by_one = torch.cat([run(face[None])["image"] for face in x])
    torch.testing.assert_close(run(x)["image"], one_by_one, rtol=0, atol=1e-5)


@pytest.mark.skipif(not torch.ops.mkldnn._is_mkldnn_bf16_supported(), reason="no bf16 on this CPU")
def test_bf16_stays_within_its_documented_bound(release):
    """bf16 autocast keeps 8 significant bits: within 2% of the output's largest magnitude (the tiny random
    networks: 0.7–1.4%; the 512 px releases: the figures in src/faces/inference.py)."""
    _, model = release
    x = faces()
    reference = plain_fp32(model, x)
    out = prepare(model, "cpu", precision="bf16")(x)["image"]
    difference = (out - reference).abs().max().item()
    assert out.dtype == torch.float32 and 0 < difference < 0.02 * reference.abs().max().item()


LAYERS = {  # the core layer in each of its conv modes, and the clean one
    "plain": lambda: ModulatedConv2d(8, 16, 3, 32),
    "upsample": lambda: ModulatedConv2d(8, 16, 3, 32, upsample=True),
    "downsample": lambda: ModulatedConv2d(8, 16, 3, 32, downsample=True),
    "dilated upsample": lambda: ModulatedConv2d(8, 16, 3, 32, upsample=True, dilation=4),
    "dilated": lambda: ModulatedConv2d(8, 16, 3, 32, dilation=4),
    "to_rgb": lambda: ModulatedConv2d(8, 3, 1, 32, demodulate=False),
    "clean": lambda: CleanModulatedConv2d(8, 16, 3, 32),
    "clean upsample": lambda: CleanModulatedConv2d(8, 16, 3, 32, upsample=True),
}


@pytest.mark.parametrize("layer", list(LAYERS))
def test_the_shared_weight_form_equals_the_per_sample_weights(layer):
    torch.manual_seed(0)
    conv = LAYERS[layer]().eval()
    x, style = torch.randn(3, 8, 8, 8), torch.randn(3, 32)
    grouped = conv(x, style)  # gradients on: the training form
    with torch.no_grad():
        shared = conv(x, style)
        channels_last = conv(x.contiguous(memory_format=torch.channels_last), style)
    assert grouped.requires_grad and not shared.requires_grad
    torch.testing.assert_close(shared, grouped.detach(), rtol=0, atol=1e-5)
    torch.testing.assert_close(channels_last, grouped.detach(), rtol=0, atol=1e-5)
    with torch.no_grad():
        assert torch.equal(conv.train()(x, style), grouped.detach())  # training mode keeps the grouped form


def test_precisions_are_checked():
    model = tiny_release("GPEN")
    with pytest.raises(ConfigError, match=r"precision=fp8: expected fp32, bf16 or fp16"):
        prepare(model, "cpu", precision="fp8")
    with pytest.raises(ConfigError, match=r"precision=half"):
        FaceRestorer(model, precision="half")
