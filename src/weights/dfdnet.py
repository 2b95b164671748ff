"""Official DFDNet weights (csxmli2016/DFDNet; XPixelGroup/BasicSR's re-implementation).

Every file is read with `torch.load(weights_only=True)`. Accepted generators:
- the official `checkpoints/facefh_dictionary/latest_net_G.pth`: a bare `UNetDictFace` state_dict. Its names
  become ours (`OFFICIAL_RULES`: `le_256` → `attn_blocks.left_eye_256`, `MSDilate.conv1` →
  `multi_scale_dilation.conv_blocks.0`, `up0.ScaleModel1` → `upsample0.scale_block`, …). Handled apart:
  * the VGG-19 is registered twice, `VggExtract.model.features.{i}.*` and `VggExtract.features.{k}.{i}.*`
    (the same tensors): the copies must be equal, and the VGG becomes `ImportedDFDNet.vgg` (torchvision
    layout, what the resolver's `vgg19-dcbb9e9d.pth` holds; the network's VGG is frozen and not in its
    state); `VggExtract.model.classifier.*` is unused by the network and dropped;
  * `VggExtract.RGB_mean/RGB_std` (saved parameters) are our `rgb_mean/rgb_std`;
  * the `Blur` kernels `up{n}.conv1.0.weight/weight_flip` are buffers of a constant: checked against our
    [1, 2, 1] ⊗ [1, 2, 1] / 16 and dropped;
  * `to_rgb{0..3}.*` belong to side outputs the forward never uses: dropped.
- BasicSR's `DFDNet_official-d1fa5650.pth` (under `params`): our names are BasicSR's, apart from the VGG
  (`vgg_extractor.vgg_net.conv1_1.*` …, → `ImportedDFDNet.vgg`) and its `vgg_extractor.mean/std`.
- a facezoo DFDNet checkpoint (its EMA generator, else its generator).
The dictionaries come from a separate file (`--dictionary`: the official `DictionaryCenter512/` folder,
BasicSR's `DFDNet_dict_512-*.pth`, a facezoo `.safetensors`; read by `dfdnet_dictionary.load_dictionary`)
unless the generator file holds them (a facezoo checkpoint). Every key must match in name and shape, else
one `FacezooError` names the mismatches.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

from facezoo.losses.perceptual import NAMES
from facezoo.models.components.dfdnet import ComponentDictionary, DFDNet
from facezoo.models.components.dfdnet_dictionary import load_dictionary
from facezoo.models.components.dfdnet_parts import PARTS, SCALES
from facezoo.utils.errors import FacezooError
from facezoo.weights.imported import Imported
from facezoo.weights.networks import parameters_on_meta
from facezoo.weights.state_dict import (
    as_state_dict,
    lightning_network,
    listing,
    match_state_dict,
    pick,
    strip_prefix,
)

_PART = {"le": "left_eye", "re": "right_eye", "no": "nose", "mo": "mouth"}
OFFICIAL_RULES = (  # official UNetDictFace name → ours (BasicSR's); applied to every key, first match wins
    (r"^(le|re|no|mo)_(\d+)\.", lambda m: f"attn_blocks.{_PART[m[1]]}_{m[2]}."),
    (r"^MSDilate\.conv([1-4])\.", lambda m: f"multi_scale_dilation.conv_blocks.{int(m[1]) - 1}."),
    (r"^MSDilate\.convi\.", lambda m: "multi_scale_dilation.conv_fusion."),
    (r"^up([0-3])\.ScaleModel1\.", lambda m: f"upsample{m[1]}.scale_block."),
    (r"^up([0-3])\.ShiftModel1\.", lambda m: f"upsample{m[1]}.shift_block."),
    (r"^up([0-4])\.", lambda m: f"upsample{m[1]}."),
    (r"^(upsample4\.[23])\.Model\.", lambda m: f"{m[1]}.body."),
)
_BLUR = re.compile(r"^up[0-3]\.conv1\.0\.(weight|weight_flip)$")
_VGG_COPY = re.compile(r"^VggExtract\.features\.\d+\.(\d+)\.(weight|bias)$")
_VGG = re.compile(r"^VggExtract\.model\.features\.(\d+)\.(weight|bias)$")
_BASICSR_VGG = re.compile(r"^vgg_extractor\.vgg_net\.(conv\d_\d)\.(weight|bias)$")
_UNUSED = re.compile(r"^(VggExtract\.model\.classifier\.|to_rgb[0-3]\.)")
_NORM = {"VggExtract.RGB_mean": "rgb_mean", "VggExtract.RGB_std": "rgb_std",
         "vgg_extractor.mean": "rgb_mean", "vgg_extractor.std": "rgb_std"}


@dataclass
class ImportedDFDNet(Imported):
    """`Imported` plus the release's VGG-19 (torchvision layout `features.{i}.weight/bias`), which the network
    holds frozen outside its state (the resolver's `vgg19-dcbb9e9d.pth` at run time)."""

    vgg: dict = field(default_factory=dict)


def is_dfdnet_generator(state: Mapping) -> bool:
    return "MSDilate.convi.weight_orig" in state or "multi_scale_dilation.conv_fusion.weight_orig" in state


def dfdnet_state(source) -> dict:
    """A DFDNet generator state from the official file, BasicSR's (`params_ema` / `params`) or a facezoo
    checkpoint; DataParallel's `module.` prefix dropped."""
    state = as_state_dict(source)
    part = lightning_network(state, ("generator_ema.module.", "generator."))
    if part is not None:
        return part
    return strip_prefix(pick(state, ("params_ema", "params")) or state)


def _official_name(key: str) -> str:
    for pattern, rename in OFFICIAL_RULES:
        match = re.match(pattern, key)
        if match:
            key = rename(match) + key[match.end():]
    return key


def _check_blur(key: str, value: torch.Tensor, target: nn.Module) -> None:
    name = re.sub(r"^up(\d)\.conv1\.0\..*", r"upsample\1.conv1.0.kernel", key)
    kernel = dict(target.named_buffers())[name]
    value = value.flip(-2, -1) if key.endswith("_flip") else value
    if tuple(value.shape) != tuple(kernel.shape) or not torch.allclose(value.float(), kernel.cpu()):
        raise FacezooError(f"DFDNet generator: '{key}' is not the [1, 2, 1] ⊗ [1, 2, 1] / 16 blur kernel")


def split_vgg(state: Mapping, target: nn.Module) -> tuple[dict, dict]:
    """(network state in our names, VGG-19 in torchvision layout) of an official or BasicSR generator
    state; dropped and checked keys as in the module docstring."""
    network, vgg, copies = {}, {}, {}
    for key, value in state.items():
        if key in _NORM:
            network[_NORM[key]] = value
        elif match := _VGG.match(key):
            vgg[f"features.{match[1]}.{match[2]}"] = value
        elif match := _VGG_COPY.match(key):
            copies[f"features.{match[1]}.{match[2]}"] = (key, value)
        elif match := _BASICSR_VGG.match(key):
            vgg[f"features.{NAMES.index(match[1])}.{match[2]}"] = value
        elif _BLUR.match(key):
            _check_blur(key, value, target)
        elif not _UNUSED.match(key):
            network[_official_name(key)] = value
    for name, (key, value) in copies.items():
        if name not in vgg or not torch.equal(vgg[name], value):
            raise FacezooError(f"DFDNet generator: '{key}' differs from its VggExtract.model.{name}")
    expected = [f"features.{i}.{p}" for i, n in enumerate(NAMES[:35]) if n.startswith("conv")
                for p in ("weight", "bias")]
    missing = [k for k in expected if k not in vgg]
    if vgg and missing:
        raise FacezooError(f"DFDNet generator: its VGG-19 lacks {listing(missing)}")
    return network, vgg


def import_dfdnet_release(source, dictionary=None, discriminator=None) -> ImportedDFDNet:
    """A DFDNet generator file (official `latest_net_G.pth`, BasicSR `DFDNet_official-*.pth`, a facezoo
    checkpoint) and its dictionaries (`dictionary`: a path `load_dictionary` reads; needed unless the file
    holds them) → the facezoo `model=dfdnet` generator (its dictionaries included) and the release's VGG."""
    if discriminator is not None:
        raise FacezooError("--discriminator: the DFDNet release has no discriminator")
    with parameters_on_meta():  # only the names and shapes are compared
        target = DFDNet(vgg=nn.Identity())
    network, vgg = split_vgg(dfdnet_state(source), target)
    image_size = 512
    if dictionary is not None:  # the file's dictionaries replace any the state holds
        atoms = load_dictionary(dictionary)
        image_size = atoms.image_size
        network = {k: v for k, v in network.items() if not k.startswith("dictionary.")}
        network.update({f"dictionary.{part}_{scale}": a for part, scale, a in atoms.items()})
    elif not any(k.startswith("dictionary.") for k in network):
        raise FacezooError(
            "DFDNet generator: the file holds no dictionaries; give them with --dictionary "
            "(DictionaryCenter512/, DFDNet_dict_512-*.pth or a facezoo-dfdnet-dictionary .safetensors)"
        )
    # the empty dictionary buffers of the target take any K and atom size; their channels are checked here
    state = match_state_dict(network, target, "DFDNet generator")
    for part in PARTS:
        for scale in SCALES:
            name = f"{part}_{scale}"
            state[f"dictionary.{name}"] = ComponentDictionary.checked(name, state[f"dictionary.{name}"])
    k = min(len(state[f"dictionary.{part}_{scale}"]) for part in PARTS for scale in SCALES)
    description = f"DFDNet (K = {k} atoms{', the release VGG-19' if vgg else ''}, {image_size} px faces)"
    overrides = ["model=dfdnet", f"model.size={image_size}"]
    return ImportedDFDNet("dfdnet", description, overrides, {"generator": state}, vgg=vgg)
