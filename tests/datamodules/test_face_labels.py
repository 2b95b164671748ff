"""The CelebAMask-HQ 19-class convention and the renderer's labels mapped onto it (face_labels.py)."""

import pytest
import torch

from facezoo.datamodules.face_labels import CELEBAMASK_LABELS, NOT_RENDERED, one_hot, to_celebamask
from facezoo.datamodules.synthetic.renderer import PARSING_LABELS, render_faces
from facezoo.utils.errors import DataError

ID = {name: i for i, name in enumerate(CELEBAMASK_LABELS)}
EXPECTED = {"background": {"background"}, "skin": {"skin"}, "brows": {"l_brow", "r_brow"},
            "eyes": {"l_eye", "r_eye"}, "nose": {"nose"}, "lips": {"u_lip", "l_lip"}, "hair": {"hair"}}
SWAP = {"l_brow": "r_brow", "r_brow": "l_brow", "l_eye": "r_eye", "r_eye": "l_eye"}


@pytest.fixture(scope="module")
def faces():
    return render_faces(range(6), 96)


def test_the_order_is_the_bisenet_parsers():
    assert len(CELEBAMASK_LABELS) == 19
    names = ("background", "skin", "l_brow", "nose", "mouth", "u_lip", "l_lip", "hair", "hat")
    assert [ID[n] for n in names] == [0, 1, 2, 10, 11, 12, 13, 17, 18]


def test_every_renderer_label_lands_in_its_class(faces):
    parsing = faces["parsing"]
    out = to_celebamask(parsing)
    assert out.shape == parsing.shape and out.dtype == torch.int64
    for label, name in enumerate(PARSING_LABELS):
        got = {CELEBAMASK_LABELS[i] for i in out[parsing == label].unique().tolist()}
        assert got == EXPECTED[name], name
    assert not set(out.unique().tolist()) & {ID[n] for n in NOT_RENDERED}


def test_left_is_the_persons_left_and_lips_split_top_down(faces):
    out, boxes = to_celebamask(faces["parsing"]), faces["boxes"]
    cols = torch.arange(out.shape[-1]).float()
    rows = torch.arange(out.shape[-2]).float()
    for i in range(len(out)):
        def mean_col(name, i=i):
            return cols[(out[i] == ID[name]).nonzero()[:, 1]].mean()
        assert mean_col("l_eye") > mean_col("r_eye") and mean_col("l_brow") > mean_col("r_brow")
        # the batch's left_eye box (COMPONENTS order) is the image's left: the person's right eye
        x1, y1, x2, y2 = boxes[i, 0].round().long().tolist()
        assert (out[i, y1:y2, x1:x2] == ID["r_eye"]).sum() == (out[i] == ID["r_eye"]).sum()
        upper = rows[(out[i] == ID["u_lip"]).nonzero()[:, 0]]
        lower = rows[(out[i] == ID["l_lip"]).nonzero()[:, 0]]
        assert len(upper) and len(lower) and upper.mean() < lower.mean()


def test_a_mirrored_face_swaps_left_and_right(faces):
    out = to_celebamask(faces["parsing"])
    mirrored = to_celebamask(faces["parsing"].flip(-1)).flip(-1)
    swapped = out.clone()
    for a, b in SWAP.items():
        swapped[out == ID[a]] = ID[b]
    assert torch.equal(mirrored, swapped)
    assert not torch.equal(mirrored, out)


def test_batched_equals_per_image(faces):
    out = to_celebamask(faces["parsing"])
    assert torch.equal(out[3:4], to_celebamask(faces["parsing"][3:4]))


def test_one_hot_is_the_official_encoding(faces):
    labels = to_celebamask(faces["parsing"])
    x = one_hot(labels)
    assert x.shape == (6, 19, 96, 96) and x.dtype == torch.float32
    assert torch.equal(x.sum(1), torch.ones(6, 96, 96))
    assert set(x.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(x.argmax(1), labels)


@pytest.mark.parametrize("bad", [torch.full((1, 4, 4), 7), torch.full((1, 4, 4), -1),
                                 torch.zeros(4, 4).long(), torch.zeros(1, 4, 4)])
def test_bad_parsing_maps_raise(bad):
    with pytest.raises(DataError, match="to_celebamask"):
        to_celebamask(bad)


def test_one_hot_rejects_labels_out_of_range():
    with pytest.raises(DataError, match="one_hot"):
        one_hot(torch.full((1, 4, 4), 19))
