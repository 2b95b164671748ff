"""StyleGAN2 weights in the layouts the GAN-prior methods ship: rosinality/stylegan2-pytorch (and GPEN's
training checkpoints), BasicSR (GFP-GAN's prior and discriminators), and GFP-GAN's clean generator.

Generators (`prior_states`, `import_stylegan2_prior`): a facezoo `model=stylegan2` checkpoint (its EMA
generator), a rosinality / GPEN training checkpoint `{'g_ema', 'd', ...}`, a BasicSR file `{'params_ema',
'params'}` or a bare generator state_dict; a GPEN `FullGenerator` state (keys `generator.*`) gives its
decoder. Two conversions of ours (not GPEN's):
* an add-noise StyleGAN2 (e.g. stylegan2-ffhq-config-f.pt) into GPEN's concat decoder: the extra input
  channels that the concatenated encoder features feed get zero weights (and the equalized-LR scale is
  compensated), so the decoder generates exactly what the source generates with its noise switched off;
* a larger generator into a smaller decoder (1024 → 512): the levels above the decoder's size are dropped and
  the decoder outputs the source's intermediate skip image at its size.

BasicSR names (`basicsr_decoder_name`, `basicsr_discriminator_name`): BasicSR's `StyleGAN2Generator` and
`StyleGAN2Discriminator` are the rosinality networks under other names, without the FIR kernels (BasicSR keeps
them as plain attributes, ours are constant buffers, taken from the target).

`import_stylegan2_release` turns a StyleGAN2 file into a facezoo `model=stylegan2` network set (for
`facezoo-import --method stylegan2`, `load_model`, and as a prior of GPEN / GFP-GAN).
"""

import math
import re
from collections.abc import Mapping

import torch
from torch import nn

from facezoo.models.components.stylegan2 import Discriminator, Generator
from facezoo.models.components.stylegan2_clean import CleanGenerator
from facezoo.utils.errors import FacezooError
from facezoo.weights.imported import Imported
from facezoo.weights.networks import parameters_on_meta
from facezoo.weights.state_dict import (
    as_state_dict,
    lightning_network,
    match_state_dict,
    pick,
    strip_prefix,
    sub_tree,
)

# BasicSR StyleGAN2Generator (basicsr/archs/stylegan2_arch.py) → rosinality / core `Generator` names, applied
# in order. Core names pass unchanged, so states already in our layout (facezoo checkpoints) are accepted too.
_BASICSR_TO_CORE = (
    (r"^style_mlp\.", "style."),
    (r"^constant_input\.weight$", "input.input"),
    (r"^style_conv1\.", "conv1."),
    (r"^style_convs\.", "convs."),
    (r"\.modulated_conv\.", ".conv."),
    (r"^(conv1|convs\.\d+)\.weight$", r"\1.noise.weight"),  # StyleConv.weight: the noise strength
    (r"^noises\.noise(\d+)$", r"noises.noise_\1"),
)


def basicsr_decoder_name(key: str) -> str:
    """A BasicSR StyleGAN2Generator state key → the core Generator's (`style_mlp.1.weight` → `style.1.weight`,
    `style_convs.3.modulated_conv.weight` → `convs.3.conv.weight`, `style_conv1.weight` →
    `conv1.noise.weight`, `noises.noise4` → `noises.noise_4` …)."""
    for pattern, replacement in _BASICSR_TO_CORE:
        key = re.sub(pattern, replacement, key)
    return key


def basicsr_discriminator_name(key: str) -> str:
    """A BasicSR StyleGAN2Discriminator state key → ours (rosinality's): `conv_body.N.*` → `convs.N.*`; the
    ConvLayer / ResBlock / final layers have the same indices in both."""
    return re.sub(r"^conv_body\.", "convs.", key)


