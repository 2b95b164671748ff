"""DFDNet's releases as facezoo networks (src/weights/dfdnet.py): a state_dict written with the official
`UNetDictFace` names and shapes (listed here from the reference, independently of our modules:
`official_dfdnet_shapes`) and the official dictionary folder import and reproduce the forward of the weights
they were written from; so do BasicSR's `params` layout and dictionary file; the duplicated VGG, the Blur
buffers, the classifier and the unused `to_rgb*` are handled; a wrong or missing key is named in one line.
(The network itself: tests/models/components/test_dfdnet.py.)"""

import re

import numpy as np
import pytest
import torch

from facezoo.losses.perceptual import NAMES
from facezoo.models.components.dfdnet import DFDNet
from facezoo.models.components.dfdnet_dictionary import random_dictionary
from facezoo.models.components.dfdnet_parts import CHANNELS, PARTS, SCALES, template_boxes
from facezoo.utils.errors import FacezooError
from facezoo.weights.dfdnet import import_dfdnet_release
from facezoo.weights.releases import import_release, recognise

SHORT = {"left_eye": "le", "right_eye": "re", "nose": "no", "mouth": "mo"}
VGG_CONVS = [i for i, name in enumerate(NAMES[:35]) if name.startswith("conv")]  # torchvision indices
VGG_SLICES = (0, 8, 17, 26, 35)  # VGGFeat.build_vgg_layers
UP_WIDTHS = ((512, 512), (512, 256), (256, 128), (128, 64))


def official_dfdnet_shapes() -> dict:
    """Every tensor of the official latest_net_G.pth (fact sheet §3, 386 tensors), the VGG classifier apart
    (its 120 M elements are unused and not checked: the tests give it small stand-ins)."""
    shapes = {}

    def sn(name, out, inp):
        shapes.update({f"{name}.weight_orig": (out, inp, 3, 3), f"{name}.weight_u": (out,),
                       f"{name}.weight_v": (inp * 9,), f"{name}.bias": (out,)})

    for part in PARTS:
        for scale in SCALES:
            for i in (0, 2):
                sn(f"{SHORT[part]}_{scale}.{i}", CHANNELS[scale], CHANNELS[scale])
    shapes["VggExtract.RGB_mean"] = shapes["VggExtract.RGB_std"] = (1, 3, 1, 1)
    width = 3
    for i in VGG_CONVS:
        out = int(64 * 2 ** min(int(NAMES[i][4]) - 1, 3))
        k = max(j for j, start in enumerate(VGG_SLICES) if start <= i)
        for name in (f"VggExtract.model.features.{i}", f"VggExtract.features.{k}.{i}"):
            shapes.update({f"{name}.weight": (out, width, 3, 3), f"{name}.bias": (out,)})
        width = out
    for n in range(1, 5):
        sn(f"MSDilate.conv{n}.0", 512, 512)
        sn(f"MSDilate.conv{n}.2", 512, 512)
    sn("MSDilate.convi", 512, 2048)
    for n, (inp, out) in enumerate(UP_WIDTHS):
        shapes[f"up{n}.conv1.0.weight"] = shapes[f"up{n}.conv1.0.weight_flip"] = (inp, 1, 3, 3)
        sn(f"up{n}.conv1.1", out, inp)
        sn(f"up{n}.convup.1", out, out)
        for branch in ("ScaleModel1", "ShiftModel1"):
            sn(f"up{n}.{branch}.0", out, inp)
            sn(f"up{n}.{branch}.2", out, out)
    sn("up4.0", 64, 64)
    for block in (2, 3):
        for i in (0, 2):
            name = f"up4.{block}.Model.{i}"
            shapes.update({f"{name}.weight": (64, 64, 3, 3), f"{name}.bias": (64,)})
    shapes.update({"up4.4.weight": (3, 64, 3, 3), "up4.4.bias": (3,)})
    for n, c in enumerate((512, 256, 128, 64)):
        sn(f"to_rgb{n}.0", c, c)
        sn(f"to_rgb{n}.2", 3, c)
    return shapes


def vgg_tensors(net: DFDNet) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    vgg = net.vgg.net
    return {i: (getattr(vgg, f"{NAMES[i]}_weight"), getattr(vgg, f"{NAMES[i]}_bias")) for i in VGG_CONVS}


