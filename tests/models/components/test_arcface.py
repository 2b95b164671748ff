"""GFP-GAN's ArcFace (src/models/components/arcface.py): ResNetArcFace with the official keys of
arcface_resnet18.pth (written out below from the reference, independently of our module), its SE variant, the
embedding of gray 128 px faces and the gray 128 px input. Networks are built with random weights on purpose;
shape/count checks run on the meta device. (GPEN's IR-SE50: tests/models/components/test_gpen.py.)"""

import pytest
import torch

from facezoo.models.components.arcface import ResNetArcFace, gfpgan_identity_input
from helpers import state_shapes


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


def test_arcface_has_the_official_keys_of_arcface_resnet18():
    with torch.device("meta"):
        net = ResNetArcFace("IRBlock", (2, 2, 2, 2), use_se=False)
    official = official_arcface_shapes()
    assert len(official) == 181 and state_shapes(net) == official
    assert net.state_dict()["fc5.weight"].shape == (512, 32768)
    downsampled = {k.split(".downsample")[0] for k in official if ".downsample." in k}
    assert downsampled == {"layer2.0", "layer3.0", "layer4.0"}  # 1×1 conv + BN where the shape changes


def test_arcface_se_variant_adds_the_se_blocks():
    with torch.device("meta"):
        net = ResNetArcFace(use_se=True)
    shapes = state_shapes(net)
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
