"""GFP-GAN's auxiliary networks: ArcFace (ResNetArcFace + its gray 128 px input), the facial-component
discriminator, the RoI crops of eyes and mouth, and the identity-similarity metric.

Official key names and shapes are written out below from the reference, independently of our modules.
Networks are built with random weights on purpose; shape/count checks run on the meta device.
"""

import math

import pytest
import torch
from torch import nn

from facezoo.metrics import IdentitySimilarity
from facezoo.models.components.arcface import ResNetArcFace, gfpgan_identity_input
from facezoo.models.components.facial_component import (
    FacialComponentDiscriminator,
    component_crops,
    crop_boxes,
)


def _shapes(module: nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def _bn(name: str, c: int) -> dict[str, tuple[int, ...]]:
    stats = {f"{name}.{k}": (c,) for k in ("weight", "bias", "running_mean", "running_var")}
    return stats | {f"{name}.num_batches_tracked": ()}


def official_arcface_shapes() -> dict[str, tuple[int, ...]]:
    """arcface_resnet18.pth: ResNetArcFace('IRBlock', [2, 2, 2, 2], use_se=False)."""
    shapes = {"conv1.weight": (64, 1, 3, 3), **_bn("bn1", 64), "prelu.weight": (1,)}
    cin = 64
    for k, c in enumerate((64, 128, 256, 512), start=1):
        for b in range(2):
            p = f"layer{k}.{b}"
            shapes |= _bn(f"{p}.bn0", cin) | {f"{p}.conv1.weight": (cin, cin, 3, 3)} | _bn(f"{p}.bn1", cin)
            shapes |= {f"{p}.prelu.weight": (1,), f"{p}.conv2.weight": (c, cin, 3, 3)} | _bn(f"{p}.bn2", c)
            if cin != c:
                shapes |= {f"{p}.downsample.0.weight": (c, cin, 1, 1)} | _bn(f"{p}.downsample.1", c)
            cin = c
    return shapes | _bn("bn4", 512) | {"fc5.weight": (512, 512 * 8 * 8), "fc5.bias": (512,)} | _bn("bn5", 512)


@pytest.fixture(scope="module")
def arcface() -> ResNetArcFace:
    torch.manual_seed(0)
    return ResNetArcFace().eval()  # random weights: tests only


# ---------------------------------------------------------------- ArcFace


def test_arcface_has_the_official_keys_of_arcface_resnet18():
    with torch.device("meta"):
        net = ResNetArcFace("IRBlock", (2, 2, 2, 2), use_se=False)
    official = official_arcface_shapes()
    assert len(official) == 181 and _shapes(net) == official
    assert net.state_dict()["fc5.weight"].shape == (512, 32768)
    downsampled = {k.split(".downsample")[0] for k in official if ".downsample." in k}
    assert downsampled == {"layer2.0", "layer3.0", "layer4.0"}  # 1×1 conv + BN where the shape changes


def test_arcface_se_variant_adds_the_se_blocks():
    with torch.device("meta"):
        net = ResNetArcFace(use_se=True)
    shapes = _shapes(net)
    assert shapes["layer2.1.se.fc.0.weight"] == (128 // 16, 128)
    assert shapes["layer2.1.se.fc.1.weight"] == (1,)  # PReLU
    assert shapes["layer2.1.se.fc.2.weight"] == (128, 128 // 16)
    assert len(shapes) == 181 + 8 * 5


def test_arcface_embeds_gray_128px_faces(arcface):
    with torch.no_grad():
        out = arcface(torch.randn(3, 1, 128, 128))
    assert out.shape == (3, 512) and torch.isfinite(out).all()
    with pytest.raises(ValueError, match="128, 128"):
        arcface(torch.randn(1, 3, 128, 128))


def test_identity_input_is_gray_with_gfpgan_weights_at_128px():
    red = torch.full((2, 3, 128, 128), -1.0)
    red[:, 0] = 1.0  # pure red in [-1, 1]
    gray = gfpgan_identity_input(red)
    r, g, b = torch.tensor(0.2989), torch.tensor(0.5870), torch.tensor(0.1140)
    assert gray.shape == (2, 1, 128, 128)
    assert torch.equal(gray, (r * 1 + g * -1 + b * -1).expand_as(gray))
    for c, weight in enumerate((r, g, b)):  # each channel alone gives its weight
        one = torch.zeros(1, 3, 128, 128)
        one[:, c] = 1.0
        assert torch.equal(gfpgan_identity_input(one), weight.expand(1, 1, 128, 128))


def test_identity_input_resizes_bilinearly_to_128():
    x = torch.rand(2, 3, 64, 96) * 2 - 1
    gray = gfpgan_identity_input(x)
    assert gray.shape == (2, 1, 128, 128)
    constant = gfpgan_identity_input(torch.full((1, 3, 512, 512), 0.5))
    torch.testing.assert_close(constant, torch.full_like(constant, 0.5 * (0.2989 + 0.5870 + 0.1140)))
    with pytest.raises(ValueError, match="RGB"):
        gfpgan_identity_input(torch.zeros(1, 1, 128, 128))


# ---------------------------------------------------------------- facial-component discriminator


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
    assert len(official) == 12 and _shapes(d) == official
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


# ---------------------------------------------------------------- RoI crops


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


# ---------------------------------------------------------------- identity similarity


def test_identity_similarity_of_identical_images_is_one(arcface):
    metric = IdentitySimilarity(arcface, gfpgan_identity_input)
    x = torch.rand(3, 3, 64, 64) * 2 - 1
    metric.update(x, x.clone())
    assert metric.compute().item() == pytest.approx(1.0, abs=1e-5)


def test_identity_similarity_of_different_faces_is_below_one(arcface):
    torch.manual_seed(1)
    metric = IdentitySimilarity(arcface, gfpgan_identity_input)
    metric.update(torch.rand(2, 3, 64, 64) * 2 - 1, torch.rand(2, 3, 64, 64) * 2 - 1)
    assert metric.compute().item() < 1 - 1e-4


def test_identity_similarity_accumulates_as_the_mean_over_all_pairs(arcface):
    torch.manual_seed(2)
    preds, target = torch.rand(3, 3, 64, 64) * 2 - 1, torch.rand(3, 3, 64, 64) * 2 - 1
    split = IdentitySimilarity(arcface, gfpgan_identity_input)
    whole = IdentitySimilarity(arcface, gfpgan_identity_input)
    split.update(preds[:2], target[:2])
    split.update(preds[2:], target[2:])  # unequal batches: a mean of batch means would differ
    whole.update(preds, target)
    assert split.compute().item() == pytest.approx(whole.compute().item(), abs=1e-6)
    with torch.no_grad():
        embed = arcface(gfpgan_identity_input(torch.cat([preds, target])))
    per_pair = torch.nn.functional.cosine_similarity(embed[:3], embed[3:], dim=1)
    assert whole.compute().item() == pytest.approx(per_pair.mean().item(), abs=1e-6)


def test_identity_similarity_freezes_its_network_and_keeps_it_out_of_the_state_dict():
    net = nn.Sequential(nn.Flatten(), nn.Linear(128 * 128, 8), nn.BatchNorm1d(8)).train()
    metric = IdentitySimilarity(net, gfpgan_identity_input)
    assert not net.training and not any(p.requires_grad for p in net.parameters())
    net.train()  # e.g. a parent module switched back to training
    x = torch.rand(2, 3, 32, 32, requires_grad=True)
    metric.update(x, torch.rand(2, 3, 32, 32))
    assert net[2].num_batches_tracked == 0  # ran in eval mode: BN statistics untouched
    assert not list(metric.children()) and not any("weight" in k for k in metric.state_dict())
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        metric.update(x, torch.rand(2, 3, 16, 16))
