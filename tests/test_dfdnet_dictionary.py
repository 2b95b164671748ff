"""facezoo-dfdnet-dictionary end to end (src/dfdnet_dictionary.py) on a few synthetic 64 px faces with a
random VGG-19 1/8 as wide (`vgg.allow_random=true width=0.125`, on purpose: the real weights may be absent,
and a narrow one is fast): the dictionary file in each layout, seeded, from each source of part boxes (the
faces' boxes.json, the template, dlib's landmarks on a real photo, skimage's astronaut), and bad input refused
with one line and exit code 2."""

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from facezoo.datamodules.boxes import hflip_boxes
from facezoo.datamodules.folders import ImageFolder
from facezoo.datamodules.synthetic.writers import write_faces
from facezoo.dfdnet_dictionary import build, part_boxes
from facezoo.models.components.dfdnet_dictionary import load_dictionary
from facezoo.models.components.dfdnet_parts import PARTS, SCALES, atom_size, channels, template_boxes
from facezoo.utils.compose import compose_config
from facezoo.utils.errors import ConfigError, DataError
from helpers import run_modules

WIDTH = 0.125
TINY = ["image_size=64", "k=2", "passes=1", "lloyd_passes=1", "num_workers=0", f"width={WIDTH}",
        "vgg.allow_random=true"]


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    """12 synthetic faces at 64 px with their boxes.json."""
    return write_faces(tmp_path_factory.mktemp("faces"), 12, size=64)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """The astronaut's face, its mirror image, and a wall without a face."""
    folder = tmp_path_factory.mktemp("photos")
    face = data.astronaut()[20:240, 100:320]
    Image.fromarray(face).save(folder / "astronaut.png")
    Image.fromarray(np.ascontiguousarray(face[:, ::-1])).save(folder / "mirrored.png")
    Image.fromarray(np.full((128, 128, 3), 90, np.uint8)).save(folder / "wall.png")
    return folder


def config(tmp_path, data_dir, *overrides):
    return compose_config("dfdnet_dictionary", [f"data_dir={data_dir}", *TINY, *overrides],
                          output_dir=tmp_path / "run")


def test_the_command_writes_a_seeded_dictionary_of_the_faces(tmp_path, faces):
    report = build(config(tmp_path, faces, f"out={tmp_path / 'dict.safetensors'}", "boxes=data"))
    dictionary = load_dictionary(tmp_path / "dict.safetensors")
    assert report["faces"] == 12 and report["skipped"] == 0 and dictionary.image_size == 64
    assert dictionary.width == WIDTH
    for part, scale, atoms in dictionary.items():
        side = atom_size(part, SCALES.index(scale), 64)
        assert atoms.shape == (2, channels(scale, WIDTH), side, side) and torch.isfinite(atoms).all()
    recipe = {"vgg": "random", "faces": "12", "boxes": "data", "k": "2", "seed": "0"}
    assert dictionary.metadata | recipe == dictionary.metadata
    assert set(report["inertia"]) == {f"{p}.{s}" for p in PARTS for s in SCALES}
    # the same seed again, written in the official layout: the same atoms
    build(config(tmp_path, faces, f"out={tmp_path / 'DictionaryCenter64'}", "boxes=data"))
    again = load_dictionary(tmp_path / "DictionaryCenter64", image_size=64, width=WIDTH)
    assert all(torch.equal(atoms, again.atoms[p][s]) for p, s, atoms in dictionary.items())


def test_template_boxes_and_a_seeded_subset_into_basicsr_layout(tmp_path, faces):
    report = build(config(tmp_path, faces, f"out={tmp_path / 'dict.pth'}", "limit=5"))
    assert report["faces"] == 5
    nested = torch.load(tmp_path / "dict.pth", weights_only=True)
    assert sorted(nested) == sorted(map(str, SCALES)) and nested["256"]["mouth"].shape == (2, 16, 6, 6)
    boxes = part_boxes(config(tmp_path, faces, "out=x.safetensors"), ImageFolder(faces, 64), ["00000"])
    assert torch.equal(boxes["00000"], template_boxes(1, 64)[0])


def test_landmark_boxes_follow_the_face_and_faceless_images_are_skipped(tmp_path, photos):
    out = f"out={tmp_path / 'dict.safetensors'}"
    cfg = config(tmp_path, photos, out, "boxes=landmarks", "image_size=128")
    boxes = part_boxes(cfg, ImageFolder(photos, 128), ["astronaut", "mirrored", "wall"])
    assert sorted(boxes) == ["astronaut", "mirrored"]  # the wall has no face
    (x, y) = ((boxes["astronaut"][:, :2] + boxes["astronaut"][:, 2:]) / 2).T  # centres in PARTS order
    assert x[0] < x[2] < x[1] and y[0] < y[2] < y[3] and y[1] < y[2]  # eyes beside and above the nose
    mirrored = hflip_boxes(boxes["mirrored"][None], 128, torch.tensor([True]))[0]
    assert (mirrored - boxes["astronaut"]).abs().max() <= 3  # the same parts, a few pixels apart
    report = build(cfg)
    assert report["faces"] == 2 and report["skipped"] == 1


@pytest.mark.parametrize(
    ("overrides", "error", "text"),
    [
        (["image_size=48"], ConfigError, "image_size=48: expected a multiple of 32"),
        (["passes=0", "lloyd_passes=0"], ConfigError, "expected at least one pass"),
        (["boxes=eyes"], ConfigError, "boxes=eyes: expected one of template, landmarks, data"),
        (["k=13"], DataError, "12 usable faces for k=13 atoms"),
        (["out=dict.npy"], DataError, "dict.npy: expected .safetensors, .pth/.pt or a folder"),
        (["width=0"], ConfigError, "width=0: expected a positive number"),
        (["vgg.allow_random=false"], ConfigError, "width=0.125: only a random VGG-19 can be narrowed"),
        (["vgg.weights=vgg19.pth"], ConfigError, "expected vgg.allow_random=true and vgg.weights=null"),
    ],
)
def test_bad_options_are_refused_with_one_line(tmp_path, faces, overrides, error, text):
    with pytest.raises(error, match=text):
        build(config(tmp_path, faces, f"out={tmp_path / 'dict.safetensors'}", *overrides))


def test_boxes_from_the_data_need_a_boxes_file(tmp_path, photos):
    with pytest.raises(DataError, match="boxes.json: not found"):
        build(config(tmp_path, photos, f"out={tmp_path / 'd.safetensors'}", "boxes=data"))


def test_the_console_command_exits_0_and_2_on_bad_input(tmp_path, faces):
    module = "facezoo.dfdnet_dictionary"
    out = tmp_path / "dict.safetensors"
    results = run_modules({
        "ok": (module, [f"data_dir={faces}", f"out={out}", *TINY, "k=1", "lloyd_passes=0"], tmp_path),
        "no folder": (module, [f"data_dir={tmp_path / 'absent'}", f"out={out}", *TINY], tmp_path),
        "no vgg": (module, [f"data_dir={faces}", f"out={tmp_path / 'x.pth'}", *TINY[:-2]], tmp_path),
    })
    assert results["ok"].returncode == 0 and load_dictionary(out).k("nose", 32) == 1
    for name, text in (("no folder", "absent: folder not found"), ("no vgg", "vgg19-dcbb9e9d.pth")):
        lines = results[name].stderr.strip().splitlines()
        assert results[name].returncode == 2 and text in lines[-1] and lines[-1].startswith("facezoo: error:")
    assert not (tmp_path / "x.pth").exists()
