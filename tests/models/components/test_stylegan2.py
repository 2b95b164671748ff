"""The pure-PyTorch StyleGAN2 core (src/models/components/stylegan2.py): building blocks, generator,
discriminator, GFP-GAN's CS-SFT conditions in the synthesis (core and clean decoders alike), and the official
configurations' keys and counts. Networks are built with random weights on purpose; official-size
configurations are built on the meta device (shapes and counts only, nothing allocated)."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.signal import convolve2d
from torch import nn

from facezoo.models.components.sft import channel_split_sft
from facezoo.models.components.stylegan2 import (
    ConvLayer,
    Discriminator,
    Downsample,
    EqualConv2d,
    EqualLinear,
    Generator,
    ModulatedConv2d,
    StyledConv,
    Upsample,
    fused_leaky_relu,
    make_kernel,
    mixing_noise,
    stylegan_channels,
    upfirdn2d,
)
from facezoo.models.components.stylegan2_clean import CleanGenerator
from helpers import noisy

STYLE = 32
TINY = dict(style_dim=STYLE, n_mlp=2, narrow=1 / 16)  # 32 channels at every resolution up to 64


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _counts(module: nn.Module) -> tuple[int, float]:
    """(number of state_dict tensors, millions of elements), as the reference lists them."""
    state = module.state_dict()
    return len(state), round(sum(t.numel() for t in state.values()) / 1e6, 1)


# --- building blocks ----------------------------------------------------------------------------------------


def test_demodulation_gives_unit_variance_whatever_the_style_scale():
    # Each output is Σ w'·x over in_channel·k² iid N(0,1) inputs with Σ w'² = 1 after demodulation, so every
    # interior pixel is exactly N(0,1). 4·64·14·14 ≈ 50k (correlated) samples: the std is well within ±0.05.
    conv = ModulatedConv2d(64, 64, 3, style_dim=8)
    x, style = torch.randn(4, 64, 16, 16), 3 * torch.randn(4, 8)
    out = conv(x, style)
    assert abs(out[..., 1:-1, 1:-1].std().item() - 1) < 0.05
    with torch.no_grad():  # ×10 on every style: demodulation cancels it exactly
        conv.modulation.weight.mul_(10)
        conv.modulation.bias.mul_(10)
    torch.testing.assert_close(conv(x, style), out, rtol=1e-4, atol=1e-5)
    plain = ModulatedConv2d(64, 64, 3, style_dim=8, demodulate=False)
    plain.load_state_dict(conv.state_dict())
    assert plain(x, style)[..., 1:-1, 1:-1].std() > 5  # the same conv without demodulation follows the style


def test_equalized_learning_rate_scales_at_run_time():
    lin = EqualLinear(64, 32, bias_init=0.5, lr_mul=0.01)
    assert abs(lin.weight.std().item() - 100) < 10  # stored N(0,1)/lr_mul
    assert torch.all(lin.bias == 0.5)
    x = torch.randn(5, 64)
    w_eff, b_eff = lin.weight * 0.01 / math.sqrt(64), lin.bias * 0.01
    torch.testing.assert_close(lin(x), F.linear(x, w_eff, b_eff))
    lin.activation = "fused_lrelu"
    torch.testing.assert_close(lin(x), F.leaky_relu(F.linear(x, w_eff, b_eff), 0.2) * math.sqrt(2))

    conv = EqualConv2d(8, 16, 3, padding=1)
    nn.init.normal_(conv.bias)
    x = torch.randn(2, 8, 6, 6)
    torch.testing.assert_close(conv(x), F.conv2d(x, conv.weight / math.sqrt(8 * 9), conv.bias, padding=1))
    with pytest.raises(ValueError, match="activation"):
        EqualLinear(4, 4, activation="relu")


def _scipy_upfirdn(x: np.ndarray, kernel: np.ndarray, up: int, down: int, pad: tuple[int, int]) -> np.ndarray:
    """Independent reference for one channel: zero insertion, padding, scipy's true 2-D convolution."""
    z = np.zeros((x.shape[0] * up, x.shape[1] * up))
    z[::up, ::up] = x
    z = np.pad(z, (pad, pad))
    return convolve2d(z, kernel, mode="valid")[::down, ::down]