def with_kernels(state: Mapping, target: Mapping) -> dict:
    """`state` plus the target's FIR kernel buffers (`*.kernel`) it lacks: BasicSR does not store them."""
    out = dict(state)
    for key, value in target.items():
        if key.endswith(".kernel") and key not in out:
            out[key] = value.clone()
    return out


def basicsr_to_core(state: Mapping, target: Mapping, prefix: str = "") -> dict:
    """Rename the BasicSR decoder keys under `prefix`; add the target's FIR kernels the state lacks."""
    renamed = {
        prefix + basicsr_decoder_name(k[len(prefix) :]) if k.startswith(prefix) else k: v
        for k, v in state.items()
    }
    return with_kernels(renamed, target)


# --- generators ---------------------------------------------------------------------------------------------


def prior_states(source) -> tuple[dict, dict | None]:
    """(generator state, discriminator state or None) of a StyleGAN2 file (see the module docstring)."""
    state = as_state_dict(source)
    inner = state.get("state_dict")
    basicsr = pick(state, ("params_ema", "params"))
    if isinstance(inner, Mapping):  # facezoo: model=stylegan2 (generator_ema.module.*) or model=gpen
        g = sub_tree(inner, "generator_ema.module.") or sub_tree(inner, "generator.")
        d = sub_tree(inner, "discriminator.") or None
    elif basicsr is not None:  # BasicSR: a generator file, no discriminator
        g, d = strip_prefix(basicsr), None
    elif "g_ema" in state:  # rosinality / GPEN training checkpoint
        g = strip_prefix(state["g_ema"])
        d = strip_prefix(state["d"]) if isinstance(state.get("d"), Mapping) else None
    else:
        g, d = strip_prefix(state), None
    if any(k.startswith("ecd0.") for k in g):  # a whole FullGenerator: its decoder
        g = sub_tree(g, "generator.")
    if not g:
        raise FacezooError("no StyleGAN2 generator weights in the prior checkpoint")
    return g, d


def levels(state: Mapping) -> int:
    """Number of upsampling levels (8 … size) of a generator state: its `to_rgbs.N` count."""
    return len({k.split(".")[1] for k in state if k.startswith("to_rgbs.")})


def _truncate(state: dict, kept: int) -> dict:
    """Keep the layers of the first `kept` upsampling levels (and the noise buffers they use)."""

    def keep(key: str) -> bool:
        m = re.match(r"(convs|to_rgbs)\.(\d+)\.", key)
        if m:
            return int(m[2]) < (2 * kept if m[1] == "convs" else kept)
        m = re.match(r"noises\.noise_(\d+)$", key)
        return int(m[1]) < 2 * kept + 1 if m else True

    return {k: v for k, v in state.items() if keep(k)}


def _pad(t: torch.Tensor, dim: int, size: int, value: float) -> torch.Tensor:
    shape = list(t.shape)
    shape[dim] = size - t.shape[dim]
    return torch.cat([t, t.new_full(shape, value)], dim)


def _embed_add_noise(state: dict, expected: Mapping) -> dict:
    """An add-noise StyleGAN2 state → a concat-noise decoder: zero weights for the concatenated channels."""
    out = {}
    for key, value in state.items():
        if key.startswith("noises.") or key not in expected:
            out[key] = value  # stored noise maps are dropped below (a concat decoder has none)
            continue
        want = tuple(expected[key].shape)
        if tuple(value.shape) == want:
            out[key] = torch.zeros_like(value) if key.endswith("noise.weight") else value
        elif key.endswith("conv.weight") and value.ndim == 5:  # (1, out, in, k, k): new input channels
            value = value * math.sqrt(want[2] / value.shape[2])  # same effective weight after EqualLR scaling
            out[key] = _pad(value, 2, want[2], 0.0)
        elif key.endswith("modulation.weight"):
            out[key] = _pad(value, 0, want[0], 0.0)
        elif key.endswith("modulation.bias"):
            out[key] = _pad(value, 0, want[0], 1.0)
        elif key.endswith("activate.bias"):
            out[key] = _pad(value, 0, want[0], 0.0)
        else:
            out[key] = value  # left for match_state_dict to report
    return {k: v for k, v in out.items() if not k.startswith("noises.")}


