"""GFP-GAN's releases as facezoo networks (src/weights/gfpgan.py, reference/official-implementations.md §1).
The discriminators: the global `StyleGAN2Discriminator` under BasicSR names (`conv_body.*`, no FIR kernels:
written here from our network by the inverse mapping, and checked against the reference's key names and sizes)
and the three facial-component discriminators; a whole release (generator + D + component Ds) through
`facezoo-import`. The generators: both variants from every accepted layout (the paper model's BasicSR names:
helpers.official_gfpganv1_state), their configuration read from shapes, one-line errors, a release imported by
the CLI that eval loads. The StyleGAN2 prior of either decoder from every accepted layout.
(The architectures: tests/models/components/test_gfpgan.py.)"""

import re

import pytest
import torch

from facezoo.checkpoints import load_model
from facezoo.models.components.facial_component import GFPGAN_COMPONENTS, FacialComponentDiscriminator
from facezoo.models.components.gfpgan import GFPGANv1, GFPGANv1Clean
from facezoo.models.components.stylegan2 import Discriminator, Generator
from facezoo.models.components.stylegan2_clean import CleanGenerator
from facezoo.utils.errors import FacezooError
from facezoo.weights.cli import main as import_main
from facezoo.weights.gfpgan import (
    gfpgan_state,
    import_component_discriminator,
    import_gfpgan,
    import_gfpgan_discriminator,
    import_gfpgan_prior,
    infer_gfpgan_config,
)
from facezoo.weights.stylegan2 import infer_discriminator_config
from helpers import noisy, official_gfpganv1_state, official_stylegan2_prior_state, restored

TINY_D = dict(size=64, channel_multiplier=1, narrow=0.0625, stddev_group=4)  # = tiny_gfpgan's D
TINY_G = dict(out_size=64, num_style_feat=32, num_mlp=2, narrow=0.0625)  # = tiny_gfpgan's generator
STYLE = 32
TINY_ARCH = dict(out_size=64, num_style_feat=STYLE, num_mlp=2, narrow=0.125)  # decoder ≤ 64 ch, U-Net ≤ 32 ch


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# --- the discriminators -------------------------------------------------------------------------------------


def net_d_layout(d: Discriminator) -> dict:
    """BasicSR StyleGAN2Discriminator's state_dict of our network: `convs.N` is `conv_body.N`, and BasicSR
    keeps the FIR kernels out of its state."""
    state = d.state_dict()
    return {re.sub(r"^convs\.", "conv_body.", k): v for k, v in state.items() if not k.endswith(".kernel")}


def test_the_global_discriminator_layout_is_the_official_one():
    with torch.device("meta"):
        d = Discriminator(512, channel_multiplier=1, stddev_group=4)
    official = net_d_layout(d)
    assert (len(official), round(sum(v.numel() for v in official.values()) / 1e6, 1)) == (43, 24.0)
    shapes = {k: tuple(v.shape) for k, v in official.items()}
    assert shapes["conv_body.0.0.weight"] == (32, 3, 1, 1)  # ConvLayer 1×1 3→32
    assert shapes["conv_body.7.conv2.1.weight"] == (512, 512, 3, 3) and "conv_body.7.skip.1.weight" in shapes
    assert shapes["final_conv.0.weight"] == (512, 513, 3, 3)
    assert shapes["final_linear.0.weight"] == (512, 8192)
    assert shapes["final_linear.1.weight"] == (1, 512) and not any("conv_body.8" in k for k in shapes)
    assert infer_discriminator_config(official) == dict(size=512, channel_multiplier=1, narrow=1.0)


def test_the_global_discriminator_imports_from_net_d(tmp_path):
    source, target = Discriminator(**TINY_D), Discriminator(**TINY_D)
    torch.save({"params": net_d_layout(source)}, tmp_path / "net_d.pth")
    weights = import_gfpgan_discriminator(str(tmp_path / "net_d.pth"), target)
    assert weights.keys() == target.state_dict().keys()  # every key maps, the kernels come from the target
    target.load_state_dict(weights)
    x = torch.randn(4, 3, 64, 64)
    torch.testing.assert_close(target(x), source(x), rtol=0, atol=0)
    broken = net_d_layout(source)
    del broken["conv_body.1.conv1.0.weight"]
    with pytest.raises(FacezooError, match=r"GFP-GAN discriminator: .*missing 1 \(convs.1.conv1.0.weight\)"):
        import_gfpgan_discriminator({"params": broken}, target)


def test_component_discriminators_have_the_official_keys_and_import(tmp_path):
    source, target = FacialComponentDiscriminator(), FacialComponentDiscriminator()
    official = source.state_dict()
    assert (len(official), sum(v.numel() for v in official.values())) == (12, 1_110_785)
    assert {"conv1.0.weight", "conv1.1.bias", "conv2.1.weight", "conv2.2.bias", "final_conv.0.weight",
            "final_conv.0.bias"} <= official.keys()
    torch.save({"params": official}, tmp_path / "net_d_mouth.pth")
    path = str(tmp_path / "net_d_mouth.pth")
    target.load_state_dict(import_component_discriminator(path, target, "mouth D"))
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(target(x, return_feats=True), source(x, return_feats=True), rtol=0, atol=0)


