"""StyleGANEX's generator (src/models/components/styleganex.py): a StyleGAN2 with dilated shallow levels that
reproduces the StyleGAN2 it is loaded from, takes a first-layer feature of any size, the first-layer RGB skip
and the encoder's skip fusion where the official decoder applies them. Tiny networks (32 channels, size 64 /
128) with random weights; the official 1024 configuration on the meta device (shapes only)."""

import math

import pytest
import torch
import torch.nn.functional as F

from facezoo.models.components.stylegan2 import Generator, make_kernel
from facezoo.models.components.styleganex import StyleGANEXGenerator
from helpers import noisy

STYLE = 32
TINY = dict(style_dim=STYLE, n_mlp=2, narrow=1 / 16)  # 32 channels up to 64, 16 at 128
STORED = dict(input_is_latent=True, randomize_noise=False)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _pair(size: int = 64) -> tuple[Generator, StyleGANEXGenerator]:
    """A StyleGAN2 with its noise switched on, and a StyleGANEX loaded with its state_dict (float64)."""
    stylegan2 = noisy(Generator(size, **TINY)).double()
    ex = StyleGANEXGenerator(size, **TINY).double()
    ex.load_stylegan2_state_dict(stylegan2.state_dict())
    return stylegan2, ex


def _w_plus(g: Generator, batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, g.n_latent, STYLE, dtype=torch.float64)


def _blow_up(x: torch.Tensor, factor: int) -> torch.Tensor:
    return x.repeat_interleave(factor, -1).repeat_interleave(factor, -2)


# --- StyleGANEX reproduces StyleGAN2 ------------------------------------------------------------------------


def test_without_a_feature_it_generates_the_stylegan2_it_was_loaded_from():
    stylegan2, ex = _pair()
    latent = _w_plus(ex)
    expected = stylegan2([latent], **STORED)[0]
    torch.testing.assert_close(ex([latent], **STORED)[0], expected)
    fresh = [torch.randn_like(n) for n in stylegan2.stored_noise()]  # any noise of StyleGAN2's sizes
    torch.testing.assert_close(
        ex([latent], input_is_latent=True, noise=fresh)[0],
        stylegan2([latent], input_is_latent=True, noise=fresh)[0],
    )
    with torch.inference_mode():  # the shared-weight batch path of the dilated convs too
        torch.testing.assert_close(ex.eval()([latent], **STORED)[0], expected)
    assert not torch.allclose(StyleGANEXGenerator(64, **TINY).double()([latent], **STORED)[0], expected)


def test_the_constant_feature_is_pooled_to_32_and_equals_the_constant_blown_up_as_f():
    stylegan2, ex = _pair()
    latent = _w_plus(ex)
    constant = ex.input.input.expand(2, -1, -1, -1)
    assert torch.equal(ex.first_feature(latent), F.adaptive_avg_pool2d(constant, 32))  # the official pooling
    f = _blow_up(constant, 8)  # StyleGAN2's first feature as f
    torch.testing.assert_close(
        ex([latent], first_layer_feature=f, **STORED)[0], stylegan2([latent], **STORED)[0]
    )


# --- a first-layer feature of any size ----------------------------------------------------------------------


@pytest.mark.parametrize("hw", [(6, 6), (5, 7), (3, 2)])
def test_the_output_is_size_over_32_times_the_feature(hw):
    ex = noisy(StyleGANEXGenerator(64, **TINY))
    latent = _w_plus(ex).float()
    f = torch.randn(2, ex.channels[4], *hw)
    image = ex([latent], first_layer_feature=f, **STORED)[0]
    assert image.shape == (2, 3, 2 * hw[0], 2 * hw[1]) and torch.isfinite(image).all()
    torch.testing.assert_close(ex([latent], first_layer_feature=f, **STORED)[0], image)  # stored noise: fixed
    random_noise = ex([latent], input_is_latent=True, first_layer_feature=f)[0]  # drawn at the feature's size
    assert random_noise.shape == image.shape and not torch.allclose(random_noise, image)
    assert ex([latent], input_is_latent=True)[0].shape == (2, 3, 64, 64)


def test_the_official_1024_decoder_gives_32_times_the_feature():
    with torch.device("meta"):
        ex = StyleGANEXGenerator(1024)
        latent = torch.empty(1, 18, 512)
        shapes = [
            ex([latent], first_layer_feature=torch.empty(1, 512, h, w), **STORED)[0].shape
            for h, w in [(5, 7), (8, 8), (40, 40)]
        ]
    assert shapes == [(1, 3, 160, 224), (1, 3, 256, 256), (1, 3, 1280, 1280)]


