"""The StyleGANEX encoder E (src/models/components/styleganex_encoder.py): every key and shape of the official
checkpoints' `encoder.*` (written out below from the reference, independently of our module; release size on
the meta device), the sizes of w+, f and the skipped features for square, non-square and odd (×8) inputs,
E(x1, x2) taking w+ from x2 alone, the fusion layers starting as the identity, `crop_face`, and the
translation network T of the sketch / parsing-map tasks (`label_nc`: official keys, T in place of the RGB
stem, RGB still accepted). Forward tests use a narrow encoder (narrow 1/4, 32-d codes) with random weights."""

import math

import pytest
import torch

from facezoo.models.components.arcface import IRSE50
from facezoo.models.components.styleganex_encoder import (
    FusionLayer,
    StyleGANEXEncoder,
    TranslationNetwork,
    crop_face,
)
from facezoo.utils.errors import ConfigError
from helpers import state_shapes

TINY = dict(size=1024, style_dim=32, narrow=0.25)
DECODER = {4: 128, 8: 128, 16: 128, 32: 128, 64: 128, 128: 64, 256: 32}  # config-f at narrow 1/4
ENCODER = {"c2": 64, "c22": 64, "c21": 64, "c1": 32, "c128": 16, "c256": 16}  # IR-SE50 at narrow 1/4
# fusion level j: (encoder feature, its size as a fraction of x, the decoder level it is fused into)
SKIPS = [
    ("c2", 8, 4),
    ("c2", 8, 8),
    ("c22", 8, 16),
    ("c21", 8, 32),
    ("c1", 4, 64),
    ("c128", 2, 128),
    ("c256", 1, 256),
]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return StyleGANEXEncoder(**TINY, skip_max_layer=7).eval()


def _bn(name: str, c: int) -> dict:
    return {f"{name}.{k}": (c,) for k in ("weight", "bias", "running_mean", "running_var")} | {
        f"{name}.num_batches_tracked": ()
    }


def _conv(name: str, out: int, inp: int, k: int) -> dict:
    return {f"{name}.weight": (out, inp, k, k), f"{name}.bias": (out,)}


