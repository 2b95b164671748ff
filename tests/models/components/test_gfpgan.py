"""GFP-GAN's generators (src/models/components/gfpgan.py), both released U-Net variants: the pyramid outputs,
the official sizes and keys, the paper model's identity start of the conditions, the fixed decoder. Networks
are built with random weights on purpose; release-size ones on the meta device (nothing allocated). The
BasicSR names of the paper model (helpers.official_gfpganv1_state) are written out from
reference/official-implementations.md §1, independently of the importer's table. (The import of official
weights: tests/weights/test_gfpgan.py; the training module: tests/models/test_gfpgan.py.)
"""

import math

import pytest
import torch
from torch import nn

from facezoo.models.components.gfpgan import GFPGANv1, GFPGANv1Clean
from facezoo.models.components.stylegan2 import Generator
from helpers import noisy, official_gfpganv1_state, restored

STYLE = 32
TINY = dict(out_size=64, num_style_feat=STYLE, num_mlp=2, narrow=0.125)  # decoder ≤ 64 ch, U-Net ≤ 32 ch
VARIANTS = [GFPGANv1Clean, GFPGANv1]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _counts(module: nn.Module, skip_kernels: bool = False) -> tuple[int, int]:
    state = {k: v for k, v in module.state_dict().items() if not (skip_kernels and k.endswith(".kernel"))}
    return len(state), sum(v.numel() for v in state.values())


@pytest.mark.parametrize("model_class", VARIANTS)
def test_pyramid_outputs_at_every_decoder_level(model_class):
    model = noisy(model_class(**TINY))
    x = torch.randn(2, 3, 64, 64)
    image, rgbs = model(x)
    assert image.shape == (2, 3, 64, 64)
    assert len(rgbs) == int(math.log2(64)) - 2
    assert [tuple(r.shape) for r in rgbs] == [(2, 3, s, s) for s in (8, 16, 32, 64)]
    assert model(x, return_rgb=False)[1] == []
    assert torch.equal(restored(model, x)[0], restored(model, x)[0])  # stored noise: deterministic
    assert not torch.equal(model(x)[0], model(x)[0])
    with pytest.raises(ValueError, match="out_size=64.*expected 64×64"):
        model(torch.randn(1, 3, 32, 32))


def test_release_configurations_have_the_official_sizes_and_keys():
    with torch.device("meta"):
        clean, original = GFPGANv1Clean(), GFPGANv1()
    tensors, elements = _counts(clean)
    print(f"GFPGANv1Clean(512, cm 2): {tensors} tensors, {elements} elements")
    assert tensors == 285 and round(elements / 1e6, 1) == 87.1
    shapes = {k: tuple(v.shape) for k, v in clean.state_dict().items()}
    assert {
        "conv_body_first.weight": (32, 3, 1, 1),
        "conv_body_down.0.conv1.weight": (32, 32, 3, 3),
        "conv_body_down.0.conv2.weight": (64, 32, 3, 3),
        "conv_body_down.0.skip.weight": (64, 32, 1, 1),
        "final_conv.weight": (256, 256, 3, 3),
        "conv_body_up.6.conv2.weight": (32, 64, 3, 3),
        "final_linear.weight": (8192, 4096),
        "condition_scale.6.2.weight": (32, 32, 3, 3),
        "stylegan_decoder.style_mlp.15.weight": (512, 512),
        "stylegan_decoder.constant_input.weight": (1, 512, 4, 4),
        "stylegan_decoder.style_conv1.weight": (1,),
        "stylegan_decoder.style_conv1.bias": (1, 512, 1, 1),
        "stylegan_decoder.style_conv1.modulated_conv.weight": (1, 512, 512, 3, 3),
        "stylegan_decoder.style_conv1.modulated_conv.modulation.weight": (512, 512),
        "stylegan_decoder.style_convs.12.modulated_conv.weight": (1, 64, 128, 3, 3),
        "stylegan_decoder.to_rgbs.6.bias": (1, 3, 1, 1),
        "stylegan_decoder.to_rgbs.6.modulated_conv.weight": (1, 3, 64, 1, 1),
        "stylegan_decoder.noises.noise14": (1, 1, 512, 512),
    }.items() <= shapes.items()
    assert "stylegan_decoder.noises.noise15" not in shapes and "toRGB.6.weight" in shapes

    official = official_gfpganv1_state(original)
    tensors, elements = len(official), sum(v.numel() for v in official.values())
    print(f"GFPGANv1(512, cm 1): {tensors} tensors, {elements} elements; ours with FIR kernels: "
          f"{_counts(original)}")
    assert round(elements / 1e6, 1) == 76.9
    shapes = {k: tuple(v.shape) for k, v in official.items()}
    assert {
        "conv_body_first.0.weight": (16, 3, 1, 1),
        "conv_body_first.1.bias": (16,),
        "conv_body_down.0.conv1.0.weight": (16, 16, 3, 3),
        "conv_body_down.0.conv1.1.bias": (16,),
        "conv_body_down.0.conv2.1.weight": (32, 16, 3, 3),
        "conv_body_down.0.conv2.2.bias": (32,),
        "conv_body_down.0.skip.1.weight": (32, 16, 1, 1),
        "conv_body_up.6.conv1.0.weight": (32, 32, 3, 3),
        "conv_body_up.6.conv2.weight": (16, 32, 3, 3),
        "conv_body_up.6.conv2.activation.bias": (16,),
        "conv_body_up.6.skip.weight": (16, 32, 1, 1),
        "toRGB.6.bias": (3,),
        "final_linear.weight": (8192, 4096),
        "condition_scale.6.2.bias": (16,),
        "stylegan_decoder.style_mlp.8.weight": (512, 512),
        "stylegan_decoder.style_conv1.activate.bias": (512,),
        "stylegan_decoder.style_convs.13.activate.bias": (32,),
    }.items() <= shapes.items()
    assert not {"conv_body_up.6.conv2.bias", "conv_body_up.6.skip.bias"} & shapes.keys()


def test_paper_model_condition_biases_start_as_the_identity_modulation():
    model = GFPGANv1(**TINY)
    assert all(torch.all(seq[2].bias == 1) for seq in model.condition_scale)
    assert all(torch.all(seq[2].bias == 0) for seq in model.condition_shift)
    assert isinstance(model.stylegan_decoder, Generator) and not model.stylegan_decoder.isconcat


@pytest.mark.parametrize("model_class", VARIANTS)
def test_fixed_decoder_gets_no_gradient(model_class):
    model = model_class(**TINY)
    decoder = {id(p) for p in model.decoder_parameters()}
    assert decoder and all(not p.requires_grad for p in model.decoder_parameters())
    rest = [p for p in model.parameters() if id(p) not in decoder]
    assert all(p.requires_grad for p in rest)
    assert {id(p) for p in model.trainable_parameters()} == {id(p) for p in rest}
    image, rgbs = model(torch.randn(1, 3, 64, 64))
    (image.mean() + sum(r.mean() for r in rgbs)).backward()
    assert all(p.grad is None for p in model.decoder_parameters())
    for module in (model.conv_body_first, model.final_linear, model.condition_scale[0], model.toRGB[3]):
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())
    free = model_class(**TINY, fix_decoder=False)
    assert len(free.trainable_parameters()) == len(list(free.parameters()))
    assert all(p.requires_grad for p in free.parameters())
