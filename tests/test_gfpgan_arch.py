"""GFP-GAN's generators: CS-SFT, the clean StyleGAN2, both released U-Net variants and the import of official
weights. Networks are built with random weights on purpose; release-size ones on the meta device (nothing
allocated). The BasicSR names of the paper model are written out below from
reference/official-implementations.md §1, independently of the importer's table.
"""

import math
import re
from functools import partial

import pytest
import torch
from torch import nn

from facezoo.losses.gan_regularizers import path_length_penalty
from facezoo.models.components.gfpgan import GFPGANv1, GFPGANv1Clean
from facezoo.models.components.sft import channel_split_sft
from facezoo.models.components.stylegan2 import SQRT2, Discriminator, Generator, StyledConv
from facezoo.models.components.stylegan2_clean import CleanGenerator
from facezoo.models.components.stylegan2_clean import ModulatedConv2d as CleanModulatedConv2d
from facezoo.models.components.stylegan2_clean import StyleConv as CleanStyleConv
from facezoo.models.stylegan2 import StyleGAN2, fixed_noise
from facezoo.utils.errors import FacezooError
from facezoo.weights.gfpgan import gfpgan_state, import_gfpgan, import_gfpgan_prior, infer_gfpgan_config

STYLE = 32
TINY = dict(out_size=64, num_style_feat=STYLE, num_mlp=2, narrow=0.125)  # decoder ≤ 64 ch, U-Net ≤ 32 ch
VARIANTS = [GFPGANv1Clean, GFPGANv1]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _counts(module: nn.Module, skip_kernels: bool = False) -> tuple[int, int]:
    state = {k: v for k, v in module.state_dict().items() if not (skip_kernels and k.endswith(".kernel"))}
    return len(state), sum(v.numel() for v in state.values())


def _noisy(module: nn.Module) -> nn.Module:
    """Noise strengths (the only (1,)-shaped parameters, initialised to 0) switched on, so noise shows."""
    with torch.no_grad():
        for p in module.parameters():
            if p.shape == (1,):
                p.fill_(0.5)
    return module


def _restore(model: nn.Module, x: torch.Tensor):
    return model(x, randomize_noise=False)


# --- BasicSR names of the paper model's decoder (basicsr/archs/stylegan2_arch.py StyleGAN2Generator) ------

CORE_TO_BASICSR = [  # (our core Generator name, BasicSR name), first match wins
    (r"style\.(\d+)\.(weight|bias)", r"style_mlp.\1.\2"),
    (r"input\.input", "constant_input.weight"),
    (r"conv1\.conv\.(.+)", r"style_conv1.modulated_conv.\1"),
    (r"conv1\.noise\.weight", "style_conv1.weight"),
    (r"conv1\.activate\.bias", "style_conv1.activate.bias"),
    (r"convs\.(\d+)\.conv\.(.+)", r"style_convs.\1.modulated_conv.\2"),
    (r"convs\.(\d+)\.noise\.weight", r"style_convs.\1.weight"),
    (r"convs\.(\d+)\.activate\.bias", r"style_convs.\1.activate.bias"),
    (r"to_rgb1\.conv\.(.+)", r"to_rgb1.modulated_conv.\1"),
    (r"to_rgbs\.(\d+)\.conv\.(.+)", r"to_rgbs.\1.modulated_conv.\2"),
    (r"noises\.noise_(\d+)", r"noises.noise\1"),
    (r"(to_rgb1|to_rgbs\.\d+)\.bias", r"\1.bias"),
]


def basicsr_name(key: str) -> str:
    for pattern, replacement in CORE_TO_BASICSR:
        if re.fullmatch(pattern, key):
            return re.sub(pattern, replacement, key)
    raise AssertionError(f"no BasicSR name for {key}")


def official_original_state(model: nn.Module) -> dict:
    """GFPGANv1.pth's layout: BasicSR decoder names, and no FIR kernels (plain attributes in BasicSR)."""
    state = {}
    for key, value in model.state_dict().items():
        if key.endswith(".kernel"):
            continue
        if key.startswith("stylegan_decoder."):
            key = "stylegan_decoder." + basicsr_name(key[len("stylegan_decoder.") :])
        state[key] = value
    return state


def official_prior_state(decoder: Generator) -> dict:
    """StyleGAN2_512_Cmul1_FFHQ_B12G4_scratch_800k.pth's `params_ema` layout."""
    return {basicsr_name(k): v for k, v in decoder.state_dict().items() if not k.endswith(".kernel")}


# --- CS-SFT -------------------------------------------------------------------------------------------------