def official_state(net: DFDNet) -> dict:
    """`net` written with the official names (the reverse of the importer's rules, spelled out here)."""
    ours = {k: v.contiguous() for k, v in net.state_dict().items() if not k.startswith("dictionary.")}
    rules = (
        (r"^attn_blocks\.(\w+?)_(\d+)\.", lambda m: f"{SHORT[m[1]]}_{m[2]}."),
        (r"^multi_scale_dilation\.conv_blocks\.(\d)\.", lambda m: f"MSDilate.conv{int(m[1]) + 1}."),
        (r"^multi_scale_dilation\.conv_fusion\.", lambda m: "MSDilate.convi."),
        (r"^upsample(\d)\.scale_block\.", lambda m: f"up{m[1]}.ScaleModel1."),
        (r"^upsample(\d)\.shift_block\.", lambda m: f"up{m[1]}.ShiftModel1."),
        (r"^upsample4\.([23])\.body\.", lambda m: f"up4.{m[1]}.Model."),
        (r"^upsample(\d)\.", lambda m: f"up{m[1]}."),
        (r"^rgb_(mean|std)$", lambda m: f"VggExtract.RGB_{m[1]}"),
    )
    state = {}
    for key, value in ours.items():
        for pattern, rename in rules:
            match = re.match(pattern, key)
            if match:
                key = rename(match) + key[match.end():]
                break
        state[key] = value
    for i, (weight, bias) in vgg_tensors(net).items():
        k = max(j for j, start in enumerate(VGG_SLICES) if start <= i)
        for name in (f"VggExtract.model.features.{i}", f"VggExtract.features.{k}.{i}"):  # the same tensors
            state[f"{name}.weight"], state[f"{name}.bias"] = weight, bias
    for i in (0, 3, 6):
        state[f"VggExtract.model.classifier.{i}.weight"] = torch.zeros(2, 2)  # stand-ins (docstring above)
        state[f"VggExtract.model.classifier.{i}.bias"] = torch.zeros(2)
    kernel = torch.tensor([[1.0, 2, 1], [2, 4, 2], [1, 2, 1]]) / 16
    for n, (inp, _) in enumerate(UP_WIDTHS):
        state[f"up{n}.conv1.0.weight"] = state[f"up{n}.conv1.0.weight_flip"] = kernel.expand(inp, 1, 3, 3)
    for key, shape in official_dfdnet_shapes().items():
        if key.startswith("to_rgb"):
            state[key] = torch.randn(shape)
    return state


def basicsr_state(net: DFDNet) -> dict:
    """`net` in BasicSR's `DFDNet` layout: our names, its VGG as `vgg_extractor.vgg_net.conv1_1.*`."""
    state = {k: v for k, v in net.state_dict().items() if not k.startswith(("dictionary.", "rgb_"))}
    state["vgg_extractor.mean"], state["vgg_extractor.std"] = net.rgb_mean, net.rgb_std
    for i, (weight, bias) in vgg_tensors(net).items():
        state[f"vgg_extractor.vgg_net.{NAMES[i]}.weight"] = weight
        state[f"vgg_extractor.vgg_net.{NAMES[i]}.bias"] = bias
    return {"params": state}


@pytest.fixture(scope="module")
def release():
    """A DFDNet with random weights (a random VGG-19 on purpose) and 512-px dictionaries of K = 4 atoms."""
    torch.manual_seed(0)
    net = DFDNet(random_dictionary(4).atoms, allow_random_vgg=True).eval()
    with torch.no_grad():
        net.rgb_mean.add_(0.01)  # not ImageNet's: must travel with the weights
    return net


@pytest.fixture(scope="module")
def official_folder(release, tmp_path_factory):
    folder = tmp_path_factory.mktemp("DictionaryCenter512")
    for part in PARTS:
        for scale in SCALES:
            atoms = release.dictionary.atoms(part, scale)
            np.save(folder / f"{part}_{scale}_center.npy", atoms.reshape(len(atoms), -1).numpy())
    return folder


def imported_forward(imported, tmp_path, lq, boxes):
    torch.save(imported.vgg, tmp_path / "vgg19-release.pth")
    net = DFDNet(vgg_weights=str(tmp_path / "vgg19-release.pth")).eval()
    net.load_state_dict(imported.networks["generator"])
    with torch.no_grad():
        return net(lq, boxes)


