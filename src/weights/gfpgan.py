"""Official GFP-GAN weights (TencentARC/GFPGAN, XPixelGroup/BasicSR layouts).

Every file is read with `torch.load(weights_only=True)`. Accepted:
- generators (`gfpgan_state`): a release or BasicSR training file `{'params_ema', 'params'}` (the EMA
  preferred, as GFPGANer does), a bare state_dict, or a facezoo checkpoint (its EMA generator, else its
  generator); DataParallel's `module.` prefix is dropped.
  * GFPGANv1.3.pth / GFPGANv1.4.pth load into `GFPGANv1Clean`: our names are the official ones.
  * GFPGANv1.pth (the paper model) loads into `GFPGANv1`: BasicSR's StyleGAN2 decoder names become the core
    `Generator`'s (`stylegan2.basicsr_decoder_name`), and the FIR kernels, which BasicSR keeps as plain
    attributes rather than state, are our constant `*.kernel` buffers, taken from the target.
- the global discriminator (`net_d`, BasicSR `StyleGAN2Discriminator` under `params`, keys `conv_body.*`):
  our `Discriminator` is the same network; `conv_body.N` is our `convs.N`, the FIR kernels come from the
  target.
- the three facial-component discriminators (`net_d_left_eye`, `net_d_right_eye`, `net_d_mouth`, under
  `params`): our `FacialComponentDiscriminator` has BasicSR's keys.
- StyleGAN2 priors for the decoder (`import_gfpgan_prior`): see there.

`import_gfpgan_release` turns them into a facezoo `model=gfpgan` / `model=gfpgan_v1` network set. Every key
must match in name and shape, else one `FacezooError` lists the mismatches.
"""

import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

from facezoo.models.components.facial_component import GFPGAN_COMPONENTS, FacialComponentDiscriminator
from facezoo.models.components.gfpgan import GFPGANv1, GFPGANv1Clean
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
from facezoo.weights.stylegan2 import (
    basicsr_to_core,
    build_discriminator,
    discriminator_overrides,
    discriminator_state,
    import_stylegan2_discriminator,
    import_stylegan2_prior,
    is_clean,
    levels,
    prior_states,
)

DECODER = "stylegan_decoder."
CLASSES = {"clean": "GFPGANv1Clean", "original": "GFPGANv1"}


def gfpgan_state(source) -> dict:
    """A GFP-GAN generator state from a release / BasicSR file, a bare state_dict or a facezoo checkpoint."""
    state = as_state_dict(source)
    part = lightning_network(state, ("generator_ema.module.", "generator."))
    if part is not None:
        return part
    return strip_prefix(pick(state, ("params_ema", "params")) or state)


def is_gfpgan_generator(state: Mapping) -> bool:
    return "conv_body_first.weight" in state or "conv_body_first.0.weight" in state


def gfpgan_variant(state: Mapping) -> str:
    """`clean` (GFPGANv1Clean, v1.3/1.4) or `original` (GFPGANv1, the paper model) of a generator state."""
    if "conv_body_first.weight" in state:
        return "clean"
    if "conv_body_first.0.weight" in state:
        return "original"
    if any(k.startswith(("conv_body.", "final_linear.1.")) for k in state) or (
        "final_conv.0.weight" in state and not any(k.startswith(DECODER) for k in state)
    ):
        what = "a GFP-GAN discriminator (global or facial component), not a generator"
    elif any(k.startswith(("style_mlp.", "style.", "generator.style.")) for k in state):
        what = "a StyleGAN2 generator, not a GFP-GAN generator (use it as the decoder prior)"
    else:
        what = "not a GFP-GAN generator"
    raise FacezooError(
        f"{what}: a GFP-GAN generator state_dict has conv_body_first.weight (GFPGANv1Clean, v1.3/1.4) or "
        "conv_body_first.0.weight (GFPGANv1, the paper model)"
    )


def _first(state: Mapping, *keys: str) -> torch.Tensor:
    for key in keys:
        if key in state:
            return state[key]
    raise KeyError(keys[0])


