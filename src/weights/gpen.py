"""Official GPEN weights (yangxy/GPEN).

Every file is read with `torch.load(weights_only=True)`. Accepted:
- generators: the released GPEN-BFR-512.pth / GPEN-BFR-256.pth (bare `FullGenerator` state_dicts), a GPEN
  training checkpoint `{'g', 'd', 'g_ema', ...}` (its `g_ema`), or a facezoo GPEN checkpoint (its EMA
  generator); DataParallel's `module.` prefix is dropped. Our `GPENGenerator` uses the official names, so
  every key maps 1:1; `infer_gpen_config` reads the architecture from the shapes.
- discriminators: GPEN-BFR-512-D.pth (bare), a training checkpoint's `d`, or a facezoo checkpoint
  (`stylegan2.discriminator_state`).
- StyleGAN2 priors for the decoder: `stylegan2.import_stylegan2_prior`.

`import_gpen_release` turns them into a facezoo `model=gpen` network set (for `facezoo-import` and
`load_model`). Every key must match in name and shape, else one `FacezooError` lists the mismatches.
"""

import re
from collections.abc import Mapping

import torch
from torch import nn

from facezoo.models.components.gpen import GPENGenerator
from facezoo.utils.errors import FacezooError
from facezoo.weights.imported import Imported
from facezoo.weights.state_dict import as_state_dict, lightning_network, match_state_dict, pick, strip_prefix
from facezoo.weights.stylegan2 import (
    build_discriminator,
    discriminator_overrides,
    discriminator_state,
    import_stylegan2_discriminator,
)


def generator_state(source) -> dict:
    """A GPEN `FullGenerator` state from a release file, a training checkpoint or a facezoo checkpoint."""
    state = as_state_dict(source)
    part = lightning_network(state, ("generator_ema.module.", "generator."))
    if part is not None:
        return part
    return strip_prefix(pick(state, ("g_ema",)) or state)


def is_gpen_generator(state: Mapping) -> bool:
    return any(k.startswith("ecd0.") for k in state) and any(k.startswith("generator.") for k in state)


def import_gpen_generator(source, target: nn.Module) -> dict[str, torch.Tensor]:
    """→ a state_dict for `target` (a GPENGenerator) from an official/facezoo GPEN generator."""
    return match_state_dict(generator_state(source), target, "GPEN generator")


def import_gpen_discriminator(source, target: nn.Module) -> dict[str, torch.Tensor]:
    return import_stylegan2_discriminator(source, target, "GPEN discriminator")


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


def import_gpen_release(source, discriminator=None) -> Imported:
    """A GPEN generator file (GPEN-BFR-*.pth, a training checkpoint: its `g_ema` and `d`) and optionally its
    discriminator file (GPEN-BFR-512-D.pth) → a facezoo `model=gpen` network set."""
    state = as_state_dict(source)
    g = generator_state(state)
    arch = infer_gpen_config(g)
    with torch.device("meta"):  # only the shapes are compared
        target = GPENGenerator(**arch)
    networks = {"generator": import_gpen_generator(g, target)}
    overrides = [
        "model=gpen", f"model.size={arch['size']}",
        *(f"model.generator.{k}={v}" for k, v in arch.items() if k != "size"),
        "model.prior.from_scratch=true",  # the file holds the decoder
    ]
    if discriminator is None and isinstance(state.get("d"), Mapping):
        discriminator = state  # a training checkpoint's own `d`
    if discriminator is not None:
        d = discriminator_state(discriminator)
        overrides += discriminator_overrides(d, arch["size"])
        networks["discriminator"] = import_gpen_discriminator(d, build_discriminator(d))
    else:
        overrides += [f"model.discriminator.{k}={arch[k]}" for k in ("channel_multiplier", "narrow")]
    return Imported("gpen", f"GPEN {arch}", overrides, networks)
