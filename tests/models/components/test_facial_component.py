"""GFP-GAN's facial components (src/models/components/facial_component.py): the component discriminator with
the official keys and size (written out below from the reference, independently of our module), and the RoI
crops of eyes and mouth, checked against the documented bilinear sampling and through a horizontal flip.
Networks are built with random weights on purpose; shape/count checks run on the meta device."""

import math

import pytest
import torch

from facezoo.datamodules.boxes import hflip_boxes
from facezoo.models.components.facial_component import (
    FacialComponentDiscriminator,
    component_crops,
    crop_boxes,
)
from helpers import state_shapes

# --- the facial-component discriminator ---------------------------------------------------------------------


def official_component_d_shapes() -> dict[str, tuple[int, ...]]:
    """gfpganv1_arch.py FacialComponentDiscriminator (BasicSR ConvLayer keys; blur layers at index 0)."""
    shapes = {}
    for name, cin, cout, down in [
        ("conv1", 3, 64, False), ("conv2", 64, 128, True), ("conv3", 128, 128, False),
        ("conv4", 128, 256, True), ("conv5", 256, 256, False),
    ]:
        i = int(down)
        shapes |= {f"{name}.{i}.weight": (cout, cin, 3, 3), f"{name}.{i + 1}.bias": (cout,)}
    return shapes | {"final_conv.0.weight": (1, 256, 3, 3), "final_conv.0.bias": (1,)}


def test_component_discriminator_has_the_official_keys_and_size():
    with torch.device("meta"):
        d = FacialComponentDiscriminator()
    official = official_component_d_shapes()
    assert len(official) == 12 and state_shapes(d) == official
    n = sum(p.numel() for p in d.parameters())
    print(f"FacialComponentDiscriminator: {n:,} parameters")
    assert n == sum(math.prod(s) for s in official.values())
    assert abs(n - 1.1e6) / 1.1e6 < 0.01


@pytest.mark.parametrize("size", [80, 120, 10, 15])
def test_component_discriminator_logits_and_features(size):
    torch.manual_seed(0)
    d = FacialComponentDiscriminator()
    x = torch.randn(2, 3, size, size)
    logits, feats = d(x)
    half = size // 2  # each blur-downsampling conv floors: 80 → 40 → 20, 10 → 5 → 2
    quarter = half // 2
    assert logits.shape == (2, 1, quarter, quarter) and feats is None
    logits2, feats = d(x, return_feats=True)
    assert torch.equal(logits, logits2)
    assert [f.shape for f in feats] == [(2, 128, half, half), (2, 256, quarter, quarter)]


# --- RoI crops ----------------------------------------------------------------------------------------------


def slow_crop(image: torch.Tensor, box, size: int) -> torch.Tensor:
    """The documented convention, one point at a time: pixel i at coordinate i, sample (i, j) at
    x1 + (j + 0.5)·max(x2 − x1, 1)/size (same for y), bilinear; edge pixel within 1 px outside, else 0."""
    _, h, w = image.shape
    x1, y1, x2, y2 = (float(v) for v in box)
    bw, bh = max(x2 - x1, 1.0), max(y2 - y1, 1.0)
    out = torch.zeros(image.shape[0], size, size, dtype=image.dtype)
    for i in range(size):
        for j in range(size):
            y, x = y1 + (i + 0.5) * bh / size, x1 + (j + 0.5) * bw / size
            if y < -1 or y > h or x < -1 or x > w:
                continue
            y, x = min(max(y, 0.0), h - 1), min(max(x, 0.0), w - 1)
            y0, x0 = math.floor(y), math.floor(x)
            y1_, x1_ = min(y0 + 1, h - 1), min(x0 + 1, w - 1)
            ly, lx = y - y0, x - x0
            out[:, i, j] = (
                (1 - ly) * (1 - lx) * image[:, y0, x0] + (1 - ly) * lx * image[:, y0, x1_]
                + ly * (1 - lx) * image[:, y1_, x0] + ly * lx * image[:, y1_, x1_]
            )
    return out


