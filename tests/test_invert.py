"""facezoo-invert: StyleGANEX's two-stage inversion of one image (src/invert.py,
src/models/styleganex_inversion.py), on a tiny random StyleGANEX (debug=tiny: a 256 px decoder at narrow 1/16,
r = 1) and a 52x60 crop of skimage's astronaut (sides not multiples of 8: padded)."""

import json

import pytest
import torch
import torch.nn.functional as F

from facezoo.checkpoints import load_model
from facezoo.invert import invert, padded
from facezoo.utils.compose import compose_config
from facezoo.utils.errors import ConfigError, WeightsNotFoundError
from facezoo.utils.image_io import read_rgb_uint8, to_float, to_uint8, uint8_to_tensor
from helpers import run_modules, tiny_checkpoint


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory, data_dir):
    return tiny_checkpoint(tmp_path_factory.mktemp("styleganex"), data_dir, "model=styleganex_inversion")


def _invert(tmp_path, *overrides):
    return invert(compose_config("invert", list(overrides), output_dir=tmp_path / "run"))


def test_optimisation_lowers_the_error_and_latent_pt_redraws_the_image(tmp_path, ckpt, odd_face, caplog):
    out = tmp_path / "out"
    report = _invert(tmp_path, f"image={odd_face}", f"ckpt={ckpt}", f"output={out}", "steps=40")
    assert "optimising L2 + (1 - SSIM) instead" in caplog.text  # no LPIPS backbone here
    stored = json.loads((out / "metrics.json").read_text())
    assert stored == report and report["loss"] == "L2 + (1 - SSIM)"
    encoder, optimised = report["encoder"], report["optimised"]
    assert set(encoder) == set(optimised) == {"psnr", "ssim", "l2"}
    assert optimised["l2"] < 0.8 * encoder["l2"] and optimised["psnr"] > encoder["psnr"] + 1
    assert optimised["ssim"] > encoder["ssim"]

    image = to_float(uint8_to_tensor(read_rgb_uint8(odd_face)))[None]
    written = {n: uint8_to_tensor(read_rgb_uint8(out / f"{n}.png")) for n in ("encoder", "optimised")}
    assert all(w.shape == (3, 60, 52) for w in written.values())  # the input's size
    assert report["optimised"]["l2"] == pytest.approx(F.mse_loss(to_float(written["optimised"])[None], image))

    model = load_model(ckpt)
    canvas, box = padded(image, 8)
    assert canvas.shape[-2:] == (64, 56) and box == (2, 2, 60, 52)
    top, left, h, w = box
    stage1 = model.restore(canvas)["image"][..., top : top + h, left : left + w]  # stage 1: the zoo's restore
    assert (to_uint8(stage1[0]).int() - written["encoder"].int()).abs().max() <= 1

    saved = torch.load(out / "latent.pt", weights_only=True)
    assert saved["f_rgb"] is None and saved["skips"] == [] and tuple(saved["box"]) == box
    with torch.no_grad():  # the recipe of src/invert.py's docstring (r = 1: no pooling)
        redrawn, _ = model.decoder([saved["w_plus"]], input_is_latent=True, randomize_noise=False,
                                   first_layer_feature=saved["f"])
    assert list(saved["canvas"]) == list(redrawn.shape[-2:])
    redrawn = to_uint8(redrawn[0, :, top : top + h, left : left + w])
    assert (redrawn.int() - written["optimised"].int()).abs().max() <= 1
    assert not torch.equal(written["optimised"], written["encoder"])

    with pytest.raises(ConfigError, match=r"output=.*out: holds encoder.png, optimised.png, latent.pt, met"):
        _invert(tmp_path, f"image={odd_face}", f"ckpt={ckpt}", f"output={out}", "steps=0")
    again = _invert(tmp_path, f"image={odd_face}", f"ckpt={ckpt}", f"output={out}", "steps=0",
                    "overwrite=true")
    assert again["optimised"] == again["encoder"] == encoder  # 0 steps: the encoder's; deterministic


def test_lpips_is_the_loss_when_its_backbone_is_found(tmp_path, ckpt, odd_face):
    import torchvision

    alexnet = torchvision.models.alexnet(weights=None).features.state_dict()  # random weights (tests only)
    torch.save({f"features.{k}": v for k, v in alexnet.items()}, tmp_path / "alexnet-owt-7be5be79.pth")
    args = [f"image={odd_face}", f"ckpt={ckpt}", "steps=3", "lpips.net=alex"]
    report = _invert(tmp_path, *args, f"lpips.weights={tmp_path}", f"output={tmp_path / 'out'}")
    assert report["loss"] == "LPIPS-alex" and {"lpips", "psnr"} <= set(report["optimised"])
    with pytest.raises(WeightsNotFoundError, match="lpips.weights"):
        _invert(tmp_path, *args, "lpips.required=true", f"output={tmp_path / 'other'}")


def test_the_command_line(tmp_path, ckpt, odd_face, data_dir, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # as the in-process tests (conftest): 2 busy cores
    baseline = tiny_checkpoint(tmp_path, data_dir)  # the tiny config's default model, not a StyleGANEX
    args = [f"hydra.run.dir={tmp_path / 'run'}", "steps=2"]
    results = run_modules({  # the three commands in one Python process
        "ok": ("facezoo.invert", [f"image={odd_face}", f"ckpt={ckpt}", *args], tmp_path),
        "other": ("facezoo.invert", [f"image={odd_face}", f"ckpt={baseline}", "output=o", *args], tmp_path),
        "missing": ("facezoo.invert", [f"image={tmp_path / 'none.png'}", f"ckpt={ckpt}", "output=m", *args],
                    tmp_path),
    })
    assert results["ok"].returncode == 0, results["ok"].stderr[-2000:]
    assert {p.name for p in (tmp_path / "run").iterdir()} >= {"encoder.png", "optimised.png", "latent.pt",
                                                             "metrics.json"}  # the run folder by default
    lines = {k: results[k].stderr.strip().splitlines() for k in ("other", "missing")}
    assert results["other"].returncode == results["missing"].returncode == 2
    assert lines["other"][-1] == (f"facezoo: error: ckpt={baseline}: a facezoo.models.baseline.Pix2Pix"
                                  "Baseline checkpoint; expected a StyleGANEX one (a model=styleganex_* run "
                                  "or an official styleganex_*.pt)")
    assert lines["missing"][-1] == f"facezoo: error: {tmp_path / 'none.png'}: file not found"
    assert not any("Traceback" in results[k].stderr for k in results)
