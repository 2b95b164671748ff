"""DFDNet's network (src/models/components/dfdnet.py) and its part geometry (dfdnet_parts.py): the official
sizes and box rule, CAdaIN matching against a direct computation, the DFT block against a per-face reference
written the official way (slices, F.interpolate, a conv of each part alone), a batch against single runs, the
spectral norm against PyTorch's, the ablation switches and the input contract. The VGG-19 is randomly
initialised on purpose (tests never read pretrained files); sizes are tiny (64 px faces, K = 4 atoms, the
network 1/8 as wide). (Official and BasicSR weights and shapes, at width 1: tests/weights/test_dfdnet.py.)"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from facezoo.losses.perceptual import VGG19Features
from facezoo.models.components.dfdnet import (
    VGG_LAYERS,
    ComponentDictionary,
    DFDNet,
    SNConv2d,
    confidence_block,
    dft,
    match_atoms,
)
from facezoo.models.components.dfdnet_dictionary import random_dictionary
from facezoo.models.components.dfdnet_parts import (
    LANDMARK_GROUPS,
    PARTS,
    atom_size,
    boxes_from_landmarks,
    channels,
    template_boxes,
)
from facezoo.utils.errors import ConfigError

SIZE, K, WIDTH = 64, 4, 0.125


def random_atoms(k=K, image_size=512, seed=0, width=WIDTH) -> dict:
    return random_dictionary(k, image_size, seed, width).atoms


@pytest.fixture(scope="module")
def vgg():
    return VGG19Features(list(VGG_LAYERS), allow_random=True, input_norm="none", width=WIDTH)  # random


@pytest.fixture(scope="module")
def net(vgg):
    torch.manual_seed(0)
    return DFDNet(random_atoms(image_size=SIZE), vgg=vgg, width=WIDTH).eval()


def jittered_boxes(batch: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    boxes = template_boxes(batch, SIZE)
    grow = torch.randint(-3, 4, (batch, 4, 2), generator=g).float()
    shift = torch.randint(-3, 4, (batch, 4, 2), generator=g).float()
    return boxes + torch.cat((shift - grow, shift + grow), dim=2)


# --- part geometry ------------------------------------------------------------------------------------------


def test_atom_sizes_are_the_official_ones_at_512_and_scale_with_the_face():
    assert [[atom_size(p, i) for p in PARTS] for i in range(4)] == [
        [40, 40, 25, 55], [20, 20, 12, 27], [10, 10, 6, 13], [5, 5, 3, 6]
    ]
    assert [atom_size(p, 0, 256) for p in PARTS] == [20, 20, 12, 27]
    assert atom_size("nose", 3, 64) == 1  # never 0


def official_part_location(landmarks: np.ndarray) -> np.ndarray:
    """test_FaceDict.py get_part_location, written out."""
    out = []
    for part in PARTS:
        group = landmarks[list(LANDMARK_GROUPS[part])]
        mean = group.mean(0)
        half = max(np.max(group.max(0) - group.min(0)) / 2, 16)
        out.append(np.hstack((mean - half + 1, mean + half)).astype(int))
    return np.stack(out)


def test_boxes_from_landmarks_follow_the_official_rule():
    rng = np.random.default_rng(0)
    landmarks = rng.uniform(100, 400, (3, 68, 2))
    landmarks[1, 29:36] = 250 + rng.uniform(0, 5, (7, 2))  # a tiny nose: the 16 px minimum half size
    boxes = boxes_from_landmarks(torch.from_numpy(landmarks))
    assert boxes.shape == (3, 4, 4)
    for b in range(3):
        np.testing.assert_array_equal(boxes[b].numpy(), official_part_location(landmarks[b]))
    assert (boxes[1, 2, 2:] - boxes[1, 2, :2]).tolist() == [31, 31]  # half = 16
    tiny = boxes_from_landmarks(torch.from_numpy(landmarks[1:2] / 4), 128)
    assert (tiny[0, 2, 2:] - tiny[0, 2, :2]).tolist() == [7, 7]  # half = 16 · 128 / 512


def test_template_boxes_scale_with_the_face_and_hold_each_part():
    big, small = template_boxes(2, 512), template_boxes(1, 128)
    assert big.shape == (2, 4, 4) and torch.equal(big[0], big[1])
    torch.testing.assert_close(small[0], big[0] / 4, atol=1.5, rtol=0)  # the + 1 and rounding
    left, right, nose, mouth = big[0]
    assert left[2] < right[0] and left[1] < nose[1] < mouth[1]  # eyes apart, nose above the mouth


# --- matching and the DFT block -----------------------------------------------------------------------------


def adain(atoms: torch.Tensor, part: torch.Tensor) -> torch.Tensor:
    """The official adaptive_instance_normalization_4D(atoms, part), written out."""
    def stats(x):
        flat = x.flatten(2)
        return flat.mean(2)[..., None, None], (flat.var(2) + 1e-5).sqrt()[..., None, None]
    (mu_a, sd_a), (mu_p, sd_p) = stats(atoms), stats(part)
    return (atoms - mu_a) / sd_a * sd_p + mu_p


def test_match_picks_the_argmax_of_the_cadain_correlation():
    g = torch.Generator().manual_seed(1)
    parts = torch.randn(3, 8, 5, 6, generator=g) * torch.rand(3, 8, 1, 1, generator=g) * 3 + 1
    atoms = torch.randn(7, 8, 5, 6, generator=g) * 2 - 0.5
    scores, index, chosen = match_atoms(parts, atoms)
    for b in range(3):
        renormalised = adain(atoms, parts[b : b + 1])
        direct = F.conv2d(parts[b : b + 1], renormalised).flatten()  # the official similarity
        torch.testing.assert_close(scores[b], direct, rtol=1e-4, atol=1e-3)
        assert index[b] == direct.argmax()
        torch.testing.assert_close(chosen[b], renormalised[direct.argmax()], rtol=1e-5, atol=1e-5)
    assert len(set(index.tolist())) > 1  # the parts really pick different atoms
    raw_scores, raw_index, raw_chosen = match_atoms(parts, atoms, cadain=False)
    torch.testing.assert_close(raw_scores, parts.flatten(1) @ atoms.flatten(1).t())
    assert torch.equal(raw_chosen, atoms[raw_index])


def reference_dft(feature, boxes, step, dictionary, confidence):
    """The official per-part code for one face (UNetDictFace.forward): slice, bilinear resize, CAdaIN,
    argmax, nearest resize back, the confidence block on the part alone, paste in PARTS order."""
    updated = feature.clone()
    for i, part in enumerate(PARTS):
        x1, y1, x2, y2 = (boxes[i] // step).long().tolist()
        x2, y2 = max(x2, x1 + 1), max(y2, y1 + 1)
        region = feature[:, :, y1:y2, x1:x2]
        atoms = dictionary[part]
        resized = F.interpolate(region, atoms.shape[2:], mode="bilinear", align_corners=False)
        renormalised = adain(atoms, resized)
        best = F.conv2d(resized, renormalised).flatten().argmax()
        swap = F.interpolate(renormalised[best : best + 1], region.shape[2:])
        updated[:, :, y1:y2, x1:x2] = region + confidence[part](swap - region) * swap
    return updated


def test_dft_matches_the_official_per_face_code_for_every_face_of_a_batch():
    torch.manual_seed(2)
    channels, step = 16, 2
    feature = torch.randn(3, channels, 32, 32)
    boxes = jittered_boxes(3, seed=3)
    boxes[2, 3] = torch.tensor([20.0, 40.0, 50.0, 62.0])  # a large mouth overlapping the nose
    dictionary = {p: torch.randn(K, channels, *(atom_size(p, 0, SIZE),) * 2) for p in PARTS}
    confidence = {p: confidence_block(channels).eval() for p in PARTS}
    with torch.no_grad():
        updated, chosen = dft(feature, boxes, step, dictionary, confidence)
        for b in range(3):
            expected = reference_dft(feature[b : b + 1], boxes[b], step, dictionary, confidence)
            torch.testing.assert_close(updated[b : b + 1], expected, rtol=1e-4, atol=1e-5)
    assert chosen.shape == (3, 4) and not torch.equal(updated, feature)


def test_dft_parts_outside_the_feature_stay_inside_and_at_least_one_cell():
    feature = torch.randn(1, 4, 8, 8)
    boxes = torch.tensor([[[-9.0, -9.0, -2.0, -2.0], [30.0, 30.0, 40.0, 41.0], [3.0, 3.0, 3.0, 3.0],
                           [0.0, 0.0, 15.0, 15.0]]])
    dictionary = {p: torch.randn(2, 4, 3, 3) for p in PARTS}
    with torch.no_grad():
        updated, _ = dft(feature, boxes, 2, dictionary, None)
    assert torch.isfinite(updated).all() and updated.shape == feature.shape


# --- the network --------------------------------------------------------------------------------------------


def test_forward_shapes_range_and_input_contract(net):
    lq = torch.rand(2, 3, SIZE, 96) * 2 - 1  # not square: any multiple of 32
    boxes = template_boxes(2, SIZE)
    with torch.no_grad():
        out = net(lq, boxes)
    assert out.shape == lq.shape and torch.isfinite(out).all() and out.abs().max() <= 1
    with pytest.raises(ConfigError, match="multiples of 32"):
        net(torch.zeros(1, 3, 48, 64), template_boxes(1, SIZE))
    with pytest.raises(ConfigError, match=r"\(1, 4, 4\) part boxes"):
        net(torch.zeros(1, 3, SIZE, SIZE))


def test_a_batch_of_four_equals_four_single_runs(net):
    torch.manual_seed(4)
    lq = torch.rand(4, 3, SIZE, SIZE) * 2 - 1
    boxes = jittered_boxes(4, seed=5)
    with torch.no_grad():
        batched = net(lq, boxes)
        singles = torch.cat([net(lq[b : b + 1], boxes[b : b + 1]) for b in range(4)])
        _, chosen = net.transfer(net.features(lq), boxes)
    torch.testing.assert_close(batched, singles, rtol=1e-4, atol=1e-5)
    assert any(len(set(c[:, 0].tolist())) > 1 for c in chosen.values())  # faces pick their own atoms


def test_new_mouth_atoms_change_the_output_around_the_mouth(net):
    lq = torch.rand(1, 3, SIZE, SIZE) * 2 - 1
    boxes = template_boxes(1, SIZE)
    with torch.no_grad():
        before = net(lq, boxes)
        saved = net.dictionary.mouth_256.clone()
        net.dictionary.mouth_256.copy_(torch.randn_like(saved))  # (an affine change is undone by CAdaIN)
        after = net(lq, boxes)
        net.dictionary.mouth_256.copy_(saved)
    changed = (before - after).abs().amax(dim=(0, 1)) > 1e-6
    ys, xs = changed.nonzero().unbind(1)
    mouth = boxes[0, 3]
    assert changed.any()
    x, y = xs.float().mean(), ys.float().mean()
    assert mouth[0] - 4 <= x <= mouth[2] + 4 and mouth[1] - 4 <= y <= mouth[3] + 4


def test_ablation_switches(vgg):
    torch.manual_seed(6)
    lq = torch.rand(1, 3, SIZE, SIZE) * 2 - 1
    boxes = template_boxes(1, SIZE)
    plain = DFDNet(vgg=vgg, use_dictionary=False, width=WIDTH).eval()
    assert not hasattr(plain, "dictionary") and not hasattr(plain, "attn_blocks")
    with torch.no_grad():
        assert plain(lq).shape == lq.shape  # a U-Net with SFT from the VGG features: no boxes needed
    single = DFDNet(random_atoms(image_size=SIZE), vgg=vgg, scales=[0], width=WIDTH)
    assert list(single.attn_blocks) == [f"{p}_256" for p in PARTS]
    no_conf = DFDNet(random_atoms(image_size=SIZE), vgg=vgg, use_confidence=False, width=WIDTH)
    assert not hasattr(no_conf, "attn_blocks")
    no_cadain = DFDNet(random_atoms(image_size=SIZE), vgg=vgg, use_cadain=False, width=WIDTH).eval()
    with torch.no_grad():
        _, raw = no_cadain.transfer(no_cadain.features(lq), boxes)
        no_cadain.use_cadain = True
        _, normed = no_cadain.transfer(no_cadain.features(lq), boxes)
    assert any(not torch.equal(raw[i], normed[i]) for i in raw)
    with pytest.raises(ConfigError, match="scales"):
        DFDNet(vgg=vgg, scales=[4], width=WIDTH)


def test_width_scales_every_layer_and_only_a_random_vgg(vgg, net):
    assert vgg.conv1_1_weight.shape == (8, 3, 3, 3) and vgg.conv5_4_weight.shape == (64, 64, 3, 3)
    assert [channels(s, WIDTH) for s in (256, 128, 64, 32)] == [16, 32, 64, 64]
    assert net.attn_blocks["mouth_128"][0].weight_orig.shape == (32, 32, 3, 3)
    assert net.multi_scale_dilation.conv_fusion.weight_orig.shape == (64, 256, 3, 3)
    assert net.upsample3.conv1[1].weight_orig.shape == (8, 16, 3, 3)
    assert net.upsample4[4].weight.shape == (3, 8, 3, 3)
    assert net.dictionary.mouth_256.shape[1] == 16
    for options in ({"allow_random_vgg": False}, {"allow_random_vgg": True, "vgg_weights": "vgg19.pth"}):
        with pytest.raises(ConfigError, match=r"width=0.5: expected 1.0 .*random VGG19 only"):
            DFDNet(width=0.5, **options)
    with pytest.raises(ConfigError, match="width must be positive"):
        DFDNet(vgg=vgg, width=0)
    with pytest.raises(ConfigError, match=r"left_eye_256: expected \(K, 16, h, w\)"):
        ComponentDictionary(random_atoms(width=1.0), WIDTH)  # wide atoms in a narrow network


def test_dictionary_takes_k_and_atom_size_from_the_data_and_names_wrong_atoms(vgg):
    empty = DFDNet(vgg=vgg, width=WIDTH).eval()
    with pytest.raises(ConfigError, match="dictionaries are empty"):
        empty(torch.zeros(1, 3, SIZE, SIZE), template_boxes(1, SIZE))
    source = ComponentDictionary(random_atoms(k=3), WIDTH)
    empty.dictionary.load_state_dict(source.state_dict())
    assert empty.dictionary.size == 3 and empty.dictionary.mouth_256.shape == (3, 16, 55, 55)
    atoms = random_atoms(width=1.0)
    atoms["nose"][64] = torch.zeros(2, 256, 6, 6)
    with pytest.raises(ConfigError, match=r"nose_64: expected \(K, 512, h, w\)"):
        ComponentDictionary(atoms)
    del atoms["nose"][64]
    with pytest.raises(ConfigError, match="no atoms for nose at scale 64"):
        ComponentDictionary(atoms)


@pytest.mark.parametrize("training", [False, True])
def test_spectral_norm_conv_is_pytorchs(training):
    torch.manual_seed(7)
    ours = SNConv2d(6, 5, dilation=2).train(training)
    theirs = nn.utils.spectral_norm(nn.Conv2d(6, 5, 3, padding=2, dilation=2)).train(training)
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(2, 6, 9, 9)
    for _ in range(3):  # in training each call is one more power iteration, on both
        torch.testing.assert_close(ours(x), theirs(x))
    torch.testing.assert_close(ours.weight_u, theirs.weight_u)
    torch.testing.assert_close(ours.weight_v, theirs.weight_v)
    if not training:
        torch.testing.assert_close(ours(x.contiguous(memory_format=torch.channels_last)), theirs(x))