def test_stored_noise_is_average_pooled_to_each_layers_size():
    ex = noisy(StyleGANEXGenerator(64, **TINY))
    latent, f = _w_plus(ex).float(), torch.randn(2, ex.channels[4], 5, 7)
    # layers: conv1 and levels 8, 16, 32 at 5×7 (noise 0…6), level 64 at 10×14 (noise 7, 8)
    sizes = [(5, 7)] * 7 + [(10, 14)] * 2
    pooled = [F.adaptive_avg_pool2d(n, s) for n, s in zip(ex.stored_noise(), sizes, strict=True)]
    image = ex([latent], first_layer_feature=f, **STORED)[0]
    torch.testing.assert_close(
        ex([latent], input_is_latent=True, noise=pooled, first_layer_feature=f)[0], image
    )
    with pytest.raises(ValueError, match="noise inputs"):
        ex([latent], input_is_latent=True, noise=pooled[:3], first_layer_feature=f)


def test_first_layer_rgb_takes_the_place_of_conv1_and_to_rgb1():
    # official first_layer_feature_ind ≠ 0: f is conv1's output, the RGB to_rgb1's; feeding in what these two
    # layers compute from f gives the image of f
    ex = noisy(StyleGANEXGenerator(64, **TINY))
    latent, f = _w_plus(ex).float(), torch.randn(2, ex.channels[4], 5, 7)
    expected = ex([latent], first_layer_feature=f, **STORED)[0]
    out = ex.conv1(f, latent[:, 0], ex.stored_noise()[0])
    rgb = ex.to_rgb1(out, latent[:, 1])

    def fail(module, args):
        raise AssertionError("conv1 / to_rgb1 ran")

    ex.conv1.register_forward_pre_hook(fail)
    ex.to_rgb1.register_forward_pre_hook(fail)
    torch.testing.assert_close(
        ex([latent], first_layer_feature=out, first_layer_rgb=rgb, **STORED)[0], expected
    )


# --- the encoder's skip fusion ------------------------------------------------------------------------------


def test_fusion_k_acts_on_level_4_2k_before_the_upsampling_conv_of_the_next_level():
    ex = StyleGANEXGenerator(128, **TINY)  # levels 8…128; fusion 0…4
    latent, f = _w_plus(ex).float(), torch.randn(2, ex.channels[4], 3, 5)
    sizes = [(3, 5)] * 4 + [(6, 10)]  # the levels 4…32 at f's size, then ×2
    features = [torch.randn(2, ex.channels[4 * 2**k], *s) for k, s in enumerate(sizes)]
    produced, seen, calls = {}, {}, []
    ex.conv1.register_forward_hook(lambda m, a, out: produced.update({(0, "out"): out}))
    ex.to_rgb1.register_forward_hook(lambda m, a, rgb: produced.update({(0, "rgb"): rgb}))
    for k in range(5):
        ex.convs[2 * k + 1].register_forward_hook(
            lambda m, a, out, k=k: produced.update({(k + 1, "out"): out})
        )
        ex.to_rgbs[k].register_forward_hook(lambda m, a, rgb, k=k: produced.update({(k + 1, "rgb"): rgb}))
        ex.convs[2 * k].register_forward_pre_hook(lambda m, a, k=k: seen.update({(k, "out"): a[0]}))
        ex.to_rgbs[k].register_forward_pre_hook(lambda m, a, k=k: seen.update({(k, "rgb"): a[2]}))

    def fusion_layer(out, feature, rgb):
        k = len(calls)
        calls.append(k)
        assert out is produced[(k, "out")] and rgb is produced[(k, "rgb")] and feature is features[k]
        return out + feature, rgb + 1

    image = ex([latent], first_layer_feature=f, skip_features=features, fusion=[fusion_layer] * 5, **STORED)[
        0
    ]
    assert calls == [0, 1, 2, 3, 4] and image.shape == (2, 3, 12, 20)
    for k in range(5):  # what convs[2k] and to_rgbs[k] get: the fused feature and RGB
        torch.testing.assert_close(seen[(k, "out")], produced[(k, "out")] + features[k])
        torch.testing.assert_close(seen[(k, "rgb")], produced[(k, "rgb")] + 1)


