"""Import official GPEN and StyleGAN2 weights (yangxy/GPEN, rosinality/stylegan2-pytorch layouts).

What is accepted (each file read with `torch.load(weights_only=True)`):
- GPEN generators: the released GPEN-BFR-512.pth / GPEN-BFR-256.pth (bare `FullGenerator` state_dicts), a
  GPEN training checkpoint `{'g', 'd', 'g_ema', ...}` (its `g_ema`), or a facezoo GPEN Lightning checkpoint
  (its EMA generator). Our `GPENGenerator` uses the official names, so every key maps 1:1.
- GPEN discriminators: GPEN-BFR-512-D.pth (bare), a training checkpoint's `d`, or a facezoo checkpoint.
- StyleGAN2 priors for GPEN's decoder: a facezoo `model=stylegan2` checkpoint (its EMA generator), a
  rosinality / GPEN training checkpoint `{'g_ema', 'd', ...}`, or a bare generator state_dict; a
  `FullGenerator` state (keys `generator.*`) gives its decoder. Two conversions of ours (not GPEN's):
  * an add-noise StyleGAN2 (e.g. stylegan2-ffhq-config-f.pt) into GPEN's concat decoder: the extra input
    channels that the concatenated encoder features feed get zero weights (and the equalized-LR scale is
    compensated), so the decoder generates exactly what the source generates with its noise switched off;
  * a larger generator into a smaller decoder (1024 → 512): the levels above the decoder's size are dropped
    and the decoder outputs the source's intermediate skip image at its size.

Every key must match in name and shape; otherwise `FacezooError` lists the missing, unexpected and
mis-shaped keys in one line.

CLI: `python -m facezoo.models.gpen_import GPEN-BFR-512.pth [--discriminator GPEN-BFR-512-D.pth]
--out gpen.ckpt` writes a checkpoint that `python -m facezoo.eval ckpt_path=gpen.ckpt` evaluates (model config
inferred from the state_dict's shapes).
"""

import argparse
import math
import re
import sys
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from facezoo.models.import_cli import write_imported_checkpoint
from facezoo.utils.errors import FacezooError
from facezoo.utils.pretrained import load_state_dict

SHOW = 8  # keys listed per kind of mismatch


def _listing(keys, extra: str = "") -> str:
    keys = list(keys)
    shown = ", ".join(keys[:SHOW]) + (f", ... ({len(keys)} in all)" if len(keys) > SHOW else "")
    return f"{len(keys)} {extra}({shown})"


def match_state_dict(source: Mapping, target: nn.Module | Mapping, what: str) -> dict[str, torch.Tensor]:
    """`source` checked against the target's state_dict: the same keys and shapes, else one FacezooError
    naming the missing, unexpected and mis-shaped keys. → the source as a plain dict of tensors."""
    expected = target.state_dict() if isinstance(target, nn.Module) else target
    missing = [k for k in expected if k not in source]
    unexpected = [k for k in source if k not in expected]
    shapes = [
        f"{k} {tuple(source[k].shape)} vs {tuple(expected[k].shape)}"
        for k in expected
        if k in source and tuple(source[k].shape) != tuple(expected[k].shape)
    ]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append("missing " + _listing(missing))
        if unexpected:
            parts.append("unexpected " + _listing(unexpected))
        if shapes:
            parts.append("wrong shapes (got vs expected) " + _listing(shapes))
        raise FacezooError(f"{what}: the weights do not match the network: " + "; ".join(parts))
    return {k: source[k] for k in expected}


def _strip_module(state: Mapping) -> dict:
    """Drop DataParallel/DDP's `module.` prefix."""
    if state and all(k.startswith("module.") for k in state):
        return {k[len("module.") :]: v for k, v in state.items()}
    return dict(state)


def _sub(state: Mapping, prefix: str) -> dict:
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def _read(source) -> dict:
    return load_state_dict(source) if isinstance(source, str | Path) else dict(source)


def _lightning_part(state: Mapping, prefixes: tuple[str, ...]) -> dict | None:
    """The first of `prefixes` found in a Lightning checkpoint's `state_dict`, stripped."""
    inner = state.get("state_dict")
    if not isinstance(inner, Mapping):
        return None
    for prefix in prefixes:
        part = _sub(inner, prefix)
        if part:
            return part
    raise FacezooError(f"a Lightning checkpoint without any of {', '.join(prefixes)}* weights")


def generator_state(source) -> dict:
    """A GPEN `FullGenerator` state from a release file, a training checkpoint or a facezoo checkpoint."""
    state = _read(source)
    part = _lightning_part(state, ("generator_ema.module.", "generator."))
    if part is not None:
        return part
    if "g_ema" in state:
        return _strip_module(state["g_ema"])
    return _strip_module(state)


def discriminator_state(source) -> dict:
    state = _read(source)
    part = _lightning_part(state, ("discriminator.",))
    if part is not None:
        return part
    if "d" in state:
        return _strip_module(state["d"])
    return _strip_module(state)


def import_gpen_generator(source, target: nn.Module) -> dict[str, torch.Tensor]:
    """→ a state_dict for `target` (a GPENGenerator) from an official/facezoo GPEN generator."""
    return match_state_dict(generator_state(source), target, "GPEN generator")


def import_gpen_discriminator(source, target: nn.Module) -> dict[str, torch.Tensor]:
    return match_state_dict(discriminator_state(source), target, "GPEN discriminator")


# --- StyleGAN2 priors ------------------------------------------------------------------------------------


