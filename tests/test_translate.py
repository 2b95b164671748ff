"""facezoo-translate: StyleGANEX sketch-to-face and mask-to-face of files (src/translate.py) on tiny random
models (debug=tiny: a 256 px decoder at narrow 1/16, r = 1; random weights on purpose, tests only): skimage's
astronaut as a photo turned into its XDoG sketch, a parsing map as an 8-bit label PNG, N random styles, the
refusals; and the parsing agreement (miou=true) of a mask2face run on its synthetic test split."""

import json

import numpy as np
import pytest
import torch
from omegaconf import open_dict
from PIL import Image

from facezoo.checkpoints import config_entries
from facezoo.translate import translate
from facezoo.utils.compose import compose_config
from facezoo.utils.errors import ConfigError, DataError
from facezoo.utils.image_io import read_rgb_uint8
from facezoo.utils.instantiate import instantiate
from helpers import TINY, tiny_checkpoint


def _checkpoint(folder, data_dir, task):
    """A tiny model=styleganex_<task> with random weights and a random latent_avg (tests only)."""
    labels = "sketch" if task == "sketch2face" else "parsing"
    return tiny_checkpoint(folder, data_dir, "datamodule=synthetic_translation",
                           f"datamodule.labels={labels}", f"model=styleganex_{task}", name=f"{task}.ckpt",
                           edit=lambda model: model.latent_avg.normal_())


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory, data_dir):
    folder = tmp_path_factory.mktemp("translation")
    return {task: _checkpoint(folder, data_dir, task) for task in ("sketch2face", "mask2face")}


def _translate(tmp_path, *overrides):
    return translate(compose_config("translate", list(overrides), output_dir=tmp_path / "run"))


def test_sketch_to_face_of_a_photo_with_random_styles(tmp_path, ckpts, odd_face):
    out = tmp_path / "out"
    written = _translate(tmp_path, f"input={odd_face}", f"ckpt={ckpts['sketch2face']}", "from_photo=true",
                         "styles=3", f"output={out}")
    assert [p.name for p in written] == [f"astronaut_{i}.png" for i in range(3)] + ["astronaut_input.png"]
    images = [read_rgb_uint8(p) for p in written]
    assert all(image.shape == (60, 52, 3) for image in images)  # the input's size (padded to 64x56 inside)
    faces = [image.astype(int) for image in images[:3]]
    assert np.abs(faces[0] - faces[1]).mean() > 0.5 and np.abs(faces[1] - faces[2]).mean() > 0.5
    sketch = images[3]
    assert (sketch[..., 0] == sketch[..., 1]).all() and sketch.mean() > 127  # gray, dark lines on white
    again = _translate(tmp_path, f"input={odd_face}", f"ckpt={ckpts['sketch2face']}", "from_photo=true",
                       "styles=3", f"output={out}", "overwrite=true")
    assert all((read_rgb_uint8(p) == image).all() for p, image in zip(again, images, strict=True))  # seeded
    with pytest.raises(ConfigError, match=r"holds astronaut_0.png already; give another folder, or"):
        _translate(tmp_path, f"input={odd_face}", f"ckpt={ckpts['sketch2face']}", f"output={out}")
    mean = _translate(tmp_path, f"input={sketch_file(tmp_path, sketch)}", f"ckpt={ckpts['sketch2face']}",
                      "styles=0", f"output={tmp_path / 'mean'}")
    assert [p.name for p in mean] == ["sketch.png"]


def sketch_file(tmp_path, sketch):
    path = tmp_path / "sketch.png"
    Image.fromarray(sketch[..., 0]).save(path)  # one channel, as the official example sketches
    return path


def test_mask_to_face_of_a_label_png_and_the_refusals(tmp_path, ckpts, odd_face):
    labels = np.zeros((64, 48), np.uint8)
    labels[8:56, 8:40], labels[20:26, 12:20], labels[20:26, 28:36] = 1, 5, 4  # skin, eyes
    Image.fromarray(labels).save(tmp_path / "mask.png")
    written = _translate(tmp_path, f"input={tmp_path / 'mask.png'}", f"ckpt={ckpts['mask2face']}", "styles=2",
                         f"output={tmp_path / 'out'}")
    assert [p.name for p in written] == ["mask_0.png", "mask_1.png"]
    assert read_rgb_uint8(written[0]).shape == (64, 48, 3)
    with pytest.raises(ConfigError, match="from_photo=true makes sketches of photos, for a sketch2face"):
        _translate(tmp_path, f"input={odd_face}", f"ckpt={ckpts['mask2face']}", "from_photo=true")
    with pytest.raises(DataError, match=r"astronaut.png: a RGB image; expected a parsing map"):
        _translate(tmp_path, f"input={odd_face}", f"ckpt={ckpts['mask2face']}", f"output={tmp_path / 'x'}")
    with pytest.raises(ConfigError, match="styles=-1: expected a number of random styles >= 0"):
        _translate(tmp_path, f"input={odd_face}", f"ckpt={ckpts['mask2face']}", "styles=-1")


def test_other_checkpoints_are_refused_by_name(tmp_path, data_dir, odd_face):
    folder = tmp_path / "inv"
    folder.mkdir()
    overrides = [*TINY, "datamodule=synthetic_restore", "model=styleganex_inversion"]
    cfg = compose_config(overrides=overrides, output_dir=folder, data_dir=data_dir)
    with open_dict(cfg):
        del cfg["hydra"]
    torch.save({"state_dict": instantiate(cfg.model, "model").state_dict(), **config_entries(cfg)},
               folder / "inv.ckpt")
    with pytest.raises(ConfigError, match=r"a inversion model; expected a StyleGANEX sketch2face or mask"):
        _translate(tmp_path, f"input={odd_face}", f"ckpt={folder / 'inv.ckpt'}")


def test_parsing_agreement_on_the_test_split(tmp_path, ckpts):
    result = _translate(tmp_path, f"ckpt={ckpts['mask2face']}", "miou=true", "parser_steps=3",
                        f"output={tmp_path / 'miou'}")
    assert json.loads((tmp_path / "miou" / "miou.json").read_text()) == result
    assert {"parser", "style", "random"} <= set(result) and len(result["classes"]) == 10
    assert all(0 <= result[k] <= 1 for k in ("parser", "style", "random"))