def test_cs_sft_modulates_only_the_second_half_of_the_channels():
    out = torch.randn(2, 8, 5, 5)
    scale, shift = torch.randn(2, 4, 5, 5), torch.randn(2, 4, 5, 5)
    y = channel_split_sft(out, scale, shift, sft_half=True)
    assert torch.equal(y[:, :4], out[:, :4])
    torch.testing.assert_close(y[:, 4:], out[:, 4:] * scale + shift)  # out·scale, not out·(1 + scale)
    assert not torch.allclose(y[:, 4:], out[:, 4:])
    full_scale, full_shift = torch.randn(2, 8, 5, 5), torch.randn(2, 8, 5, 5)
    y = channel_split_sft(out, full_scale, full_shift, sft_half=False)
    torch.testing.assert_close(y, out * full_scale + full_shift)
    assert not torch.isclose(y[:, :4], out[:, :4]).any()
    with pytest.raises(ValueError, match="7 channels"):
        channel_split_sft(torch.randn(1, 7, 2, 2), scale, shift)


def _identity_conditions(decoder, batch: int, sft_half: bool) -> list:
    res = [2**i for i in range(3, decoder.log_size + 1)]
    widths = [decoder.channels[r] // (2 if sft_half else 1) for r in res]
    return [(torch.ones(batch, c, r, r), torch.zeros(batch, c, r, r)) 
            for c, r in zip(widths, res, strict=True)]


@pytest.mark.parametrize("decoder_class", [Generator, CleanGenerator])
@pytest.mark.parametrize("sft_half", [True, False])
def test_decoder_with_identity_conditions_equals_the_plain_decoder(decoder_class, sft_half):
    decoder = _noisy(decoder_class(32, STYLE, 2, narrow=1 / 16))
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


# --- the clean StyleGAN2 ------------------------------------------------------------------------------------


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
    g = _noisy(CleanGenerator(64, STYLE, n_mlp=2, narrow=1 / 16))
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


# --- the two GFP-GAN generators -----------------------------------------------------------------------------


@pytest.mark.parametrize("model_class", VARIANTS)
def test_pyramid_outputs_at_every_decoder_level(model_class):
    model = _noisy(model_class(**TINY))
    x = torch.randn(2, 3, 64, 64)
    image, rgbs = model(x)
    assert image.shape == (2, 3, 64, 64)
    assert len(rgbs) == int(math.log2(64)) - 2
    assert [tuple(r.shape) for r in rgbs] == [(2, 3, s, s) for s in (8, 16, 32, 64)]
    assert model(x, return_rgb=False)[1] == []
    assert torch.equal(_restore(model, x)[0], _restore(model, x)[0])  # stored noise: deterministic
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

    official = official_original_state(original)
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


# --- import of official weights -----------------------------------------------------------------------------


def test_clean_release_layout_round_trips(tmp_path):
    source, target = _noisy(GFPGANv1Clean(**TINY)), GFPGANv1Clean(**TINY)
    x = torch.randn(1, 3, 64, 64)
    expected = _restore(source, x)[0]
    assert not torch.equal(_restore(target, x)[0], expected)
    state = source.state_dict()
    decoy = {k: torch.zeros_like(v) for k, v in state.items()}
    layouts = {
        "release.pth": {"params_ema": state, "params": decoy},  # the EMA is preferred
        "params.pth": {"params": state},
        "bare.pth": state,
        "ddp.pth": {f"module.{k}": v for k, v in state.items()},
        "facezoo.ckpt": {"state_dict": {**{f"generator.{k}": v for k, v in decoy.items()},
                                        **{f"generator_ema.module.{k}": v for k, v in state.items()}}},
    }
    for name, layout in layouts.items():
        torch.save(layout, tmp_path / name)
        target.load_state_dict(import_gfpgan(str(tmp_path / name), target))
        torch.testing.assert_close(_restore(target, x)[0], expected, rtol=0, atol=0, msg=name)
    assert infer_gfpgan_config(state) == dict(
        variant="clean", out_size=64, channel_multiplier=2, narrow=0.125, num_style_feat=STYLE, num_mlp=2,
        different_w=True, sft_half=True,
    )


def test_paper_model_imports_from_basicsr_names(tmp_path):
    source, target = _noisy(GFPGANv1(**TINY)), GFPGANv1(**TINY)
    official = official_original_state(source)
    assert "stylegan_decoder.style_convs.0.weight" in official and not any(".kernel" in k for k in official)
    torch.save({"params_ema": official}, tmp_path / "GFPGANv1.pth")
    x = torch.randn(1, 3, 64, 64)
    target.load_state_dict(import_gfpgan(str(tmp_path / "GFPGANv1.pth"), target))
    torch.testing.assert_close(_restore(target, x)[0], _restore(source, x)[0], rtol=0, atol=0)
    assert infer_gfpgan_config(official) == infer_gfpgan_config(source.state_dict()) == dict(
        variant="original", out_size=64, channel_multiplier=1, narrow=0.125, num_style_feat=STYLE, num_mlp=2,
        different_w=True, sft_half=True,
    )
    target.load_state_dict(import_gfpgan(source.state_dict(), target))  # our own layout (facezoo) too


def test_release_configurations_are_inferred_from_shapes():
    with torch.device("meta"):
        clean, original = GFPGANv1Clean(), GFPGANv1(sft_half=False, different_w=False)
    common = dict(out_size=512, narrow=1.0, num_style_feat=512, num_mlp=8)
    assert infer_gfpgan_config(clean.state_dict()) == dict(
        variant="clean", channel_multiplier=2, different_w=True, sft_half=True, **common
    )
    assert infer_gfpgan_config(official_original_state(original)) == dict(
        variant="original", channel_multiplier=1, different_w=False, sft_half=False, **common
    )


def test_import_errors_name_the_problem():
    clean, original = GFPGANv1Clean(**TINY), GFPGANv1(**TINY)
    state = clean.state_dict()
    state["final_conv.extra"] = state.pop("final_conv.bias")
    with pytest.raises(FacezooError) as err:
        import_gfpgan(state, clean)
    message = str(err.value)
    assert "\n" not in message and message.startswith("GFP-GAN generator: the weights do not match")
    assert "missing 1 (final_conv.bias)" in message and "unexpected 1 (final_conv.extra)" in message
    with pytest.raises(FacezooError, match="GFPGANv1 .* but the network is a GFPGANv1Clean"):
        import_gfpgan({"params_ema": official_original_state(original)}, clean)
    with pytest.raises(FacezooError, match="GFPGANv1Clean .* but the network is a GFPGANv1"):
        import_gfpgan(clean.state_dict(), original)
    discriminator = {f"conv_body.{k[len('convs.'):]}" if k.startswith("convs.") else k: v
                     for k, v in Discriminator(64, narrow=0.125).state_dict().items()}
    with pytest.raises(FacezooError, match="a GFP-GAN discriminator"):
        import_gfpgan({"params": discriminator}, clean)
    with pytest.raises(FacezooError, match="a StyleGAN2 generator"):
        infer_gfpgan_config(gfpgan_state({"params_ema": CleanGenerator(64, STYLE, 2).state_dict()}))
    partial_state = clean.state_dict()
    del partial_state["final_linear.weight"]
    with pytest.raises(FacezooError, match="no final_linear.weight"):
        infer_gfpgan_config(partial_state)


# --- the StyleGAN2 prior ------------------------------------------------------------------------------------


def _equal_states(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_core_decoder_prior_from_every_accepted_layout(tmp_path):
    model = GFPGANv1(**TINY)
    decoder = model.stylegan_decoder
    prior = Generator(64, STYLE, 2, channel_multiplier=1, narrow=0.125)  # same widths as the decoder
    want = prior.state_dict()
    d_state = Discriminator(64, channel_multiplier=1, narrow=0.125).state_dict()
    other = GFPGANv1(**TINY)
    layouts = {
        "StyleGAN2_512_Cmul1.pth": ({"params_ema": official_prior_state(prior)}, want, None),
        "GFPGANv1.pth": (
            {"params_ema": official_original_state(other)}, other.stylegan_decoder.state_dict(), None
        ),
        "g_ema.pt": ({"g_ema": want, "d": d_state}, want, d_state),
        "stylegan2.ckpt": ({"state_dict": {**{f"generator_ema.module.{k}": v for k, v in want.items()},
                                           **{f"discriminator.{k}": v for k, v in d_state.items()}}},
                           want, d_state),
    }
    for name, (layout, expected, expected_d) in layouts.items():
        torch.save(layout, tmp_path / name)
        state, d = import_gfpgan_prior(str(tmp_path / name), decoder)
        assert _equal_states(state, expected), name
        assert (d is None) if expected_d is None else _equal_states(d, expected_d), name
        decoder.load_state_dict(state)
    with pytest.raises(FacezooError, match="a clean StyleGAN2 .* use GFPGANv1Clean"):
        import_gfpgan_prior(GFPGANv1Clean(**TINY).state_dict(), decoder)


def test_clean_decoder_prior_from_every_accepted_layout(tmp_path):
    decoder = GFPGANv1Clean(**TINY).stylegan_decoder
    prior = CleanGenerator(64, STYLE, 2, narrow=0.125)
    want, d_state = prior.state_dict(), Discriminator(64, narrow=0.125).state_dict()
    other = GFPGANv1Clean(**TINY)
    layouts = {
        "bare.pth": (want, want, None),
        "GFPGANv1.4.pth": ({"params_ema": other.state_dict()}, other.stylegan_decoder.state_dict(), None),
        "stylegan2_clean.ckpt": ({"state_dict": {**{f"generator_ema.module.{k}": v for k, v in want.items()},
                                                 **{f"discriminator.{k}": v for k, v in d_state.items()}}},
                                 want, d_state),
    }
    for name, (layout, expected, expected_d) in layouts.items():
        torch.save(layout, tmp_path / name)
        state, d = import_gfpgan_prior(str(tmp_path / name), decoder)
        assert _equal_states(state, expected), name
        assert (d is None) if expected_d is None else _equal_states(d, expected_d), name
    core = Generator(64, STYLE, 2, narrow=0.125)
    with pytest.raises(FacezooError, match="cannot initialise the clean decoder"):
        import_gfpgan_prior({"params_ema": official_prior_state(core)}, decoder)
    del want["style_mlp.1.bias"]
    with pytest.raises(FacezooError, match=r"StyleGAN2 prior \(clean\).*missing 1 \(style_mlp.1.bias\)"):
        import_gfpgan_prior(want, decoder)
