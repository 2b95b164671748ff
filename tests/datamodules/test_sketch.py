"""XDoG pencil sketches from photos (src/datamodules/sketch.py)."""

import pytest
import skimage.data
import torch
import torch.nn.functional as F

from facezoo.datamodules.sketch import pencil_sketch
from facezoo.datamodules.synthetic.renderer import render_faces
from facezoo.utils.errors import DataError


@pytest.fixture(scope="module")
def faces():
    return render_faces(range(6), 96)


def test_lines_follow_the_renderers_sketch(faces):
    sketch = pencil_sketch(faces["image"])
    assert sketch.shape == (6, 1, 96, 96) and sketch.dtype == torch.float32
    assert sketch.min() >= 0 and sketch.max() <= 1
    lines = sketch > 0.5
    near_true = F.max_pool2d((faces["sketch"] > 0.5).float(), 5, 1, 2) > 0  # within 2 px of a renderer line
    chance = near_true.float().mean()
    precision = (lines & near_true).sum() / lines.sum()
    assert lines.float().mean() > 0.005
    assert precision > 0.8 and precision > 2 * chance


@pytest.mark.parametrize("grey", [-1.0, -0.2, 0.5, 1.0])
def test_a_flat_image_has_no_lines(grey):
    assert pencil_sketch(torch.full((2, 3, 40, 40), grey)).max() < 0.01


def test_batched_equals_per_image_and_repeats(faces):
    batch = pencil_sketch(faces["image"])
    alone = torch.cat([pencil_sketch(faces["image"][i:i + 1]) for i in range(len(batch))])
    assert torch.equal(batch, alone)
    assert torch.equal(batch, pencil_sketch(faces["image"]))


def test_a_photo_gives_a_plausible_sketch():
    photo = torch.from_numpy(skimage.data.astronaut()).permute(2, 0, 1)[None].float() / 127.5 - 1
    sketch = pencil_sketch(F.interpolate(photo, size=256, mode="area"))
    lines = (sketch > 0.5).float()
    assert 0.02 < lines.mean() < 0.25  # mostly background, some lines
    assert sketch.mean() < 0.25


def test_bad_images_raise():
    with pytest.raises(DataError, match="pencil_sketch"):
        pencil_sketch(torch.zeros(1, 1, 8, 8))
