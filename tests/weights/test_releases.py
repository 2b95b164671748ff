"""Which importer a file needs, recognised from its keys; files facezoo cannot read get one line saying what
it reads. GPEN's releases with their discriminator. (Each importer's layouts: the tests beside this one.)"""

import pytest
import torch

from facezoo.models.components.facial_component import FacialComponentDiscriminator
from facezoo.models.components.gfpgan import GFPGANv1, GFPGANv1Clean
from facezoo.models.components.gpen import GPENGenerator
from facezoo.models.components.stylegan2 import Discriminator, Generator
from facezoo.utils.errors import FacezooError
from facezoo.weights.releases import SUPPORTED, import_release, recognise

TINY_GPEN = dict(size=64, style_dim=32, n_mlp=2, narrow=0.0625)  # = tiny_gpen.yaml


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def test_each_release_layout_is_recognised():
    gpen = GPENGenerator(**TINY_GPEN).state_dict()
    assert recognise(gpen) == "gpen"
    assert recognise({"g_ema": {f"module.{k}": v for k, v in gpen.items()}, "d": {}}) == "gpen"
    tiny_gfpgan = dict(out_size=64, num_style_feat=32, num_mlp=2, narrow=0.0625)
    assert recognise({"params_ema": GFPGANv1Clean(**tiny_gfpgan).state_dict()}) == "gfpgan"
    assert recognise({"params": GFPGANv1(**tiny_gfpgan).state_dict()}) == "gfpgan"
    stylegan2 = Generator(64, style_dim=32, n_mlp=2, narrow=0.0625).state_dict()
    assert recognise({"g_ema": stylegan2}) == "stylegan2"


def test_unknown_files_name_what_facezoo_reads():
    d = Discriminator(64, narrow=0.0625).state_dict()
    with pytest.raises(FacezooError, match="a StyleGAN2 discriminator: give it with --discriminator"):
        recognise(d)
    with pytest.raises(FacezooError, match="a GFP-GAN facial component discriminator: give it with --comp"):
        recognise({"params": FacialComponentDiscriminator().state_dict()})
    with pytest.raises(FacezooError) as err:
        recognise({"fc.weight": torch.zeros(2, 2)})
    message = str(err.value)
    assert message == f"no known generator; facezoo reads facezoo checkpoints and {SUPPORTED}"
    assert "GPEN-BFR-512" in message and "GFPGANv1.3/v1.4" in message and "\n" not in message


def test_a_method_given_is_used_and_checked():
    gpen = GPENGenerator(**TINY_GPEN).state_dict()
    with pytest.raises(FacezooError, match="not a GFP-GAN generator"):
        import_release(gpen, method="gfpgan")
    with pytest.raises(FacezooError, match="--components: facial component discriminators belong to gfpgan"):
        import_release(gpen, components=["a", "b", "c"])


def test_gpen_releases_bring_their_discriminator(tmp_path):
    g, d = GPENGenerator(**TINY_GPEN), Discriminator(64, narrow=0.0625, stddev_group=None)
    training = {"g_ema": {f"module.{k}": v for k, v in g.state_dict().items()}, "d": d.state_dict(), "g": {}}
    imported = import_release(training)  # a GPEN training checkpoint: its g_ema and its d
    assert set(imported.networks) == {"generator", "discriminator"}
    assert "model.discriminator.narrow=0.0625" in imported.overrides
    torch.save(d.state_dict(), tmp_path / "GPEN-BFR-64-D.pth")
    given = import_release(g.state_dict(), discriminator=str(tmp_path / "GPEN-BFR-64-D.pth"))
    assert all(torch.equal(given.networks["discriminator"][k], v) for k, v in d.state_dict().items())
    assert set(import_release(g.state_dict()).networks) == {"generator"}  # a bare release: only G
    with pytest.raises(FacezooError, match="the discriminator is 128 px but the generator 64 px"):
        import_release(g.state_dict(), discriminator=Discriminator(128, narrow=0.0625).state_dict())