def _release(tmp_path) -> dict:
    """A tiny GFP-GAN v1.4-layout release: generator, global D and the three component Ds."""
    files = {"generator": tmp_path / "GFPGANv1.4.pth", "d": tmp_path / "net_d.pth"}
    torch.save({"params_ema": GFPGANv1Clean(**TINY_G).state_dict()}, files["generator"])
    torch.save({"params": net_d_layout(Discriminator(**TINY_D))}, files["d"])
    for c in GFPGAN_COMPONENTS:
        files[c] = tmp_path / f"net_d_{c}.pth"
        torch.save({"params": FacialComponentDiscriminator().state_dict()}, files[c])
    return files


def test_a_whole_release_becomes_a_checkpoint_of_what_it_holds(tmp_path):
    files = _release(tmp_path)
    out = tmp_path / "gfpgan.ckpt"
    components = [str(files[c]) for c in GFPGAN_COMPONENTS]
    assert import_main([str(files["generator"]), "--discriminator", str(files["d"]), "--components",
                        *components, "--out", str(out)]) == 0
    state = torch.load(out, map_location="cpu", weights_only=True)["state_dict"]
    prefixes = {re.match(r"(component_discriminators\.\w+|\w+)\.", k)[1] for k in state}
    components = {f"component_discriminators.{c}" for c in GFPGAN_COMPONENTS}
    assert prefixes == {"generator", "discriminator", *components}
    for c in GFPGAN_COMPONENTS:  # each file where it belongs
        want = torch.load(files[c], weights_only=True)["params"]
        assert all(torch.equal(state[f"component_discriminators.{c}.{k}"], v) for k, v in want.items())
    for k, v in torch.load(files["d"], weights_only=True)["params"].items():  # under our names
        assert torch.equal(state["discriminator." + re.sub(r"^conv_body\.", "convs.", k)], v), k
    model = load_model(out)  # restores with the generator only
    assert model.restore(torch.zeros(1, 3, 64, 64))["image"].shape == (1, 3, 64, 64)
    assert all(p.is_meta for p in model.component_discriminators.parameters())


def test_component_files_in_the_wrong_order_are_refused(tmp_path, capsys):
    files = _release(tmp_path)
    swapped = [str(files["mouth"]), str(files["right_eye"]), str(files["left_eye"])]
    with pytest.raises(SystemExit) as exit_:
        import_main([str(files["generator"]), "--components", *swapped, "--out", str(tmp_path / "x.ckpt")])
    assert exit_.value.code == 2 and not (tmp_path / "x.ckpt").exists()
    assert "named after the mouth but given as the left_eye" in capsys.readouterr().err


# --- the generators: both variants, every accepted layout ---------------------------------------------------


def test_clean_release_layout_round_trips(tmp_path):
    source, target = noisy(GFPGANv1Clean(**TINY_ARCH)), GFPGANv1Clean(**TINY_ARCH)
    x = torch.randn(1, 3, 64, 64)
    expected = restored(source, x)[0]
    assert not torch.equal(restored(target, x)[0], expected)
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
        torch.testing.assert_close(restored(target, x)[0], expected, rtol=0, atol=0, msg=name)
    assert infer_gfpgan_config(state) == dict(
        variant="clean", out_size=64, channel_multiplier=2, narrow=0.125, num_style_feat=STYLE, num_mlp=2,
        different_w=True, sft_half=True,
    )


def test_paper_model_imports_from_basicsr_names(tmp_path):
    source, target = noisy(GFPGANv1(**TINY_ARCH)), GFPGANv1(**TINY_ARCH)
    official = official_gfpganv1_state(source)
    assert "stylegan_decoder.style_convs.0.weight" in official and not any(".kernel" in k for k in official)
    torch.save({"params_ema": official}, tmp_path / "GFPGANv1.pth")
    x = torch.randn(1, 3, 64, 64)
    target.load_state_dict(import_gfpgan(str(tmp_path / "GFPGANv1.pth"), target))
    torch.testing.assert_close(restored(target, x)[0], restored(source, x)[0], rtol=0, atol=0)
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
    assert infer_gfpgan_config(official_gfpganv1_state(original)) == dict(
        variant="original", channel_multiplier=1, different_w=False, sft_half=False, **common
    )


def test_import_errors_name_the_problem():
    clean, original = GFPGANv1Clean(**TINY_ARCH), GFPGANv1(**TINY_ARCH)
    state = clean.state_dict()
    state["final_conv.extra"] = state.pop("final_conv.bias")
    with pytest.raises(FacezooError) as err:
        import_gfpgan(state, clean)
    message = str(err.value)
    assert "\n" not in message and message.startswith("GFP-GAN generator: the weights do not match")
    assert "missing 1 (final_conv.bias)" in message and "unexpected 1 (final_conv.extra)" in message
    with pytest.raises(FacezooError, match="GFPGANv1 .* but the network is a GFPGANv1Clean"):
        import_gfpgan({"params_ema": official_gfpganv1_state(original)}, clean)
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