def test_fusion_uses_the_first_features_and_identity_fusion_changes_nothing():
    ex = StyleGANEXGenerator(64, **TINY)
    latent, f = _w_plus(ex).float(), torch.randn(2, ex.channels[4], 4, 6)
    features = [torch.randn(2, ex.channels[4], 4, 6) for _ in range(7)]  # the encoder returns all seven
    plain = ex([latent], first_layer_feature=f, **STORED)[0]
    identity = [lambda out, feature, rgb: (out, rgb)] * 2
    torch.testing.assert_close(
        ex([latent], first_layer_feature=f, skip_features=features, fusion=identity, **STORED)[0], plain
    )
    shift_rgb = [lambda out, feature, rgb: (out, rgb)] * 3 + [lambda out, feature, rgb: (out, rgb + 1)]
    shifted = ex([latent], first_layer_feature=f, skip_features=features, fusion=shift_rgb, **STORED)[0]
    # the last level's RGB skip (8×12) is upsampled ×2 by a FIR filter with DC gain 1: +1 inside the border
    torch.testing.assert_close(shifted[..., 2:-2, 2:-2], plain[..., 2:-2, 2:-2] + 1)


def test_one_face_on_the_cpu_runs_channels_last_to_the_numbers_of_the_batch():
    from facezoo.models.components.styleganex_encoder import FusionLayer

    ex = StyleGANEXGenerator(128, **TINY).double()  # the dilated levels, then two upsampling ones
    latent, f = _w_plus(ex), torch.randn(2, ex.channels[4], 3, 5, dtype=torch.float64)
    features = [torch.randn(2, 16, 3, 5, dtype=torch.float64) for _ in range(4)]
    fusion = [FusionLayer(16, ex.channels[4 * 2**k]).double() for k in range(4)]
    for layer in fusion:  # away from the identity, so that a lost feature would show
        torch.nn.init.normal_(layer.fusion_out.weight, std=0.05)
    layouts = []
    ex.convs[-1].register_forward_pre_hook(
        lambda m, a: layouts.append(a[0].is_contiguous(memory_format=torch.channels_last))
    )
    batch = ex([latent], first_layer_feature=f, skip_features=features, fusion=fusion, **STORED)[0]
    assert layouts == [False]  # a batch with autograd: per-sample grouped convs, the default layout
    for i in range(2):
        with torch.no_grad():
            one = ex([latent[i : i + 1]], first_layer_feature=f[i : i + 1],
                     skip_features=[t[i : i + 1] for t in features], fusion=fusion, **STORED)[0]
        torch.testing.assert_close(one, batch[i : i + 1])
        assert one.is_contiguous()  # handed back in the default layout
    assert layouts == [False, True, True]


def test_bad_fusion_and_feature_inputs_are_refused():
    ex = StyleGANEXGenerator(64, **TINY)
    latent, f = _w_plus(ex).float(), torch.randn(2, ex.channels[4], 4, 6)
    identity = [lambda out, feature, rgb: (out, rgb)]

    def run(**kwargs):
        return ex([latent], input_is_latent=True, **kwargs)

    with pytest.raises(ValueError, match="go together"):
        run(first_layer_feature=f, fusion=identity)
    with pytest.raises(ValueError, match="2 fusion layers but only 1 skip_features"):
        run(first_layer_feature=f, skip_features=[f], fusion=identity * 2)
    with pytest.raises(ValueError, match=r"skip_features\[0\] is \(8, 12\), the decoder feature .* \(4, 6\)"):
        run(first_layer_feature=f, skip_features=[torch.randn(2, 32, 8, 12)], fusion=identity)
    with pytest.raises(ValueError, match="at most 4 fusion callables"):
        run(first_layer_feature=f, skip_features=[f] * 5, fusion=identity * 5)
    with pytest.raises(
        ValueError, match=r"first_layer_feature \(2, 16, 4, 6\): expected \(2, 32, H_f, W_f\)"
    ):
        run(first_layer_feature=f[:, :16])
    with pytest.raises(ValueError, match="first_layer_feature"):
        run(first_layer_feature=f[:1])
    with pytest.raises(ValueError, match=r"first_layer_rgb \(2, 3, 4, 5\): expected \(2, 3, 4, 6\)"):
        run(first_layer_feature=f, first_layer_rgb=torch.randn(2, 3, 4, 5))
    with pytest.raises(ValueError, match="needs the first_layer_feature"):
        run(first_layer_rgb=torch.randn(2, 3, 4, 6))
    with pytest.raises(ValueError, match="StyleGANEX size 16"):
        StyleGANEXGenerator(16, **TINY)


# --- weights ------------------------------------------------------------------------------------------------


