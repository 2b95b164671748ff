"""StyleGAN2 files as facezoo networks (src/weights/stylegan2.py): as `model=stylegan2` networks, the
architecture read from shapes (core, concat and clean layouts), a rosinality training checkpoint
`{'g_ema', 'd', 'latent_avg'}` imported with its D, a clean generator built by its own class; and as the prior
of GPEN's concat decoder, an added-noise StyleGAN2 embedded exactly. (The conversions into GFP-GAN's decoders:
tests/weights/test_gfpgan.py.)"""

import pytest
import torch
from torch import nn

from facezoo.checkpoints import load_model
from facezoo.models.components.stylegan2 import Discriminator, Generator
from facezoo.models.components.stylegan2_clean import CleanGenerator
from facezoo.utils.errors import FacezooError
from facezoo.weights.releases import recognise
from facezoo.weights.stylegan2 import import_stylegan2_prior, import_stylegan2_release, infer_stylegan2_config

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


def test_add_noise_stylegan2_embeds_into_the_concat_decoder(tmp_path):
    tiny = dict(style_dim=32, n_mlp=2, narrow=1 / 16)
    source = Generator(128, **tiny)  # rosinality layout: added noise, stored noise maps, 128 px
    for m in source.modules():
        if hasattr(m, "mode"):
            nn.init.constant_(m.weight, 0.3)
    torch.save({"g_ema": source.state_dict(), "latent_avg": torch.zeros(32)}, tmp_path / "sg2.pt")
    decoder = Generator(64, isconcat=True, **tiny)
    state, d_state = import_stylegan2_prior(str(tmp_path / "sg2.pt"), decoder)
    decoder.load_state_dict(state)
    assert d_state is None
    # the source's 64 px skip image with its noise switched off, whatever the decoder's "noise" features
    z = torch.randn(2, 32)
    latent = source.w_plus([z])
    zeros = [torch.zeros(2, 1, 2 ** ((i + 5) // 2), 2 ** ((i + 5) // 2)) for i in range(source.num_layers)]
    out = source.conv1(source.input(latent), latent[:, 0], zeros[0])
    skip = source.to_rgb1(out, latent[:, 1])
    for level in range(4):  # 8 … 64 px
        i = 2 * level + 1
        out = source.convs[i - 1](out, latent[:, i], zeros[i])
        out = source.convs[i](out, latent[:, i + 1], zeros[i + 1])
        skip = source.to_rgbs[level](out, latent[:, i + 2], skip)
    res = [2 ** ((i + 5) // 2) for i in range(decoder.num_layers)]
    features = [torch.randn(2, decoder.channels[r], r, r) for r in res]
    torch.testing.assert_close(decoder([z], noise=features)[0], skip, rtol=1e-4, atol=1e-5)
    with pytest.raises(FacezooError, match="a 64 px generator cannot initialise a 128 px decoder"):
        import_stylegan2_prior({"g_ema": decoder.state_dict()}, Generator(128, isconcat=True, **tiny))
