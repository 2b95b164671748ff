"""Import official GFP-GAN weights (TencentARC/GFPGAN, XPixelGroup/BasicSR layouts).

Every file is read with `torch.load(weights_only=True)`. Accepted:
- GFP-GAN generators (`gfpgan_state`): a release or BasicSR training file `{'params_ema', 'params'}` (the EMA
  preferred, as GFPGANer does), a bare state_dict, or a facezoo Lightning checkpoint (its EMA generator, else
  its generator); DataParallel's `module.` prefix is dropped.
  * GFPGANv1.3.pth / GFPGANv1.4.pth load into `GFPGANv1Clean`: our names are the official ones.
  * GFPGANv1.pth (the paper model) loads into `GFPGANv1`: BasicSR's StyleGAN2 decoder names become the core
    `Generator`'s (`basicsr_decoder_name`), and the FIR kernels, which BasicSR keeps as plain attributes
    rather than state, are our constant `*.kernel` buffers, taken from the target.
- StyleGAN2 priors for the decoder (`import_gfpgan_prior`): see there.

Every key must match in name and shape; otherwise `FacezooError` lists the missing, unexpected and mis-shaped
keys in one line (`gpen_import.match_state_dict`).

CLI: `python -m facezoo.models.gfpgan_import GFPGANv1.4.pth --out gfpgan.ckpt` writes a checkpoint that
`python -m facezoo.eval ckpt_path=gfpgan.ckpt` evaluates (architecture inferred from the state_dict's shapes).
"""

import argparse
import math
import re
import sys
from collections.abc import Mapping

import torch
from torch import nn

from facezoo.models.components.stylegan2_clean import CleanGenerator
from facezoo.models.gpen_import import (
    _levels,
    _lightning_part,
    _read,
    _strip_module,
    _sub,
    import_stylegan2_prior,
    match_state_dict,
    prior_states,
)
from facezoo.models.import_cli import write_imported_checkpoint
from facezoo.utils.errors import FacezooError

DECODER = "stylegan_decoder."
CLASSES = {"clean": "GFPGANv1Clean", "original": "GFPGANv1"}

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


def _basicsr_to_core(state: Mapping, target: Mapping, prefix: str = "") -> dict:
    """Rename the BasicSR decoder keys under `prefix`; add the target's FIR kernels the state lacks."""
    out = {
        prefix + basicsr_decoder_name(k[len(prefix) :]) if k.startswith(prefix) else k: v
        for k, v in state.items()
    }
    for key, value in target.items():
        if key.endswith(".kernel") and key not in out:
            out[key] = value.clone()
    return out


def gfpgan_state(source) -> dict:
    """A GFP-GAN generator state from a release / BasicSR file, a bare state_dict or a facezoo checkpoint."""
    state = _read(source)
    part = _lightning_part(state, ("generator_ema.module.", "generator."))
    if part is not None:
        return part
    for key in ("params_ema", "params"):
        if isinstance(state.get(key), Mapping):
            return _strip_module(state[key])
    return _strip_module(state)


def _variant(state: Mapping) -> str:
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
    variant = _variant(state)
    d = DECODER
    try:
        levels = len({k.split(".")[1] for k in state if k.startswith("conv_body_down.")})
        out_size = 2 ** (levels + 2)
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
    variant = _variant(state)
    if variant != target.variant:
        raise FacezooError(
            f"GFP-GAN generator: the weights are a {CLASSES[variant]} ({variant}) model but the network is a "
            f"{type(target).__name__}: build {CLASSES[variant]} (GFPGANv1.pth is the paper model GFPGANv1, "
            "GFPGANv1.3/1.4.pth are GFPGANv1Clean)"
        )
    if variant == "original":
        state = _basicsr_to_core(state, target.state_dict(), DECODER)
    return match_state_dict(state, target, "GFP-GAN generator")


def _prior_parts(source) -> tuple[dict, dict | None]:
    """(StyleGAN2 generator state, discriminator state or None) of any accepted prior file."""
    state = _read(source)
    for key in ("params_ema", "params"):  # BasicSR: a StyleGAN2 or a GFP-GAN file, no discriminator
        if isinstance(state.get(key), Mapping):
            g, d = _strip_module(state[key]), None
            break
    else:
        g, d = prior_states(state)
    if any(k.startswith(DECODER) for k in g):  # a whole GFP-GAN generator: its decoder
        g, d = _sub(g, DECODER), None
    return g, d


def import_gfpgan_prior(source, decoder: nn.Module) -> tuple[dict, dict | None]:
    """→ (state_dict for GFP-GAN's `decoder`, the prior's discriminator state or None).

    For GFPGANv1's core `Generator` decoder: a facezoo model=stylegan2 checkpoint, a rosinality / GPEN
    `{'g_ema', 'd'}` checkpoint or bare generator (`gpen_import.import_stylegan2_prior`, which also takes the
    lower levels of a larger generator), BasicSR's StyleGAN2_512_Cmul1_FFHQ_B12G4_scratch_800k.pth
    (`params_ema`, BasicSR names mapped), or a GFPGANv1 file's `stylegan_decoder.*`.
    For GFPGANv1Clean's `CleanGenerator`: a bare clean state, a facezoo model=stylegan2 checkpoint trained
    with the clean generator, or a GFPGANv1Clean file's `stylegan_decoder.*`. The two layouts do not convert
    into each other exactly (blur vs bilinear resampling), so mixing them is refused."""
    g, d = _prior_parts(source)
    clean_source = "style_conv1.bias" in g
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
    g = _basicsr_to_core(g, decoder.state_dict())
    state, _ = import_stylegan2_prior(g, decoder)
    return state, (d if _levels(g) == decoder.log_size - 2 else None)


# --- CLI: an official GFP-GAN release → a facezoo checkpoint ------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m facezoo.models.gfpgan_import",
        description="Convert an official GFP-GAN generator (GFPGANv1.3/v1.4 clean, or GFPGANv1 paper) into a "
        "facezoo checkpoint that facezoo.eval, facezoo.restore and the GFP-GAN module load.",
    )
    parser.add_argument("generator", help="GFPGANv1.4.pth, GFPGANv1.3.pth, GFPGANv1.pth or a net_g_*.pth")
    parser.add_argument("--out", required=True, help="the .ckpt file to write")
    parser.add_argument("--datamodule", default="ffhq", help="datamodule stored in the checkpoint's config")
    args = parser.parse_args(argv)
    try:
        state = gfpgan_state(args.generator)
        arch = infer_gfpgan_config(state)
    except FacezooError as err:
        print(f"facezoo: error: {err}", file=sys.stderr)
        return 2
    overrides = [
        "model=gfpgan" if arch["variant"] == "clean" else "model=gfpgan_v1",
        f"datamodule={args.datamodule}",
        f"model.size={arch['out_size']}",
        *(f"model.generator.{k}={arch[k]}" for k in (
            "channel_multiplier", "narrow", "num_style_feat", "num_mlp", "different_w", "sft_half")),
        "model.prior.from_scratch=true",  # the imported file holds the decoder
    ]

    def load(model) -> None:
        weights = import_gfpgan(state, model.generator)
        model.generator.load_state_dict(weights)
        if model.generator_ema is not None:
            model.generator_ema.module.load_state_dict(weights)

    code = write_imported_checkpoint(overrides, load, args.out)
    if code == 0:
        print(f"wrote {args.out}: {CLASSES[arch['variant']]} {arch} "
              f"(evaluate with: python -m facezoo.eval ckpt_path={args.out})")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