def test_import_cli_writes_a_checkpoint_that_eval_loads(tmp_path):
    release = GFPGANv1Clean(64, num_style_feat=32, num_mlp=2, narrow=0.0625)  # tiny_gfpgan widths
    torch.save({"params_ema": release.state_dict()}, tmp_path / "GFPGANv1.4-64.pth")
    out = tmp_path / "gfpgan64.ckpt"
    assert import_main([str(tmp_path / "GFPGANv1.4-64.pth"), "--out", str(out)]) == 0
    model = load_model(out)
    assert model.size == 64 and model.generator.variant == "clean"
    for k, v in release.state_dict().items():
        assert torch.equal(model.generator_ema.module.state_dict()[k], v), k
    lq = torch.rand(1, 3, 64, 64) * 2 - 1
    expected = release.eval()(lq, return_rgb=False, randomize_noise=False)[0]
    torch.testing.assert_close(model.restore(lq)["image"], expected)
    torch.save({"params": {"conv_body_first.weight": torch.zeros(1)}}, tmp_path / "broken.pth")
    with pytest.raises(SystemExit) as exit_:
        import_main([str(tmp_path / "broken.pth"), "--out", str(tmp_path / "x.ckpt")])
    assert exit_.value.code == 2


# --- the StyleGAN2 prior ------------------------------------------------------------------------------------


def _equal_states(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _imports_every_layout(layouts: dict, decoder, tmp_path) -> None:
    """Each file layout (name -> (saved dict, expected decoder state, expected D state or None)) imports as
    expected into `decoder`."""
    for name, (layout, expected, expected_d) in layouts.items():
        torch.save(layout, tmp_path / name)
        state, d = import_gfpgan_prior(str(tmp_path / name), decoder)
        assert _equal_states(state, expected), name
        assert (d is None) if expected_d is None else _equal_states(d, expected_d), name
        decoder.load_state_dict(state)


def test_core_decoder_prior_from_every_accepted_layout(tmp_path):
    model = GFPGANv1(**TINY_ARCH)
    decoder = model.stylegan_decoder
    prior = Generator(64, STYLE, 2, channel_multiplier=1, narrow=0.125)  # same widths as the decoder
    want = prior.state_dict()
    d_state = Discriminator(64, channel_multiplier=1, narrow=0.125).state_dict()
    other = GFPGANv1(**TINY_ARCH)
    layouts = {
        "StyleGAN2_512_Cmul1.pth": ({"params_ema": official_stylegan2_prior_state(prior)}, want, None),
        "GFPGANv1.pth": (
            {"params_ema": official_gfpganv1_state(other)}, other.stylegan_decoder.state_dict(), None
        ),
        "g_ema.pt": ({"g_ema": want, "d": d_state}, want, d_state),
        "stylegan2.ckpt": ({"state_dict": {**{f"generator_ema.module.{k}": v for k, v in want.items()},
                                           **{f"discriminator.{k}": v for k, v in d_state.items()}}},
                           want, d_state),
    }
    _imports_every_layout(layouts, decoder, tmp_path)
    with pytest.raises(FacezooError, match="a clean StyleGAN2 .* use GFPGANv1Clean"):
        import_gfpgan_prior(GFPGANv1Clean(**TINY_ARCH).state_dict(), decoder)


def test_clean_decoder_prior_from_every_accepted_layout(tmp_path):
    decoder = GFPGANv1Clean(**TINY_ARCH).stylegan_decoder
    prior = CleanGenerator(64, STYLE, 2, narrow=0.125)
    want, d_state = prior.state_dict(), Discriminator(64, narrow=0.125).state_dict()
    other = GFPGANv1Clean(**TINY_ARCH)
    layouts = {
        "bare.pth": (want, want, None),
        "GFPGANv1.4.pth": ({"params_ema": other.state_dict()}, other.stylegan_decoder.state_dict(), None),
        "stylegan2_clean.ckpt": ({"state_dict": {**{f"generator_ema.module.{k}": v for k, v in want.items()},
                                                 **{f"discriminator.{k}": v for k, v in d_state.items()}}},
                                 want, d_state),
    }
    _imports_every_layout(layouts, decoder, tmp_path)
    core = Generator(64, STYLE, 2, narrow=0.125)
    with pytest.raises(FacezooError, match="cannot initialise the clean decoder"):
        import_gfpgan_prior({"params_ema": official_stylegan2_prior_state(core)}, decoder)
    del want["style_mlp.1.bias"]
    with pytest.raises(FacezooError, match=r"StyleGAN2 prior \(clean\).*missing 1 \(style_mlp.1.bias\)"):
        import_gfpgan_prior(want, decoder)