def infer_gfpgan_config(state: Mapping) -> dict:
    """(variant, out_size, channel_multiplier, narrow, num_style_feat, num_mlp, different_w, sft_half) of a
    GFP-GAN generator state (official or our decoder names), from its keys and shapes. `input_is_latent` is
    not stored (the releases use True); the channel multiplier shows from 64 px on (C[64] = 256·cm·narrow)."""
    variant = gfpgan_variant(state)
    d = DECODER
    try:
        n_levels = len({k.split(".")[1] for k in state if k.startswith("conv_body_down.")})
        out_size = 2 ** (n_levels + 2)
        style_dim = _first(
            state, d + "style_conv1.modulated_conv.modulation.weight", d + "conv1.conv.modulation.weight"
        ).shape[1]
        mlp = re.compile(r"stylegan_decoder\.(style_mlp|style)\.\d+\.weight")
        num_mlp = sum(bool(mlp.fullmatch(k)) for k in state)
        narrow = _first(state, d + "constant_input.weight", d + "input.input").shape[1] / 512
        channel_multiplier = 2 if variant == "clean" else 1
        if out_size >= 64:
            c64 = _first(state, d + "to_rgbs.3.modulated_conv.weight", d + "to_rgbs.3.conv.weight").shape[2]
            channel_multiplier = round(c64 / (256 * narrow))
        n_latent = 2 * int(math.log2(out_size)) - 2
        different_w = state["final_linear.weight"].shape[0] == n_latent * style_dim
        scale_in, scale_out = (state[f"condition_scale.0.{j}.weight"].shape[0] for j in (0, 2))
        sft_half = scale_out == scale_in  # the conditions modulate half of the decoder channels
    except KeyError as err:
        raise FacezooError(f"not a complete GFP-GAN generator state_dict (no {err.args[0]})") from None
    return dict(
        variant=variant, out_size=out_size, channel_multiplier=channel_multiplier, narrow=narrow,
        num_style_feat=style_dim, num_mlp=num_mlp, different_w=different_w, sft_half=sft_half,
    )


def import_gfpgan(source, target: nn.Module) -> dict[str, torch.Tensor]:
    """→ a state_dict for `target` (GFPGANv1Clean or GFPGANv1) from an official or facezoo generator."""
    state = gfpgan_state(source)
    variant = gfpgan_variant(state)
    if variant != target.variant:
        raise FacezooError(
            f"GFP-GAN generator: the weights are a {CLASSES[variant]} ({variant}) model but the network is a "
            f"{type(target).__name__}: build {CLASSES[variant]} (GFPGANv1.pth is the paper model GFPGANv1, "
            "GFPGANv1.3/1.4.pth are GFPGANv1Clean)"
        )
    if variant == "original":
        state = basicsr_to_core(state, target.state_dict(), DECODER)
    return match_state_dict(state, target, "GFP-GAN generator")


def import_gfpgan_discriminator(source, target: nn.Module) -> dict[str, torch.Tensor]:
    """→ a state_dict for the global `Discriminator` from GFP-GAN's `net_d` (BasicSR names) or ours."""
    return import_stylegan2_discriminator(source, target, "GFP-GAN discriminator")


def import_component_discriminator(source, target: nn.Module, what: str) -> dict[str, torch.Tensor]:
    """→ a state_dict for a `FacialComponentDiscriminator` from a BasicSR `{'params': ...}` or bare file."""
    state = as_state_dict(source)
    return match_state_dict(strip_prefix(pick(state, ("params",)) or state), target, what)


# --- the StyleGAN2 prior of the decoder ---------------------------------------------------------------------


def _prior_parts(source) -> tuple[dict, dict | None]:
    """(StyleGAN2 generator state, discriminator state or None) of any accepted prior file."""
    g, d = prior_states(source)
    if any(k.startswith(DECODER) for k in g):  # a whole GFP-GAN generator: its decoder
        g, d = sub_tree(g, DECODER), None
    return g, d


