"""GPEN's releases as facezoo networks (src/weights/gpen.py): every official tensor mapped (names and shapes
written out from the reference, independently of our modules: helpers.official_gpen_*_shapes), training
checkpoints, the architecture read from shapes, a release imported by the CLI that eval loads, and one-line
mismatch errors. (The networks: tests/models/components/test_gpen.py; a StyleGAN2 prior in GPEN's decoder:
tests/weights/test_stylegan2.py.)"""

import pytest
import torch
import torch.nn.functional as F

from facezoo.models.components.gpen import GPENGenerator
from facezoo.utils.errors import FacezooError
from facezoo.weights.cli import main as import_main
from facezoo.weights.gpen import import_gpen_discriminator, import_gpen_generator, infer_gpen_config
from helpers import (
    build_tiny,
    official_gpen_discriminator_shapes,
    official_gpen_generator_shapes,
    random_official_state,
)

TINY_ARCH = dict(size=64, style_dim=32, n_mlp=2, channel_multiplier=2, narrow=1 / 16)  # = tiny_gpen.yaml


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def test_import_maps_every_official_tensor_then_restore_works(tmp_path, data_dir):
    g_state = random_official_state(official_gpen_generator_shapes(**TINY_ARCH))
    d_state = random_official_state(official_gpen_discriminator_shapes(64, narrow=1 / 16))
    g_file, d_file = tmp_path / "GPEN-BFR-64.pth", tmp_path / "GPEN-BFR-64-D.pth"
    torch.save(g_state, g_file)
    torch.save(d_state, d_file)
    model, _, _ = build_tiny(tmp_path, data_dir, "model=gpen", "datamodule=synthetic_restore")
    weights = import_gpen_generator(str(g_file), model.generator)
    assert weights.keys() == g_state.keys() and all(torch.equal(weights[k], g_state[k]) for k in g_state)
    model.generator.load_state_dict(weights)
    model.generator_ema.module.load_state_dict(weights)
    model.discriminator.load_state_dict(import_gpen_discriminator(str(d_file), model.discriminator))
    lq = torch.rand(2, 3, 48, 48) * 2 - 1
    out = model.restore(lq)["image"]
    assert out.shape == (2, 3, 48, 48)  # resized to 64 px, restored, resized back
    expected = F.interpolate(model.generator(F.interpolate(lq, (64, 64), mode="bilinear"))[0], (48, 48),
                             mode="bilinear", antialias=True)
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-4)
    # a training checkpoint {'g', 'd', 'g_ema'} (DataParallel prefixes) gives the same weights
    ckpt = {"g_ema": {f"module.{k}": v for k, v in g_state.items()}, "d": d_state, "g": {}}
    assert import_gpen_generator(ckpt, model.generator).keys() == weights.keys()
    assert infer_gpen_config(g_state) == {**TINY_ARCH, "isconcat": True}


def test_import_cli_writes_a_checkpoint_that_eval_loads(tmp_path):
    from facezoo.checkpoints import load_model

    g_state = random_official_state(official_gpen_generator_shapes(**TINY_ARCH))
    torch.save(g_state, tmp_path / "GPEN-BFR-64.pth")
    out = tmp_path / "gpen64.ckpt"
    assert import_main([str(tmp_path / "GPEN-BFR-64.pth"), "--out", str(out)]) == 0
    model = load_model(out)
    assert model.size == 64 and all(
        torch.equal(model.generator_ema.module.state_dict()[k], v) for k, v in g_state.items()
    )
    del g_state["final_linear.0.bias"]
    torch.save(g_state, tmp_path / "broken.pth")
    with pytest.raises(SystemExit) as exit_:
        import_main([str(tmp_path / "broken.pth"), "--out", str(tmp_path / "x.ckpt")])
    assert exit_.value.code == 2


def test_import_rejects_a_mismatched_state_dict_listing_the_keys():
    g = GPENGenerator(**TINY_ARCH)
    state = random_official_state(official_gpen_generator_shapes(**TINY_ARCH))
    del state["ecd3.0.1.weight"]
    state["generator.noises.noise_0"] = torch.zeros(1, 1, 4, 4)
    state["final_linear.0.weight"] = torch.zeros(32, 100)
    with pytest.raises(FacezooError) as err:
        import_gpen_generator(state, g)
    message = str(err.value)
    assert "\n" not in message and message.startswith("GPEN generator: the weights do not match")
    assert "missing 1 (ecd3.0.1.weight)" in message and "unexpected 1 (generator.noises.noise_0)" in message
    assert "final_linear.0.weight (32, 100) vs (32, 512)" in message
    wide = random_official_state(official_gpen_generator_shapes(**{**TINY_ARCH, "narrow": 1 / 8}))
    with pytest.raises(FacezooError, match=r"wrong shapes .*\(\d+ in all\)"):
        import_gpen_generator(wide, g)