@pytest.mark.parametrize(
    "kernel, up, down, pad",
    [
        (make_kernel([1, 3, 3, 1]) * 4, 2, 1, (2, 1)),  # Upsample
        (make_kernel([1, 3, 3, 1]), 1, 2, (1, 1)),  # Downsample
        (torch.rand(4, 3), 2, 1, (2, 1)),  # an asymmetric kernel checks the flip (true convolution)
        (make_kernel([1, 3, 3, 1]), 2, 1, (4, 3)),  # no transposed conv pads this much: zero insertion
        (make_kernel([1, 3, 3, 1]), 2, 2, (1, 2)),  # up and down together
    ],
)
def test_upfirdn2d_matches_zero_insertion_and_scipy_convolution(kernel, up, down, pad):
    x = torch.randn(2, 3, 7, 7, dtype=torch.float64)
    out = upfirdn2d(x, kernel.double(), up, down, pad)
    for b in range(2):
        for c in range(3):
            expected = _scipy_upfirdn(x[b, c].numpy(), kernel.double().numpy(), up, down, pad)
            np.testing.assert_allclose(out[b, c].numpy(), expected, atol=1e-12)


def test_upsample_and_downsample_modules():
    x = torch.randn(1, 2, 8, 8, dtype=torch.float64)
    up = Upsample([1, 3, 3, 1]).double()
    out = up(x)
    assert out.shape == (1, 2, 16, 16)
    k = up.kernel.numpy()
    expected = _scipy_upfirdn(x[0, 1].numpy(), k, 2, 1, up.pad)
    np.testing.assert_allclose(out[0, 1].numpy(), expected, atol=1e-12)
    assert Downsample([1, 3, 3, 1])(torch.randn(1, 2, 8, 8)).shape == (1, 2, 4, 4)
    ones = torch.ones(1, 1, 8, 8)
    torch.testing.assert_close(up(ones)[..., 2:-2, 2:-2], torch.ones(1, 1, 12, 12))  # DC gain 1 inside


def test_concat_noise_doubles_the_channels_the_activation_sees():
    conv = StyledConv(8, 8, 3, style_dim=16, isconcat=True)
    assert conv.activate.bias.shape == (16,) and conv.noise.weight.shape == (1,)
    nn.init.constant_(conv.noise.weight, 0.7)
    nn.init.normal_(conv.activate.bias)
    x, style, feature = torch.randn(2, 8, 8, 8), torch.randn(2, 16), torch.randn(2, 8, 8, 8)
    out = conv(x, style, feature)  # GPEN passes an encoder feature as the "noise"
    assert out.shape == (2, 16, 8, 8)
    bias = conv.activate.bias
    torch.testing.assert_close(out[:, :8], fused_leaky_relu(conv.conv(x, style), bias[:8]))
    torch.testing.assert_close(out[:, 8:], fused_leaky_relu(0.7 * feature, bias[8:]))
    assert conv(x, style).shape == (2, 16, 8, 8)  # random noise with C channels when none is given
    assert StyledConv(8, 8, 3, style_dim=16).activate.bias.shape == (8,)


def test_dilated_conv_on_a_blown_up_input_equals_the_blown_up_conv():
    # StyleGANEX's premise: a 3×3 conv dilated by d on a d× nearest-upsampled map is the upsampled plain conv
    conv = ModulatedConv2d(8, 8, 3, style_dim=16)
    dilated = ModulatedConv2d(8, 8, 3, style_dim=16, dilation=4)
    dilated.load_state_dict(conv.state_dict())
    x, style = torch.randn(2, 8, 5, 5), torch.randn(2, 16)

    def blow_up(t):
        return t.repeat_interleave(4, -1).repeat_interleave(4, -2)

    torch.testing.assert_close(dilated(blow_up(x), style), blow_up(conv(x, style)))
    up = ModulatedConv2d(8, 8, 3, style_dim=16, upsample=True, dilation=4)
    assert up(torch.randn(2, 8, 20, 20), style).shape == (2, 8, 20, 20)  # "upsampling" at unchanged size