def import_gfpgan_prior(source, decoder: nn.Module) -> tuple[dict, dict | None]:
    """→ (state_dict for GFP-GAN's `decoder`, the prior's discriminator state or None).

    For GFPGANv1's core `Generator` decoder: a facezoo model=stylegan2 checkpoint, a rosinality / GPEN
    `{'g_ema', 'd'}` checkpoint or bare generator (`stylegan2.import_stylegan2_prior`, which also takes the
    lower levels of a larger generator), BasicSR's StyleGAN2_512_Cmul1_FFHQ_B12G4_scratch_800k.pth
    (`params_ema`, BasicSR names mapped), or a GFPGANv1 file's `stylegan_decoder.*`.
    For GFPGANv1Clean's `CleanGenerator`: a bare clean state, a facezoo model=stylegan2 checkpoint trained
    with the clean generator, or a GFPGANv1Clean file's `stylegan_decoder.*`. The two layouts do not convert
    into each other exactly (blur vs bilinear resampling), so mixing them is refused."""
    g, d = _prior_parts(source)
    clean_source = is_clean(g)
    if isinstance(decoder, CleanGenerator):
        if not clean_source and any(k.endswith("conv1.activate.bias") for k in g):
            raise FacezooError(
                "StyleGAN2 prior: an equalized-LR StyleGAN2 (rosinality / BasicSR layout) cannot initialise "
                "the clean decoder of GFPGANv1Clean; use a clean prior or GFPGANv1 (the paper model)"
            )
        return match_state_dict(g, decoder, "StyleGAN2 prior (clean)"), d
    if clean_source:
        raise FacezooError(
            "StyleGAN2 prior: a clean StyleGAN2 (GFPGANv1.3/1.4 layout) cannot initialise GFPGANv1's "
            "equalized-LR decoder; use GFPGANv1Clean"
        )
    g = basicsr_to_core(g, decoder.state_dict())
    state, _ = import_stylegan2_prior(g, decoder)
    return state, (d if levels(g) == decoder.log_size - 2 else None)


# --- a release as a facezoo model=gfpgan / gfpgan_v1 -------------------------------------------------------


def _component_order(files: Sequence) -> None:
    """Component files come as left eye, right eye, mouth; a file named after another component is refused."""
    for want, path in zip(GFPGAN_COMPONENTS, files, strict=True):
        named = [c for c in GFPGAN_COMPONENTS if c in Path(str(path)).name]
        if named and named != [want]:
            raise FacezooError(
                f"--components {path}: named after the {named[0]} but given as the {want} discriminator "
                f"(the order is {', '.join(GFPGAN_COMPONENTS)})"
            )


def import_gfpgan_release(source, discriminator=None, components: Sequence = ()) -> Imported:
    """A GFP-GAN generator file (GFPGANv1.pth, GFPGANv1.3/v1.4.pth, a BasicSR `net_g`), optionally its global
    discriminator (`net_d`) and the three facial-component discriminators (left eye, right eye, mouth)
    → a facezoo `model=gfpgan` (clean) or `model=gfpgan_v1` (paper model) network set."""
    state = gfpgan_state(source)
    arch = infer_gfpgan_config(state)
    net_args = {k: v for k, v in arch.items() if k != "variant"}
    clean = arch["variant"] == "clean"
    with torch.device("meta") if clean else parameters_on_meta():  # the paper model takes our FIR kernels
        target = (GFPGANv1Clean if clean else GFPGANv1)(**net_args)
    networks = {"generator": import_gfpgan(state, target)}
    overrides = [
        "model=gfpgan" if arch["variant"] == "clean" else "model=gfpgan_v1",
        f"model.size={arch['out_size']}",
        *(f"model.generator.{k}={v}" for k, v in net_args.items() if k != "out_size"),
        "model.prior.from_scratch=true",  # the file holds the decoder
    ]
    if discriminator is not None:
        d = discriminator_state(discriminator)
        overrides += discriminator_overrides(d, arch["out_size"])
        networks["discriminator"] = import_gfpgan_discriminator(d, build_discriminator(d))
    if components:
        if len(components) != len(GFPGAN_COMPONENTS):
            raise FacezooError(
                f"--components: expected {len(GFPGAN_COMPONENTS)} files ({', '.join(GFPGAN_COMPONENTS)}), "
                f"got {len(components)}"
            )
        _component_order(components)
        with torch.device("meta"):  # only the shapes are compared
            target = FacialComponentDiscriminator()
        for name, file in zip(GFPGAN_COMPONENTS, components, strict=True):
            what = f"GFP-GAN {name.replace('_', ' ')} discriminator"
            networks[f"component_discriminators.{name}"] = import_component_discriminator(file, target, what)
    return Imported("gfpgan", f"{CLASSES[arch['variant']]} {arch}", overrides, networks)