def prior_states(source) -> tuple[dict, dict | None]:
    """(decoder generator state, discriminator state or None) of a prior checkpoint."""
    state = _read(source)
    inner = state.get("state_dict")
    if isinstance(inner, Mapping):  # facezoo: model=stylegan2 (generator_ema.module.*) or model=gpen
        g = _sub(inner, "generator_ema.module.") or _sub(inner, "generator.")
        d = _sub(inner, "discriminator.") or None
    elif "g_ema" in state:  # rosinality / GPEN training checkpoint
        g = _strip_module(state["g_ema"])
        d = _strip_module(state["d"]) if isinstance(state.get("d"), Mapping) else None
    else:
        g, d = _strip_module(state), None
    if any(k.startswith("ecd0.") for k in g):  # a whole FullGenerator: its decoder
        g = _sub(g, "generator.")
    if not g:
        raise FacezooError("no StyleGAN2 generator weights in the prior checkpoint")
    return g, d


def _levels(state: Mapping) -> int:
    """Number of upsampling levels (8 … size) of a generator state: its `to_rgbs.N` count."""
    return len({k.split(".")[1] for k in state if k.startswith("to_rgbs.")})


def _truncate(state: dict, levels: int) -> dict:
    """Keep the layers of the first `levels` upsampling levels (and the noise buffers they use)."""

    def keep(key: str) -> bool:
        m = re.match(r"(convs|to_rgbs)\.(\d+)\.", key)
        if m:
            return int(m[2]) < (2 * levels if m[1] == "convs" else levels)
        m = re.match(r"noises\.noise_(\d+)$", key)
        return int(m[1]) < 2 * levels + 1 if m else True

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
    levels, wanted = _levels(g), decoder.log_size - 2
    if levels < wanted:
        raise FacezooError(
            f"StyleGAN2 prior: a {2 ** (levels + 2)} px generator cannot initialise a {decoder.size} px "
            "decoder"
        )
    if levels > wanted:
        g = _truncate(g, wanted)
        d = None  # a discriminator of another resolution
    expected = decoder.state_dict()
    bias = g.get("conv1.activate.bias")
    adds_noise = bias is not None and bias.shape[0] == g["conv1.conv.weight"].shape[1]
    if getattr(decoder, "isconcat", False) and adds_noise:
        g = _embed_add_noise(g, expected)
    return match_state_dict(g, expected, "StyleGAN2 prior"), d


# --- CLI: an official GPEN release → a facezoo checkpoint --------------------------------------------------


def infer_gpen_config(state: Mapping) -> dict:
    """(size, style_dim, n_mlp, channel_multiplier, narrow, isconcat) of a FullGenerator state, from its
    shapes (the first width that depends on the channel multiplier is C[64] = 256·cm·narrow)."""
    try:
        n_ecd = len({k.split(".")[0] for k in state if re.match(r"ecd\d+\.", k)})
        size = 2 ** (n_ecd + 1)
        style_dim = state["final_linear.0.weight"].shape[0]
        n_mlp = len({k.split(".")[2] for k in state if re.match(r"generator\.style\.\d+\.weight", k)})
        c4 = state["generator.input.input"].shape[1]
        isconcat = state["generator.conv1.activate.bias"].shape[0] == 2 * c4
        narrow, channel_multiplier = c4 / 512, 2
        if size >= 64:
            c64 = state["generator.to_rgbs.3.conv.weight"].shape[2] // (2 if isconcat else 1)  # 8,16,32,64
            channel_multiplier = round(c64 / (256 * narrow))
    except KeyError as err:
        raise FacezooError(f"not a GPEN FullGenerator state_dict (no {err.args[0]})") from None
    return dict(
        size=size, style_dim=style_dim, n_mlp=n_mlp, channel_multiplier=channel_multiplier, narrow=narrow,
        isconcat=isconcat,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m facezoo.models.gpen_import",
        description="Convert an official GPEN generator (and discriminator) into a facezoo checkpoint that "
        "facezoo.eval and the GPEN module load.",
    )
    parser.add_argument("generator", help="GPEN-BFR-512.pth, GPEN-BFR-256.pth or a GPEN training checkpoint")
    parser.add_argument("--discriminator", help="GPEN-BFR-512-D.pth (optional)")
    parser.add_argument("--out", required=True, help="the .ckpt file to write")
    parser.add_argument("--datamodule", default="ffhq", help="datamodule stored in the checkpoint's config")
    args = parser.parse_args(argv)

    try:
        g_state = generator_state(args.generator)
        arch = infer_gpen_config(g_state)
    except FacezooError as err:
        print(f"facezoo: error: {err}", file=sys.stderr)
        return 2
    overrides = [
        "model=gpen",
        f"datamodule={args.datamodule}",
        f"model.size={arch['size']}",
        f"model.generator.style_dim={arch['style_dim']}",
        f"model.generator.n_mlp={arch['n_mlp']}",
        f"model.generator.channel_multiplier={arch['channel_multiplier']}",
        f"model.generator.narrow={arch['narrow']}",
        f"model.generator.isconcat={arch['isconcat']}",
        f"model.discriminator.channel_multiplier={arch['channel_multiplier']}",
        f"model.discriminator.narrow={arch['narrow']}",
        f"model.prior.checkpoint={Path(args.generator).resolve()}",
    ]

    def load(model) -> None:
        weights = match_state_dict(g_state, model.generator, "GPEN generator")
        model.generator.load_state_dict(weights)
        if model.generator_ema is not None:
            model.generator_ema.module.load_state_dict(weights)
        if args.discriminator:
            d_weights = import_gpen_discriminator(args.discriminator, model.discriminator)
            model.discriminator.load_state_dict(d_weights)

    code = write_imported_checkpoint(overrides, load, args.out)
    if code == 0:
        print(f"wrote {args.out}: GPEN {arch} (evaluate with: python -m facezoo.eval ckpt_path={args.out})")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
