"""The discriminators GFP-GAN releases (reference/official-implementations.md §1): the global
`StyleGAN2Discriminator` under BasicSR names (`conv_body.*`, no FIR kernels: written here from our network by
the inverse mapping, and checked against the reference's key names and sizes) and the three facial-component
discriminators; a whole release (generator + D + component Ds) through `facezoo-import`.
(The generators and priors: tests/test_gfpgan_arch.py.)"""

import re

import pytest
import torch

from facezoo.checkpoints import load_model
from facezoo.models.components.facial_component import GFPGAN_COMPONENTS, FacialComponentDiscriminator
from facezoo.models.components.gfpgan import GFPGANv1Clean
from facezoo.models.components.stylegan2 import Discriminator
from facezoo.utils.errors import FacezooError
from facezoo.weights.cli import main as import_main
from facezoo.weights.gfpgan import import_component_discriminator, import_gfpgan_discriminator
from facezoo.weights.stylegan2 import infer_discriminator_config

TINY_D = dict(size=64, channel_multiplier=1, narrow=0.0625, stddev_group=4)  # = tiny_gfpgan's D
TINY_G = dict(out_size=64, num_style_feat=32, num_mlp=2, narrow=0.0625)  # = tiny_gfpgan's generator


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


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
