"""GPEN's U-shaped generator (src/models/components/gpen.py) and the other networks of its releases: every
key and shape of GPEN-BFR-512 / -256 and of the discriminator (helpers.official_gpen_*_shapes, written out
from the reference independently of our modules), the IR-SE50 of the identity loss, and the encoder features
fed to the decoder. Networks are built with random weights on purpose; release-size ones on the meta device
(nothing allocated). (The import of official weights: tests/weights/test_gpen.py.)"""

import math

import pytest
import torch
from torch import nn

from facezoo.models.components.arcface import IRSE50
from facezoo.models.components.gpen import GPENGenerator, count_parameters
from facezoo.models.components.stylegan2 import Discriminator
from helpers import official_gpen_discriminator_shapes, official_gpen_generator_shapes, state_shapes

TINY_ARCH = dict(size=64, style_dim=32, n_mlp=2, channel_multiplier=2, narrow=1 / 16)  # = tiny_gpen.yaml


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _millions(shapes: dict) -> float:
    return round(sum(math.prod(s) for s in shapes.values()) / 1e6, 1)


@pytest.mark.parametrize(
    "arch, tensors, millions",
    [(dict(size=512), 163, 71.0), (dict(size=256, channel_multiplier=1, narrow=0.5), 144, 18.9)],
)
def test_release_generators_have_the_official_keys_and_counts(arch, tensors, millions):
    with torch.device("meta"):
        g = GPENGenerator(**arch)
    official = official_gpen_generator_shapes(**arch)
    assert state_shapes(g) == official  # every key and shape of GPEN-BFR-512 / -256
    assert (len(official), _millions(official)) == (tensors, millions)
    n, elements = count_parameters(g)
    assert (n, round(elements / 1e6, 1)) == (tensors, millions)


def test_release_discriminator_and_identity_network_counts():
    with torch.device("meta"):
        d, arcface = Discriminator(512, channel_multiplier=2, stddev_group=None), IRSE50()
    official = official_gpen_discriminator_shapes(512)
    assert state_shapes(d) == official  # GPEN-BFR-512-D
    assert (len(official), _millions(official)) == (57, 29.0)
    assert len(arcface.state_dict()) == 397  # model_ir_se50.pth
    assert {"input_layer.2.weight", "body.3.shortcut_layer.0.weight", "body.23.res_layer.5.fc2.weight",
            "output_layer.3.weight", "output_layer.4.running_var"} <= arcface.state_dict().keys()


def test_encoder_features_feed_both_layers_of_their_level():
    g = GPENGenerator(**TINY_ARCH)
    x = torch.randn(2, 3, 64, 64)
    code, features = g.encode(x)
    assert code.shape == (2, 32) and [f.shape[-1] for f in features] == [64, 32, 16, 8, 4]
    noise = g.decoder_noise(features)
    assert [n.shape[-1] for n in noise] == [4, 8, 8, 16, 16, 32, 32, 64, 64]
    assert noise[1] is noise[2] is features[3] and noise[0] is features[4]
    image, latent = g(x, return_latents=True)
    assert image.shape == (2, 3, 64, 64) and latent.shape == (2, g.generator.n_latent, 32)
    torch.testing.assert_close(image, g.generator([code], noise=noise)[0])  # z through the mapping
    for m in g.generator.modules():  # feature weights start at 0 (official init): make them count
        if hasattr(m, "mode"):
            nn.init.constant_(m.weight, 0.5)
    other = [f.clone() for f in features]
    other[1] = other[1] + 1  # the 32 px feature: changes the output through the 32 px layers only
    changed = g.generator([code], noise=g.decoder_noise(other))[0]
    assert not torch.allclose(changed, g.generator([code], noise=noise)[0])
    with pytest.raises(ValueError, match="got a"):
        g(torch.randn(1, 3, 32, 32))