def import_stylegan2_prior(source, decoder: nn.Module) -> tuple[dict, dict | None]:
    """→ (state_dict for `decoder` (a StyleGAN2 `Generator`, GPEN's concat one included), the prior's
    discriminator state or None). See the module docstring for the accepted layouts and conversions."""
    g, d = prior_states(source)
    have, wanted = levels(g), decoder.log_size - 2
    if have < wanted:
        raise FacezooError(
            f"StyleGAN2 prior: a {2 ** (have + 2)} px generator cannot initialise a {decoder.size} px decoder"
        )
    if have > wanted:
        g = _truncate(g, wanted)
        d = None  # a discriminator of another resolution
    expected = decoder.state_dict()
    bias = g.get("conv1.activate.bias")
    adds_noise = bias is not None and bias.shape[0] == g["conv1.conv.weight"].shape[1]
    if getattr(decoder, "isconcat", False) and adds_noise:
        g = _embed_add_noise(g, expected)
    return match_state_dict(g, expected, "StyleGAN2 prior"), d


def is_clean(state: Mapping) -> bool:
    """A GFP-GAN clean StyleGAN2 (v1.3/v1.4 decoder layout, `style_conv1.bias`)."""
    return "style_conv1.bias" in state


def infer_stylegan2_config(state: Mapping) -> dict:
    """(size, style_dim, n_mlp, channel_multiplier, narrow, isconcat, clean) of a StyleGAN2 generator state in
    the core, BasicSR or clean layout, from its keys and shapes (C[64] = 256·cm·narrow shows the
    multiplier)."""
    clean = is_clean(state)
    core = state if clean else {basicsr_decoder_name(k): v for k, v in state.items()}
    try:
        size = 2 ** (levels(core) + 2)
        if clean:
            c4 = core["constant_input.weight"].shape[1]
            style_dim = core["style_conv1.modulated_conv.modulation.weight"].shape[1]
            mlp = re.compile(r"style_mlp\.\d+\.weight")
            isconcat, rgb64 = False, "to_rgbs.3.modulated_conv.weight"
        else:
            c4 = core["input.input"].shape[1]
            style_dim = core["conv1.conv.modulation.weight"].shape[1]
            mlp = re.compile(r"style\.\d+\.weight")
            isconcat, rgb64 = core["conv1.activate.bias"].shape[0] == 2 * c4, "to_rgbs.3.conv.weight"
        n_mlp = sum(bool(mlp.fullmatch(k)) for k in core)
        narrow, channel_multiplier = c4 / 512, 2
        if size >= 64:
            c64 = core[rgb64].shape[2] // (2 if isconcat else 1)  # to_rgbs 0..3: 8, 16, 32, 64 px
            channel_multiplier = round(c64 / (256 * narrow))
    except KeyError as err:
        raise FacezooError(f"not a complete StyleGAN2 generator state_dict (no {err.args[0]})") from None
    return dict(size=size, style_dim=style_dim, n_mlp=n_mlp, channel_multiplier=channel_multiplier,
                narrow=narrow, isconcat=isconcat, clean=clean)


# --- discriminators -----------------------------------------------------------------------------------------


def discriminator_state(source) -> dict:
    """A StyleGAN2 discriminator state from a bare state_dict (GPEN-BFR-512-D.pth), a rosinality / GPEN
    training checkpoint's `d`, a BasicSR file's `params` (GFP-GAN's `net_d`) or a facezoo checkpoint; BasicSR
    names become ours."""
    state = as_state_dict(source)
    part = lightning_network(state, ("discriminator.",))
    if part is None:
        part = strip_prefix(pick(state, ("params", "d")) or state)
    return {basicsr_discriminator_name(k): v for k, v in part.items()}