def test_official_names_and_dictionary_folder_import_and_reproduce_the_forward(release, official_folder,
                                                                               tmp_path):
    state = official_state(release)
    expected = official_dfdnet_shapes()
    assert len(expected) + 6 == 386  # the official file's tensor count, with the 6 classifier tensors
    written = {k: tuple(v.shape) for k, v in state.items() if ".classifier." not in k}
    assert written == expected
    assert recognise(state) == "dfdnet"
    imported = import_release(state, dictionary=str(official_folder))
    assert imported.method == "dfdnet" and "model=dfdnet" in imported.overrides
    assert "K = 4" in imported.description
    torch.manual_seed(1)
    lq, boxes = torch.rand(2, 3, 64, 64) * 2 - 1, template_boxes(2, 64)
    with torch.no_grad():
        reference = release(lq, boxes)
    restored = imported_forward(imported, tmp_path, lq, boxes)
    torch.testing.assert_close(restored, reference, rtol=1e-5, atol=1e-6)


def test_basicsr_params_and_dictionary_file_import_and_reproduce_the_forward(release, tmp_path):
    state = basicsr_state(release)
    assert len(state["params"]) == 308  # DFDNet_official-d1fa5650.pth's tensor count
    dictionary = {str(s): {p: release.dictionary.atoms(p, s) for p in PARTS} for s in SCALES}
    torch.save(dictionary, tmp_path / "DFDNet_dict_512-test.pth")
    assert recognise(state) == "dfdnet"
    imported = import_dfdnet_release(state, dictionary=str(tmp_path / "DFDNet_dict_512-test.pth"))
    lq, boxes = torch.rand(1, 3, 64, 96) * 2 - 1, template_boxes(1, 64)
    with torch.no_grad():
        reference = release(lq, boxes)
    restored = imported_forward(imported, tmp_path, lq, boxes)
    torch.testing.assert_close(restored, reference, rtol=1e-5, atol=1e-6)


def test_wrong_or_missing_keys_are_named(release, official_folder):
    state = official_state(release)
    folder = str(official_folder)
    missing = {k: v for k, v in state.items() if k != "up1.ScaleModel1.0.weight_orig"}
    with pytest.raises(FacezooError, match=r"missing 1 \(upsample1\.scale_block\.0\.weight_orig\)"):
        import_dfdnet_release(missing, dictionary=folder)
    with pytest.raises(FacezooError, match=r"unexpected 1 \(up5\.conv1\.1\.bias\)"):
        import_dfdnet_release({**state, "up5.conv1.1.bias": torch.zeros(3)}, dictionary=folder)
    copy = "VggExtract.features.2.19.weight"
    with pytest.raises(FacezooError, match=re.escape(f"'{copy}' differs")):
        import_dfdnet_release({**state, copy: state[copy] + 1}, dictionary=folder)
    with pytest.raises(FacezooError, match=r"'up2\.conv1\.0\.weight' is not the \[1, 2, 1\]"):
        import_dfdnet_release({**state, "up2.conv1.0.weight": torch.ones(256, 1, 3, 3)}, dictionary=folder)
    with pytest.raises(FacezooError, match="holds no dictionaries; give them with --dictionary"):
        import_dfdnet_release(state)
    with pytest.raises(FacezooError, match="--dictionary: component dictionaries belong to dfdnet"):
        import_release({"conv_body_first.weight": torch.zeros(1)}, method="gfpgan", dictionary=folder)
    with pytest.raises(FacezooError, match="no discriminator"):
        import_dfdnet_release(state, dictionary=folder, discriminator="net_d.pth")


def test_facezoo_import_writes_a_checkpoint_that_restores_as_the_release(release, official_folder, tmp_path):
    from facezoo.checkpoints import load_model
    from facezoo.weights.cli import main as import_main

    torch.save(official_state(release), tmp_path / "latest_net_G.pth")
    out = tmp_path / "dfdnet.ckpt"
    assert import_main([str(tmp_path / "latest_net_G.pth"), "--dictionary", str(official_folder),
                        "--out", str(out)]) == 0
    assert (tmp_path / "dfdnet_vgg19.pth").is_file()
    model = load_model(out)
    lq = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        reference = release(lq, template_boxes(2, 64))
    torch.testing.assert_close(model.restore(lq)["image"], reference, rtol=1e-5, atol=1e-6)
