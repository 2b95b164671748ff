"""StyleGAN2 files as facezoo `model=stylegan2` networks: the architecture read from shapes (core, concat and
clean layouts), a rosinality training checkpoint `{'g_ema', 'd', 'latent_avg'}` imported with its D, a clean
generator built by its own class. (The conversions into GPEN's and GFP-GAN's decoders: tests/test_gpen.py,
tests/test_gfpgan_arch.py.)"""

import pytest
import torch

from facezoo.checkpoints import load_model
from facezoo.models.components.stylegan2 import Discriminator, Generator
from facezoo.models.components.stylegan2_clean import CleanGenerator
from facezoo.weights.releases import recognise
from facezoo.weights.stylegan2 import import_stylegan2_release, infer_stylegan2_config

TINY = dict(style_dim=32, n_mlp=2, narrow=0.0625)  # = tiny_stylegan2's generator


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def test_the_architecture_is_read_from_the_shapes():
    with torch.device("meta"):
        config_f, concat = Generator(1024), Generator(512, channel_multiplier=1, narrow=0.5, isconcat=True)
        clean = CleanGenerator(512, 512, 8, channel_multiplier=2)
    common = dict(style_dim=512, n_mlp=8, clean=False)
    assert infer_stylegan2_config(config_f.state_dict()) == dict(
        size=1024, channel_multiplier=2, narrow=1.0, isconcat=False, **common)
    assert infer_stylegan2_config(concat.state_dict()) == dict(
        size=512, channel_multiplier=1, narrow=0.5, isconcat=True, **common)
    assert infer_stylegan2_config(clean.state_dict()) == dict(
        size=512, channel_multiplier=2, narrow=1.0, isconcat=False, **{**common, "clean": True})


def test_a_rosinality_checkpoint_loads_with_its_discriminator(tmp_path):
    g, d = Generator(64, isconcat=True, **TINY), Discriminator(64, narrow=0.0625)
    path = tmp_path / "stylegan2-64.pt"
    state = {"g": g.state_dict(), "d": d.state_dict(), "g_ema": g.state_dict(), "latent_avg": torch.zeros(32)}
    torch.save(state, path)
    assert recognise(str(path)) == "stylegan2"
    imported = import_stylegan2_release(str(path))
    assert set(imported.networks) == {"generator", "discriminator"}
    model = load_model(path)
    assert all(torch.equal(model.generator_ema.module.state_dict()[k], v) for k, v in g.state_dict().items())
    assert all(p.is_meta for p in model.discriminator.parameters())  # held out: restore() samples with G_ema
    samples = model.restore(torch.zeros(2, 3, 64, 64))["image"]
    torch.testing.assert_close(samples, model.restore(torch.zeros(2, 3, 64, 64))["image"])  # fixed seed


def test_a_clean_generator_is_built_by_its_class(tmp_path):
    g = CleanGenerator(64, 32, 2, narrow=0.0625)
    torch.save(g.state_dict(), tmp_path / "clean.pth")
    imported = import_stylegan2_release(str(tmp_path / "clean.pth"))
    clean = "model.generator._target_=facezoo.models.components.stylegan2_clean.CleanGenerator"
    assert clean in imported.overrides
    model = load_model(tmp_path / "clean.pth")
    assert isinstance(model.generator_ema.module, CleanGenerator)
    assert all(torch.equal(model.generator_ema.module.state_dict()[k], v) for k, v in g.state_dict().items())