def _official_dilated_upsampling(conv: ModulatedConv2d, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """The official StyleGANEX form, one sample at a time: [1,2,1] blur as a dilated transposed conv, then the
    modulated, demodulated weight as a transposed conv with padding `dilation`, both dilated by dilation/2."""
    half, outs = conv.dilation // 2, []
    blur = make_kernel((1, 2, 1))[None, None].double()
    for xi, si in zip(x, conv.modulation(style), strict=True):
        w = conv.scale * conv.weight[0] * si.view(1, -1, 1, 1)
        w = w * torch.rsqrt(w.pow(2).sum([1, 2, 3], keepdim=True) + 1e-8)
        c = xi.shape[0]
        xi = F.conv_transpose2d(xi[None], blur.expand(c, 1, 3, 3), groups=c, dilation=half)
        outs.append(F.conv_transpose2d(xi, w.transpose(0, 1), padding=conv.dilation, dilation=half))
    return torch.cat(outs)


def test_dilated_upsampling_conv_is_the_official_pair_of_transposed_convs():
    conv = ModulatedConv2d(8, 6, 3, style_dim=16, upsample=True, dilation=8).double()
    x, style = torch.randn(2, 8, 9, 7, dtype=torch.float64), torch.randn(2, 16, dtype=torch.float64)
    torch.testing.assert_close(conv(x, style), _official_dilated_upsampling(conv, x, style))


@pytest.mark.parametrize(
    "options, hw",
    [
        (dict(), 5),  # x smaller than the weight: the shared weight in inference, also for one sample
        (dict(), 12),  # larger: the per-sample weight for one sample
        (dict(upsample=True), 6),
        (dict(upsample=True, dilation=4), 6),
        (dict(downsample=True), 8),
        (dict(kernel_size=1, demodulate=False), 6),  # ToRGB's
    ],
)
def test_inference_paths_of_the_modulated_conv_compute_the_training_numbers(options, hw):
    conv = ModulatedConv2d(8, 8, **{"kernel_size": 3, **options}, style_dim=16).double()
    x, style = torch.randn(2, 8, hw, hw, dtype=torch.float64), torch.randn(2, 16, dtype=torch.float64)
    trained = conv(x, style)  # grad enabled, train mode: per-sample weights, one grouped conv
    conv.eval()
    with torch.no_grad():
        torch.testing.assert_close(conv(x, style), trained)  # the batch: shared weight
        for i in range(2):  # one sample, also channels-last (the layout is kept)
            one = conv(x[i : i + 1].contiguous(memory_format=torch.channels_last), style[i : i + 1])
            torch.testing.assert_close(one, trained[i : i + 1])
            assert one.is_contiguous(memory_format=torch.channels_last)


def test_styled_conv_without_autograd_adds_noise_and_activates_in_place_to_the_same_numbers():
    layer = StyledConv(8, 8, 3, 16).double()
    layer.noise.weight.data.fill_(0.5)
    layer.activate.bias.data.normal_()
    x, style = torch.randn(2, 8, 6, 6, dtype=torch.float64), torch.randn(2, 16, dtype=torch.float64)
    noise = torch.randn(2, 1, 6, 6, dtype=torch.float64)
    with_grad = layer(x, style, noise)
    with torch.no_grad():
        torch.testing.assert_close(layer(x, style, noise), with_grad)
    with_grad.sum().backward()  # the training path stays differentiable
    assert layer.noise.weight.grad is not None and layer.activate.bias.grad is not None


# --- generator ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [32, 64])
def test_generator_builds_and_runs(size):
    g = Generator(size, **TINY)
    assert g.n_latent == 2 * int(math.log2(size)) - 2
    assert len(list(g.noises.buffers())) == g.num_layers == g.n_latent - 1
    z = torch.randn(2, STYLE)
    image, latent = g([z], return_latents=True, randomize_noise=False)
    assert image.shape == (2, 3, size, size) and latent.shape == (2, g.n_latent, STYLE)
    assert g([z])[1] is None
    w_plus_image, _ = g([latent], input_is_latent=True, randomize_noise=False)  # a w+ code is taken as it is
    torch.testing.assert_close(w_plus_image, image)
    concat = Generator(size, isconcat=True, **TINY)  # GPEN's decoder: no stored noise
    assert concat([z])[0].shape == (2, 3, size, size) and not list(concat.noises.buffers())
    with pytest.raises(ValueError, match="stores no noise"):
        concat([z], randomize_noise=False)


def test_style_mixing_switches_to_the_second_code_at_inject_index():
    g = Generator(32, **TINY)
    z1, z2, z3 = torch.randn(3, 1, STYLE)
    fixed = dict(randomize_noise=False)
    mixed, latent = g([z1, z2], inject_index=3, return_latents=True, **fixed)
    torch.testing.assert_close(latent[:, :3], g.style(z1).unsqueeze(1).expand(-1, 3, -1))
    torch.testing.assert_close(latent[:, 3:], g.style(z2).unsqueeze(1).expand(-1, g.n_latent - 3, -1))
    assert not torch.allclose(g([z1, z3], inject_index=3, **fixed)[0], mixed)
    single = g([z1], **fixed)[0]
    torch.testing.assert_close(g([z1, z3], inject_index=g.n_latent, **fixed)[0], single)  # no layer left
    _, drawn = g([z1, z2], return_latents=True)  # inject_index drawn in 1…n_latent−1: both codes used
    assert not torch.equal(drawn[:, 0], drawn[:, -1])


def test_truncation_zero_collapses_to_the_mean_latent():
    g = Generator(32, **TINY)
    mean = g.mean_latent(256)
    assert mean.shape == (1, STYLE)
    fixed = dict(truncation=0.0, truncation_latent=mean, randomize_noise=False)
    a, b = g([torch.randn(1, STYLE)], **fixed)[0], g([torch.randn(1, STYLE)], **fixed)[0]
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a, g([mean], input_is_latent=True, randomize_noise=False)[0])
    with pytest.raises(ValueError, match="truncation_latent"):
        g([torch.randn(1, STYLE)], truncation=0.5)


