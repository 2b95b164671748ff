"""The clean StyleGAN2 (src/models/components/stylegan2_clean.py), GFP-GAN v1.3/v1.4's decoder: the folded
equalized-LR scales, the official names with the core generator's interface, and training in the StyleGAN2
module. Networks are built with random weights on purpose."""

import math
from functools import partial

import pytest
import torch
from torch import nn

from facezoo.losses.gan_regularizers import path_length_penalty
from facezoo.models.components.stylegan2 import SQRT2, Discriminator, StyledConv
from facezoo.models.components.stylegan2_clean import CleanGenerator
from facezoo.models.components.stylegan2_clean import ModulatedConv2d as CleanModulatedConv2d
from facezoo.models.components.stylegan2_clean import StyleConv as CleanStyleConv
from facezoo.models.stylegan2 import StyleGAN2, fixed_noise
from helpers import noisy

STYLE = 32


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def test_clean_layers_fold_the_equalized_lr_scales_exactly():
    """A core (equalized-LR, fused-lrelu) layer and a clean one holding the folded weights compute the same:
    weight·1/√fan_in, modulation weight·1/√style_dim, noise weight and bias ×√2 (the conversion recipe)."""
    core = StyledConv(8, 16, 3, STYLE)
    clean = CleanStyleConv(8, 16, 3, STYLE)
    for p in (core.noise.weight, core.activate.bias, core.conv.modulation.bias):
        nn.init.normal_(p)
    with torch.no_grad():
        clean.modulated_conv.weight.copy_(core.conv.weight * core.conv.scale)
        clean.modulated_conv.modulation.weight.copy_(core.conv.modulation.weight * core.conv.modulation.scale)
        clean.modulated_conv.modulation.bias.copy_(core.conv.modulation.bias)
        clean.weight.copy_(core.noise.weight * SQRT2)
        clean.bias.copy_(core.activate.bias.view(1, -1, 1, 1) * SQRT2)
    x, style, noise = torch.randn(2, 8, 6, 6), torch.randn(2, STYLE), torch.randn(2, 1, 6, 6)
    torch.testing.assert_close(clean(x, style, noise), core(x, style, noise), rtol=1e-4, atol=1e-5)
    assert abs(CleanModulatedConv2d(64, 8, 3, STYLE).weight.std().item() * math.sqrt(64 * 9) - 1) < 0.1


def test_clean_generator_has_the_official_names_and_the_core_interface():
    g = noisy(CleanGenerator(64, STYLE, n_mlp=2, narrow=1 / 16))
    keys = set(g.state_dict())
    assert {"style_mlp.1.weight", "style_mlp.3.bias", "constant_input.weight", "style_conv1.weight",
            "style_conv1.bias", "style_conv1.modulated_conv.modulation.bias", "to_rgb1.bias",
            "style_convs.7.modulated_conv.weight", "to_rgbs.3.bias", "noises.noise8"} <= keys
    assert not any(k.endswith(".kernel") for k in keys) and "style_mlp.2.weight" not in keys
    assert g.isconcat is False and g.n_latent == 10 and g.num_layers == 9 and g.style is g.style_mlp
    torch.testing.assert_close(g.style_conv1.modulated_conv.modulation.bias, torch.ones(g.channels[4]))

    z1, z2 = torch.randn(2, 2, STYLE)
    image, latent = g([z1], return_latents=True, randomize_noise=False)
    assert image.shape == (2, 3, 64, 64) and latent.shape == (2, 10, STYLE)
    assert torch.equal(g([z1], randomize_noise=False)[0], image)  # stored noise: deterministic
    assert not torch.equal(g([z1])[0], image)  # fresh noise at every call
    mixed = g.w_plus([z1, z2], inject_index=4)
    torch.testing.assert_close(mixed[:, :4], g.get_latent(z1).unsqueeze(1).expand(-1, 4, -1))
    torch.testing.assert_close(mixed[:, 4:], g.get_latent(z2).unsqueeze(1).expand(-1, 6, -1))
    assert g.mean_latent(64).shape == (1, STYLE)
    noise = fixed_noise(g, 2, torch.Generator().manual_seed(0))  # what the StyleGAN2 module feeds
    assert torch.equal(g([z1], noise=noise)[0], g([z1], noise=noise)[0])


def test_clean_generator_trains_in_the_stylegan2_module():
    g = CleanGenerator(32, STYLE, n_mlp=2, narrow=1 / 16)
    adam = partial(torch.optim.Adam, lr=1e-3)
    optimizers = {"generator": adam, "discriminator": adam}
    module = StyleGAN2(
        g, Discriminator(32, narrow=1 / 16), optimizers=optimizers, loss_weights={"r1": 10.0, "path": 2.0},
        truncation=0.5, lpips_net=None,
    )
    assert module.sample(2, seed=3).shape == (2, 3, 32, 32)  # truncation goes through `style`
    images, latents = g([torch.randn(2, STYLE)], return_latents=True)
    penalty, _, _ = path_length_penalty(images, latents, torch.zeros(()), 0.01)
    penalty.backward()
    assert g.style_mlp[1].weight.grad is not None