def official_encoder_shapes(skip_max_layer: int = 0) -> dict:
    """`encoder.*` of styleganex_*.pt (prefix removed): GradualStyleEncoder(50, 'ir_se'), 1024 generator."""
    shapes = (
        {"input_layer.0.weight": (64, 3, 3, 3)} | _bn("input_layer.1", 64) | {"input_layer.2.weight": (64,)}
    )
    units = [(64, 64)] * 3 + [(64, 128)] + [(128, 128)] * 3 + [(128, 256)] + [(256, 256)] * 13
    units += [(256, 512)] + [(512, 512)] * 2
    for i, (cin, d) in enumerate(units):
        p = f"body.{i}.res_layer"
        shapes |= _bn(f"{p}.0", cin) | {f"{p}.1.weight": (d, cin, 3, 3), f"{p}.2.weight": (d,)}
        shapes |= {f"{p}.3.weight": (d, d, 3, 3)} | _bn(f"{p}.4", d)
        shapes |= {f"{p}.5.fc1.weight": (d // 16, d, 1, 1), f"{p}.5.fc2.weight": (d, d // 16, 1, 1)}
        if cin != d:  # else the shortcut is a parameter-free max pool
            shapes |= {f"body.{i}.shortcut_layer.0.weight": (d, cin, 1, 1)} | _bn(
                f"body.{i}.shortcut_layer.1", d
            )
    for i in range(18):
        for k in range(4 if i < 3 else 5 if i < 7 else 6):
            shapes |= _conv(f"styles.{i}.convs.{2 * k}", 512, 512, 3)
        shapes |= {f"styles.{i}.linear.weight": (512, 512), f"styles.{i}.linear.bias": (512,)}
    shapes |= _conv("latlayer1", 512, 256, 1) | _conv("latlayer2", 512, 128, 1)
    shapes |= _conv("featlayer", 512, 768, 1) | _conv("skiplayer", 3, 768, 1)
    pairs = [(256, 512)] * 4 + [(128, 512), (64, 256), (64, 128)]
    for j, (enc, dec) in enumerate(pairs[:skip_max_layer]):
        shapes |= _conv(f"fusion.{j}.transform.0", dec, enc, 3) | _conv(
            f"fusion.{j}.fusion_out", dec, 2 * dec, 3
        )
    return shapes


def official_translation_shapes(label_nc: int) -> dict:
    """`encoder.input_label_layer.*` (prefix removed) of styleganex_{sketch,mask}2face.pt: ResnetGenerator
    (in_channel=input_nc, res_num=2), Sequential `model.{0..12}`."""
    p = "input_label_layer.model"
    shapes = _conv(f"{p}.0", 16, label_nc, 3) | _conv(f"{p}.2", 16, 16, 3)  # 1, 3: LeakyReLU
    for i in (4, 5):  # ResnetBlock(16): conv_block = conv, LeakyReLU, conv
        shapes |= _conv(f"{p}.{i}.conv_block.0", 16, 16, 3) | _conv(f"{p}.{i}.conv_block.2", 16, 16, 3)
    for i in (6, 8):  # ConvTranspose2d(16, 16, 3, 2, 1, output_padding=1): weight (in, out, k, k)
        shapes |= _conv(f"{p}.{i}", 16, 16, 3)
    return shapes | {f"{p}.10.weight": (64, 16, 3, 3)} | _bn(f"{p}.11", 64) | {f"{p}.12.weight": (64,)}


def _millions(shapes: dict) -> float:
    return sum(math.prod(s) for s in shapes.values()) / 1e6


def test_release_encoders_have_the_official_keys_and_shapes():
    with torch.device("meta"):
        inversion, sr, irse50 = StyleGANEXEncoder(), StyleGANEXEncoder(skip_max_layer=4), IRSE50()
    official, official_sr = official_encoder_shapes(), official_encoder_shapes(4)
    assert state_shapes(inversion) == official and state_shapes(sr) == official_sr
    # the inversion checkpoint has 802 tensors, 177 of them the decoder's; the SR one (skip 4) 818, +23.6M
    assert len(official) == 625 and len(official_sr) - len(official) == 16
    assert round(_millions(official_sr) - _millions(official), 1) == 23.6
    assert inversion.n_styles == 18 and official_sr["fusion.0.fusion_out.weight"] == (512, 1024, 3, 3)
    # the body is IR-SE50's (one builder): same keys and shapes as model_ir_se50.pth's stem and body
    body = {k: v for k, v in state_shapes(irse50).items() if not k.startswith("output_layer")}
    assert body == {k: v for k, v in official.items() if k.startswith(("input_layer", "body"))}


@pytest.mark.parametrize("label_nc, skip_max_layer", [(1, 1), (19, 2)])  # sketch2face, mask2face
def test_translation_encoders_have_the_official_keys_and_shapes(label_nc, skip_max_layer):
    with torch.device("meta"):
        e = StyleGANEXEncoder(skip_max_layer=skip_max_layer, label_nc=label_nc)
    translation = official_translation_shapes(label_nc)
    assert state_shapes(e) == official_encoder_shapes(skip_max_layer) | translation
    assert len(translation) == 23 and list(state_shapes(e))[:23] == list(translation)  # T comes first
    assert "input_layer.0.weight" in state_shapes(e)  # the RGB stem stays (the w+ of the real face)


def test_release_fusion_options_add_their_modules():
    with torch.device("meta"):
        e = StyleGANEXEncoder(skip_max_layer=7, use_skip_torgb=True, use_att=2)
    shapes = state_shapes(e)
    assert shapes["fusion.6.fusion_skip.weight"] == (3, 3 + 128, 3, 3)
    assert [shapes[f"fusion.0.linear.{i}.weight"] for i in (0, 2, 4)] == [(512, 512)] * 3
    assert "fusion.0.linear.6.weight" not in shapes
    assert shapes["fusion.5.norm.style.weight"] == (4 * 256, 256)  # AdaIN on cat(out, |out − e|)
    assert shapes["fusion.5.conv.weight"] == (1, 2 * 256, 3, 3)


@pytest.mark.parametrize("size, codes", [(1024, 18), (256, 14), (64, 10)])
def test_the_number_of_codes_follows_the_generator_size(size, codes):
    with torch.device("meta"):
        e = StyleGANEXEncoder(size=size)
    assert e.n_styles == codes == len(e.styles)


@pytest.mark.parametrize("hw", [(64, 64), (64, 96), (72, 56)])
def test_output_sizes_for_square_non_square_and_odd_inputs(tiny, hw):
    h, w = hw
    with torch.no_grad():
        out = tiny(torch.randn(2, 3, h, w))
    assert out.w_plus.shape == (2, 18, 32)
    assert out.f.shape == (2, DECODER[4], h // 8, w // 8)  # a 1024 generator outputs 32·|f| = 4·|x|
    assert out.f_rgb.shape == (2, 3, h // 8, w // 8)
    assert len(out.skips) == 7
    for j, (skip, (name, div, level)) in enumerate(zip(out.skips, SKIPS, strict=True)):
        assert skip.shape == (2, ENCODER[name], h // div, w // div), j
        decoder_feature = torch.randn(2, DECODER[level], h // div, w // div)
        with torch.no_grad():
            fused, rgb = tiny.fusion[j](decoder_feature, skip)
        assert fused.shape == decoder_feature.shape and rgb is None


def test_l_selects_the_skipped_levels(tiny):
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert [len(tiny(x, l=l).skips) for l in (0, 1, 7, 13)] == [0, 1, 4, 7]  # l = 2·levels − 1
    with pytest.raises(ValueError, match="l=15 needs 8 fusion levels"):
        tiny(x, l=15)
    with pytest.raises(ValueError, match="multiples of 8"):
        tiny(torch.randn(1, 3, 60, 64))


def test_w_plus_comes_from_x2_alone_and_f_from_x(tiny):
    x, other, x2 = torch.randn(1, 3, 64, 64), torch.randn(1, 3, 64, 96), torch.randn(1, 3, 56, 56)
    with torch.no_grad():
        own, mixed, mixed_other, from_x2 = tiny(x), tiny(x, x2), tiny(other, x2), tiny(x2)
    assert torch.equal(mixed.w_plus, from_x2.w_plus)
    assert torch.equal(mixed_other.w_plus, from_x2.w_plus)  # x does not change w+
    assert (mixed.w_plus - own.w_plus).abs().amax() > 1e-5  # (random weights: w+ varies little with x)
    assert torch.equal(mixed.f, own.f) and torch.equal(mixed.f_rgb, own.f_rgb)  # f and the skips stay x's
    assert all(torch.equal(a, b) for a, b in zip(mixed.skips, own.skips, strict=True))


def test_every_parameter_is_trained_through_the_outputs_and_fusion():
    e = StyleGANEXEncoder(**TINY, skip_max_layer=7, use_skip_torgb=True, use_att=1)
    out = e(torch.randn(2, 3, 64, 64), torch.randn(2, 3, 32, 32))
    loss = out.w_plus.square().mean() + out.f.square().mean() + out.f_rgb.square().mean()
    for (_, div, level), fusion, skip in zip(SKIPS, e.fusion, out.skips, strict=True):
        n = 64 // div
        fused, rgb = fusion(
            torch.randn(2, DECODER[level], n, n), skip, torch.randn(2, 3, n, n), torch.randn(2, 32)
        )
        loss = loss + fused.square().mean() + rgb.square().mean()
    loss.backward()
    unused = [k for k, p in e.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert unused == []


def test_fusion_starts_as_the_identity_on_the_decoder_feature():
    fusion = FusionLayer(64, 128, use_skip_torgb=True)
    out, feat, skip = torch.randn(2, 128, 16, 12), torch.randn(2, 64, 16, 12), torch.randn(2, 3, 16, 12)
    with torch.no_grad():
        fused, fused_skip = fusion(out, feat, skip)
    for before, after in ((out, fused), (skip, fused_skip)):
        change = (after - before).abs()
        assert change.amax() < 0.15 and change.mean() < 0.05  # unit-scale features (PyTorch init: ~0.5)
        assert change.mean() > 1e-4  # but the encoder feature does enter
    assert fusion.fusion_out.weight[:, :128, 1, 1].diagonal().sub(1).abs().amax() < 0.01


def test_attention_gates_the_encoder_feature_with_the_editing_vector():
    fusion = FusionLayer(16, 32, use_att=1, style_dim=8)
    out, feat, v = torch.randn(1, 32, 8, 8), torch.randn(1, 16, 8, 8), torch.randn(1, 8)
    with torch.no_grad():
        plain, _ = fusion(out, feat)
        gated, _ = fusion(out, feat, editing_w=v)
    assert not torch.allclose(plain, gated)


def test_conv_weights_stay_channels_last_also_when_a_state_is_assigned(tiny):
    # the CPU forward runs channels-last; load_model assigns the file's (contiguous) tensors
    state = {k: v.contiguous() for k, v in tiny.state_dict().items()}
    with torch.device("meta"):
        loaded = StyleGANEXEncoder(**TINY, skip_max_layer=7)
    loaded.load_state_dict(state, assign=True)
    convs = [p for p in loaded.parameters() if p.ndim == 4]
    assert len(convs) > 100 and all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), state.values(), strict=True))
    x = torch.randn(1, 3, 64, 48)
    with torch.no_grad():
        torch.testing.assert_close(loaded.eval()(x, l=7), tiny(x, l=7))


@pytest.fixture(scope="module")
def mask_encoder():
    torch.manual_seed(0)
    return StyleGANEXEncoder(**TINY, skip_max_layer=2, label_nc=19).eval()


def _one_hot(h: int, w: int, classes: int = 19) -> torch.Tensor:
    labels = torch.randint(0, classes, (2, h, w))
    return torch.nn.functional.one_hot(labels, classes).permute(0, 3, 1, 2).float()


@pytest.mark.parametrize("hw", [(64, 64), (64, 96), (72, 56)])
def test_a_parsing_map_goes_through_t_in_place_of_the_rgb_stem(mask_encoder, hw):
    h, w = hw
    y = _one_hot(h, w)
    with torch.no_grad():
        out = mask_encoder(y)
        c256 = mask_encoder.body_features(y, last_unit=0)["c256"]
        translated = mask_encoder.input_label_layer(y)
    assert out.w_plus.shape == (2, 18, 32) and out.f.shape == (2, DECODER[4], h // 8, w // 8)
    assert out.f_rgb.shape == (2, 3, h // 8, w // 8)
    assert [s.shape for s in out.skips] == [(2, ENCODER["c2"], h // 8, w // 8)] * 2
    assert translated.shape == (2, ENCODER["c256"], h, w) and torch.equal(c256, translated)


def test_a_sketch_goes_through_and_t_keeps_the_size():
    e = StyleGANEXEncoder(**TINY, skip_max_layer=1, label_nc=1).eval()
    sketch = (torch.rand(1, 1, 56, 80) > 0.9).float()  # official: ToTensor of a 1-channel image, in [0, 1]
    with torch.no_grad():
        out = e(sketch, l=1)
        t = TranslationNetwork(1, 24)(sketch)
    assert out.f.shape == (1, DECODER[4], 7, 10) and len(out.skips) == 1 and out.w_plus.shape == (1, 18, 32)
    assert t.shape == (1, 24, 56, 80)


def test_rgb_still_takes_the_rgb_stem_and_gives_the_mixing_w_plus(mask_encoder):
    # official coach: inject_latent = E(ỹ), the w+ of the RGB ground truth, through input_layer
    y, face = _one_hot(64, 48)[:1], torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        mixed, own, rgb = mask_encoder(y, face), mask_encoder(y), mask_encoder(face)
        codes = mask_encoder.w_plus(mask_encoder.body_features(face))
    assert torch.equal(mixed.w_plus, rgb.w_plus) and torch.equal(codes, rgb.w_plus)
    assert torch.equal(mixed.f, own.f) and (own.w_plus - rgb.w_plus).abs().amax() > 1e-5


def test_t_and_the_rgb_stem_are_both_trained():
    e = StyleGANEXEncoder(**TINY, skip_max_layer=2, label_nc=19)
    out = e(_one_hot(64, 64), torch.randn(2, 3, 64, 64))  # f, skips from the map; w+ from the face
    loss = out.w_plus.square().mean() + out.f.square().mean() + out.f_rgb.square().mean()
    for (_, div, level), fusion, skip in zip(SKIPS, e.fusion, out.skips, strict=False):
        loss = loss + fusion(torch.randn(2, DECODER[level], 64 // div, 64 // div), skip)[0].square().mean()
    loss.backward()
    unused = [k for k, p in e.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert unused == []


@pytest.mark.parametrize(
    "label_nc, channels, as_x2",
    [(1, 19, False), (19, 1, False), (19, 4, True), (0, 1, False), (0, 19, True)],
)
def test_a_wrong_channel_count_names_label_nc(label_nc, channels, as_x2):
    e = StyleGANEXEncoder(**TINY, label_nc=label_nc)
    x, bad = torch.randn(1, 3, 32, 32), torch.randn(1, channels, 32, 32)
    with pytest.raises(ConfigError, match=f"label_nc={label_nc}: expected 3-channel RGB") as err:
        e(x, bad) if as_x2 else e(bad)
    assert f"got {channels} channels" in str(err.value) and "\n" not in str(err.value)


def test_crop_face_takes_the_centre():
    x = torch.randn(1, 3, 320, 400)
    torch.testing.assert_close(crop_face(x), x[..., 32:288, 72:328])
    torch.testing.assert_close(crop_face(x, 160), x[..., 80:240, 120:280])
    small = torch.randn(1, 3, 200, 200)
    assert torch.equal(crop_face(small), small)  # a side shorter than the crop is kept


@pytest.mark.parametrize(
    "arch, match",
    [
        (dict(narrow=0.125), "narrow"),
        (dict(skip_max_layer=8), "skip_max_layer"),
        (dict(size=64, skip_max_layer=5), "skip_max_layer"),
        (dict(size=100), "size"),
        (dict(label_nc=3), "label_nc: expected 0 .* got 3"),
        (dict(label_nc=-1), "label_nc"),
    ],
)
def test_bad_options_raise_config_errors(arch, match):
    with torch.device("meta"), pytest.raises(ConfigError, match=match):
        StyleGANEXEncoder(**arch)