def _rosinality_g_ema_shapes(size: int, style_dim: int, n_mlp: int, width: dict[int, int]) -> dict:
    """rosinality/stylegan2-pytorch `Generator(size, style_dim, n_mlp)`'s state_dict keys → shapes (its
    model.py), written out independently of the core."""
    shapes = {}
    for i in range(1, n_mlp + 1):
        shapes |= {f"style.{i}.weight": (style_dim, style_dim), f"style.{i}.bias": (style_dim,)}

    def styled(name, cin, cout, upsample=False):
        shapes.update(
            {
                f"{name}.conv.weight": (1, cout, cin, 3, 3),
                f"{name}.conv.modulation.weight": (cin, style_dim),
                f"{name}.conv.modulation.bias": (cin,),
                f"{name}.noise.weight": (1,),
                f"{name}.activate.bias": (cout,),
            }
        )
        if upsample:
            shapes[f"{name}.conv.blur.kernel"] = (4, 4)

    def to_rgb(name, cin, upsample=True):
        shapes.update(
            {
                f"{name}.conv.weight": (1, 3, cin, 1, 1),
                f"{name}.conv.modulation.weight": (cin, style_dim),
                f"{name}.conv.modulation.bias": (cin,),
                f"{name}.bias": (1, 3, 1, 1),
            }
        )
        if upsample:
            shapes[f"{name}.upsample.kernel"] = (4, 4)

    shapes["input.input"] = (1, width[4], 4, 4)
    styled("conv1", width[4], width[4])
    to_rgb("to_rgb1", width[4], upsample=False)
    log_size = int(math.log2(size))
    for j, res in enumerate(2**i for i in range(3, log_size + 1)):
        styled(f"convs.{2 * j}", width[res // 2], width[res], upsample=True)
        styled(f"convs.{2 * j + 1}", width[res], width[res])
        to_rgb(f"to_rgbs.{j}", width[res])
    for i in range((log_size - 2) * 2 + 1):
        side = 2 ** ((i + 5) // 2)
        shapes[f"noises.noise_{i}"] = (1, 1, side, side)
    return shapes


def _random_state(shapes: dict) -> dict:
    """Random tensors, and the real FIR kernels (buffers in the files)."""
    fir = torch.outer(*2 * [torch.tensor([1.0, 3, 3, 1])]) / 64
    return {k: fir * 4 if k.endswith(".kernel") else torch.randn(shape) for k, shape in shapes.items()}


def test_stylegan2_states_load_and_the_blur_constants_stay():
    ex = StyleGANEXGenerator(64, **TINY)
    blur = make_kernel([1, 2, 1])[None, None]
    width = {r: 32 for r in (4, 8, 16, 32, 64)}
    rosinality = _random_state(_rosinality_g_ema_shapes(64, STYLE, 2, width))
    zoo = Generator(64, **TINY).state_dict()  # a zoo model=stylegan2 generator (isconcat=false)
    for state in (rosinality, zoo):
        ex.load_stylegan2_state_dict(state)
        loaded = ex.state_dict()
        assert all(torch.equal(loaded[k], v) for k, v in state.items())
        extra = sorted(set(loaded) - set(state))
        assert extra == [f"convs.{i}.conv.blur_weight" for i in (0, 2, 4)] + [
            f"to_rgbs.{i}.blur_weight" for i in range(3)
        ]
        assert all(torch.equal(loaded[k], blur) for k in extra)
    official = {k: v for k, v in ex.state_dict().items()}  # an official decoder state holds the constants
    ex.load_stylegan2_state_dict(official)
    del rosinality["noises.noise_3"]
    with pytest.raises(RuntimeError, match="noises.noise_3"):
        ex.load_stylegan2_state_dict(rosinality)
    with pytest.raises(RuntimeError, match="conv1.activate.bias"):  # a GPEN (concat-noise) prior does not fit
        ex.load_stylegan2_state_dict(Generator(64, isconcat=True, **TINY).state_dict())


def test_the_1024_decoder_is_a_rosinality_g_ema_plus_six_blur_constants():
    with torch.device("meta"):
        ex = StyleGANEXGenerator(1024)
    shapes = {k: tuple(v.shape) for k, v in ex.state_dict().items()}
    g_ema = _rosinality_g_ema_shapes(
        1024, 512, 8, {4: 512, 8: 512, 16: 512, 32: 512, 64: 512, 128: 256, 256: 128, 512: 64, 1024: 32}
    )
    blur = {f"convs.{i}.conv.blur_weight": (1, 1, 3, 3) for i in (0, 2, 4)}
    assert shapes == g_ema | blur | {f"to_rgbs.{i}.blur_weight": (1, 1, 3, 3) for i in range(3)}
    assert ex.n_latent == 18 and ex.num_layers == 17