@pytest.mark.parametrize("size", [7, 20, 40])  # fewer, as many as, more samples than box pixels
def test_crop_of_a_bright_square_is_bright_and_its_neighbours_dark(size):
    images = torch.full((2, 3, 64, 64), -1.0)
    boxes = torch.tensor([[10.0, 20.0, 30.0, 35.0], [3.0, 40.0, 15.0, 50.0]])  # a different box per image
    for image, (x1, y1, x2, y2) in zip(images, boxes.long().tolist(), strict=True):
        image[:, y1 : y2 + 1, x1 : x2 + 1] = 1.0  # pixel centres x1..x2, y1..y2
    crops = crop_boxes(images, boxes, size)
    assert crops.shape == (2, 3, size, size)
    torch.testing.assert_close(crops, torch.ones_like(crops), rtol=0, atol=1e-6)
    extent = boxes[:, 2:] - boxes[:, :2] + 1
    right = boxes + torch.cat([extent[:, :1], torch.zeros(2, 1)] * 2, 1)  # starts one pixel past the square
    below = boxes + torch.cat([torch.zeros(2, 1), extent[:, 1:]] * 2, 1)
    for neighbour in (right, below):
        dark = crop_boxes(images, neighbour, size)
        torch.testing.assert_close(dark, -torch.ones_like(dark), rtol=0, atol=1e-6)
    shifted = crop_boxes(images, boxes - torch.tensor([1.0, 0.0, 1.0, 0.0]), size)
    assert (shifted < 0.99).any()  # one pixel off: the dark column left of the square shows


def test_crops_match_the_documented_bilinear_sampling():
    torch.manual_seed(0)
    images = torch.randn(4, 2, 16, 20, dtype=torch.float64)
    boxes = torch.tensor(
        [
            [3.2, 5.7, 12.1, 14.4],  # inside, fractional
            [-3.0, -5.0, 26.0, 19.0],  # over the border: edge within 1 px, zero beyond
            [10.0, 10.0, 10.4, 15.0],  # narrower than 1 px: widened to 1
            [0.0, 0.0, 19.0, 15.0],  # the whole image
        ],
        dtype=torch.float64,
    )
    crops = crop_boxes(images, boxes, 6)
    for image, box, crop in zip(images, boxes, crops, strict=True):
        torch.testing.assert_close(crop, slow_crop(image, box, 6), rtol=0, atol=1e-12)
    # box 1 samples rows at y = −3, 1, …, 17 and columns at x = −0.6, …, 23.6 in a 16×20 image
    out_rows, out_column, inside = crops[1][:, [0, -1]], crops[1][:, :, -1], crops[1][:, 1:-1, :-1]
    assert (out_rows == 0).all() and (out_column == 0).all() and (inside != 0).all()


def test_crops_are_differentiable_and_check_the_box_shape():
    images = torch.randn(2, 3, 16, 16, requires_grad=True)
    crop_boxes(images, torch.tensor([[2.0, 2.0, 9.0, 9.0]] * 2), 4).sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0
    with pytest.raises(ValueError, match=r"\(2, 4\) boxes"):
        crop_boxes(images, torch.zeros(1, 4), 4)


@pytest.mark.parametrize("out_size, eye, mouth", [(512, 80, 120), (64, 10, 15), (32, 8, 8)])
def test_component_crops_sizes_and_boxes(out_size, eye, mouth):
    torch.manual_seed(0)
    images = torch.randn(2, 3, out_size, out_size)
    s = out_size / 64
    boxes = torch.tensor([[10, 20, 26, 30], [38, 20, 54, 30], [26, 28, 38, 42], [20, 44, 44, 54]]) * s
    boxes = torch.stack([boxes, boxes + s])  # (B, 4 components, 4)
    crops = component_crops(images, boxes, out_size)
    assert {k: tuple(v.shape) for k, v in crops.items()} == {
        "left_eye": (2, 3, eye, eye), "right_eye": (2, 3, eye, eye), "mouth": (2, 3, mouth, mouth),
    }
    for name, index in (("left_eye", 0), ("right_eye", 1), ("mouth", 3)):  # boxes order: eyes, nose, mouth
        assert torch.equal(crops[name], crop_boxes(images, boxes[:, index], crops[name].shape[-1]))
    with pytest.raises(ValueError, match="boxes"):
        component_crops(images, boxes[:, :3], out_size)


def test_component_crops_follow_a_flip():
    boxes = torch.tensor([[[10.0, 20, 25, 30], [38, 20, 53, 30], [28, 30, 35, 40], [18, 42, 45, 52]]])
    image = torch.full((1, 3, 64, 64), -1.0)
    x1, y1, x2, y2 = boxes[0, 0].long().tolist()
    image[..., y1 : y2 + 1, x1 : x2 + 1] = 1.0  # bright left eye
    before = component_crops(image, boxes, 64)
    assert (before["left_eye"] == 1).all() and (before["right_eye"] == -1).all()
    after = component_crops(image.flip(-1), hflip_boxes(boxes, 64, torch.tensor([True])), 64)
    torch.testing.assert_close(after["right_eye"], before["left_eye"].flip(-1))  # the same eye, mirrored
    assert (after["left_eye"] == -1).all()