def test_mixing_noise_gives_one_or_two_codes():
    assert [z.shape for z in mixing_noise(3, STYLE, 0.0)] == [(3, STYLE)]
    assert [z.shape for z in mixing_noise(3, STYLE, 1.0)] == [(3, STYLE), (3, STYLE)]


# --- GFP-GAN's CS-SFT conditions in the synthesis -----------------------------------------------------------


def _identity_conditions(decoder, batch: int, sft_half: bool) -> list:
    res = [2**i for i in range(3, decoder.log_size + 1)]
    widths = [decoder.channels[r] // (2 if sft_half else 1) for r in res]
    return [(torch.ones(batch, c, r, r), torch.zeros(batch, c, r, r)) 
            for c, r in zip(widths, res, strict=True)]


@pytest.mark.parametrize("decoder_class", [Generator, CleanGenerator])
@pytest.mark.parametrize("sft_half", [True, False])
def test_decoder_with_identity_conditions_equals_the_plain_decoder(decoder_class, sft_half):
    decoder = noisy(decoder_class(32, STYLE, 2, narrow=1 / 16))
    latent = decoder.w_plus([torch.randn(2, STYLE)])
    feature, noise = decoder.first_feature(latent), decoder.stored_noise()
    plain = decoder.synthesize(latent, feature, noise)
    conditions = _identity_conditions(decoder, 2, sft_half)
    torch.testing.assert_close(decoder.synthesize(latent, feature, noise, conditions, sft_half), plain)
    assert torch.equal(decoder([latent], input_is_latent=True, randomize_noise=False)[0], plain)
    with pytest.raises(ValueError, match=r"expected 3 \(scale, shift\) conditions .* got 2"):
        decoder.synthesize(latent, feature, noise, conditions[:2])


@pytest.mark.parametrize("decoder_class", [Generator, CleanGenerator])
def test_sft_acts_between_the_upsampling_and_the_second_conv_of_each_level(decoder_class):
    decoder = decoder_class(32, STYLE, 2, narrow=1 / 16)
    _, _, convs, _ = decoder.synthesis_layers()
    seen = {}
    convs[2].register_forward_hook(lambda m, args, out: seen.update(up=out))  # level 16: upsampling conv
    convs[3].register_forward_pre_hook(lambda m, args: seen.update(second=args[0]))
    latent = decoder.w_plus([torch.randn(2, STYLE)])
    shapes = [scale.shape for scale, _ in _identity_conditions(decoder, 2, True)]
    conditions = [(torch.randn(shape), torch.randn(shape)) for shape in shapes]
    decoder.synthesize(latent, decoder.first_feature(latent), decoder.stored_noise(), conditions)
    torch.testing.assert_close(seen["second"], channel_split_sft(seen["up"], *conditions[1]))


# --- discriminator ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("batch", [1, 3, 4, 6])
def test_discriminator_logits_and_features(batch):
    d = Discriminator(32, narrow=1 / 16)
    logits, features = d(torch.randn(batch, 3, 32, 32), return_features=True)
    assert logits.shape == (batch, 1)
    assert len(features) == len(d.convs) + 1
    assert [f.shape[-1] for f in features] == [32, 16, 8, 4, 4]
    with pytest.raises(ValueError, match="got a"):
        d(torch.randn(1, 3, 64, 64))


@pytest.mark.parametrize("batch, group, stddev_group", [(8, 4, 4), (6, 3, 4), (5, 1, 4), (6, 6, None)])
def test_minibatch_stddev_groups_like_rosinality(batch, group, stddev_group):
    # samples n and n + B/G share a group (rosinality's view(G, -1, ...)); G = largest divisor of B up to 4,
    # or the whole batch (GPEN)
    d = Discriminator(32, narrow=1 / 16, stddev_group=stddev_group)
    x = torch.randn(batch, 5, 4, 4)
    std = d.minibatch_stddev(x)
    assert std.shape == (batch, 1, 4, 4)
    members = torch.arange(0, batch, batch // group)
    expected = torch.sqrt(x[members].var(0, unbiased=False) + 1e-8).mean()
    torch.testing.assert_close(std[members], expected.expand(group, 1, 4, 4))


# --- official configurations (reference/official-implementations.md) ----------------------------------------


def _gpen_encoder(size: int, channel_multiplier: int, narrow: float) -> nn.Module:
    """GPEN's encoder (`ecd0`…, `final_linear`), assembled from the shared blocks to count the full model."""
    ch = stylegan_channels(channel_multiplier, narrow)
    layers = [nn.Sequential(ConvLayer(3, ch[size], 1))]
    for i in range(int(math.log2(size)), 2, -1):
        layers.append(nn.Sequential(ConvLayer(ch[2**i], ch[2 ** (i - 1)], 3, downsample=True)))
    layers.append(nn.Sequential(EqualLinear(ch[4] * 16, 512, activation="fused_lrelu")))
    return nn.ModuleList(layers)


@pytest.mark.parametrize(
    "size, channel_multiplier, narrow, tensors, millions",
    [(512, 2, 1.0, 163, 71.0), (256, 1, 0.5, 144, 18.9)],  # GPEN-BFR-512, GPEN-BFR-256
)
def test_gpen_generator_counts(size, channel_multiplier, narrow, tensors, millions):
    with torch.device("meta"):
        g = Generator(size, channel_multiplier=channel_multiplier, narrow=narrow, isconcat=True)
        encoder = _gpen_encoder(size, channel_multiplier, narrow)
    assert _counts(nn.ModuleList([g, encoder])) == (tensors, millions)


def test_gpen_512_key_names_and_shapes():
    with torch.device("meta"):
        g = Generator(512, channel_multiplier=2, isconcat=True)
        d = Discriminator(512, channel_multiplier=2)
        encoder = _gpen_encoder(512, 2, 1.0)
    shapes = {k: tuple(v.shape) for k, v in g.state_dict().items()}
    expected = {
        "style.1.weight": (512, 512),
        "style.8.bias": (512,),
        "input.input": (1, 512, 4, 4),
        "conv1.conv.weight": (1, 512, 512, 3, 3),
        "conv1.conv.modulation.weight": (512, 512),
        "conv1.noise.weight": (1,),
        "conv1.activate.bias": (1024,),
        "to_rgb1.conv.weight": (1, 3, 1024, 1, 1),
        "convs.0.conv.weight": (1, 512, 1024, 3, 3),
        "convs.0.conv.blur.kernel": (4, 4),
        "convs.0.conv.modulation.weight": (1024, 512),
        "convs.13.conv.weight": (1, 64, 128, 3, 3),
        "to_rgbs.6.upsample.kernel": (4, 4),
        "to_rgbs.6.conv.weight": (1, 3, 128, 1, 1),
        "to_rgbs.6.bias": (1, 3, 1, 1),
    }
    assert {k: shapes.get(k) for k in expected} == expected
    assert not any(k.startswith("noises.") for k in shapes)
    e_shapes = {k: tuple(v.shape) for k, v in encoder.state_dict().items()}  # ecdN.0.* ↔ N.0.*
    assert e_shapes["0.0.0.weight"] == (64, 3, 1, 1) and e_shapes["1.0.0.kernel"] == (4, 4)
    assert e_shapes["1.0.1.weight"] == (128, 64, 3, 3) and e_shapes["8.0.weight"] == (512, 8192)
    d_shapes = {k: tuple(v.shape) for k, v in d.state_dict().items()}
    assert d_shapes["convs.0.0.weight"] == (64, 3, 1, 1)
    assert d_shapes["final_conv.0.weight"] == (512, 513, 3, 3)
    assert {"convs.1.conv1.0.weight", "convs.1.conv2.0.kernel", "convs.1.skip.1.weight"} <= d_shapes.keys()


def test_discriminator_counts():
    with torch.device("meta"):
        gpen = Discriminator(512, channel_multiplier=2, narrow=1)  # GPEN-BFR-512-D
        styleganex = Discriminator(1024, channel_multiplier=2)
        basicsr = Discriminator(512, channel_multiplier=1)  # GFP-GAN's global D
    assert _counts(gpen) == (57, 29.0)
    assert _counts(styleganex) == (64, 29.0)
    # BasicSR keeps its blur kernels out of the state_dict: 7 ResBlocks × 2 fewer tensors, same weights
    tensors, millions = _counts(basicsr)
    assert (tensors - 14, millions) == (43, 24.0)


def test_styleganex_decoder_keys():
    with torch.device("meta"):
        g = Generator(1024, dilation=8)
    keys = g.state_dict().keys()
    blur = sorted(k for k in keys if k.endswith("blur_weight"))
    convs = [f"convs.{i}.conv.blur_weight" for i in (0, 2, 4)]
    assert blur == convs + [f"to_rgbs.{i}.blur_weight" for i in range(3)]
    assert g.state_dict()["convs.0.conv.blur_weight"].shape == (1, 1, 3, 3)
    assert {f"noises.noise_{i}" for i in range(17)} <= keys and "convs.15.conv.weight" in keys
    assert g.state_dict()["conv1.activate.bias"].shape == (512,) and g.n_latent == 18