def infer_discriminator_config(state: Mapping) -> dict:
    """(size, channel_multiplier, narrow) of a StyleGAN2 discriminator state (ours or BasicSR's)."""
    state = {basicsr_discriminator_name(k): v for k, v in state.items()}
    try:
        blocks = len({k.split(".")[1] for k in state if re.match(r"convs\.\d+\.conv1\.", k)})
        size = 2 ** (blocks + 2)
        narrow = state["final_linear.0.weight"].shape[0] / 512
        c_size = state["convs.0.0.weight"].shape[0]
    except KeyError as err:
        raise FacezooError(f"not a StyleGAN2 discriminator state_dict (no {err.args[0]})") from None
    base = {64: 256, 128: 128, 256: 64, 512: 32, 1024: 16}.get(size)  # C[size] = base·cm·narrow
    channel_multiplier = round(c_size / (base * narrow)) if base else 2
    return dict(size=size, channel_multiplier=channel_multiplier, narrow=narrow)


def import_stylegan2_discriminator(source, target: nn.Module, what: str = "StyleGAN2 discriminator") -> dict:
    """→ a state_dict for `target` (our `Discriminator`) from any layout `discriminator_state` reads."""
    expected = target.state_dict()
    return match_state_dict(with_kernels(discriminator_state(source), expected), expected, what)


def discriminator_overrides(d_state: Mapping, size: int, node: str = "model.discriminator") -> list[str]:
    """Config overrides that build the discriminator `d_state` holds (it must be `size` px)."""
    arch = infer_discriminator_config(d_state)
    if arch["size"] != size:
        raise FacezooError(f"the discriminator is {arch['size']} px but the generator {size} px")
    return [f"{node}.channel_multiplier={arch['channel_multiplier']}", f"{node}.narrow={arch['narrow']}"]


def build_discriminator(d_state: Mapping) -> Discriminator:
    """Our Discriminator of the shapes in `d_state`, its parameters on the meta device (for matching)."""
    with parameters_on_meta():
        return Discriminator(**infer_discriminator_config(d_state))


# --- a StyleGAN2 file as a facezoo model=stylegan2 ----------------------------------------------------------


def import_stylegan2_release(source, discriminator=None) -> Imported:
    """A StyleGAN2 generator file (and its discriminator: from the same file when it holds one, e.g. a
    rosinality checkpoint's `d`, or `discriminator`) → a facezoo `model=stylegan2` network set."""
    g, d = prior_states(source)
    arch = infer_stylegan2_config(g)
    net = {k: arch[k] for k in ("size", "style_dim", "n_mlp", "channel_multiplier", "narrow")}
    with parameters_on_meta():
        if arch["clean"]:
            target = CleanGenerator(**net)
        else:
            target = Generator(**net, isconcat=arch["isconcat"])
    expected = target.state_dict()
    if not arch["clean"]:
        g = basicsr_to_core(g, expected)
    networks = {"generator": match_state_dict(g, expected, "StyleGAN2 generator")}
    overrides = ["model=stylegan2", f"model.size={arch['size']}",
                 *(f"model.generator.{k}={v}" for k, v in net.items() if k != "size")]
    if arch["clean"]:
        overrides += ["model.generator._target_=facezoo.models.components.stylegan2_clean.CleanGenerator",
                      "~model.generator.isconcat"]
    else:
        overrides.append(f"model.generator.isconcat={arch['isconcat']}")
    if discriminator is not None:
        d = discriminator_state(discriminator)
    if d is not None:
        overrides += discriminator_overrides(d, arch["size"])
        networks["discriminator"] = import_stylegan2_discriminator(d, build_discriminator(d))
    kind = "clean StyleGAN2" if arch["clean"] else "StyleGAN2"
    return Imported("stylegan2", f"{kind} {arch}", overrides, networks)
