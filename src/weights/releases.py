"""Which method an official release file belongs to, recognised from its keys (the importers then read the
architecture from its shapes), and its import into facezoo networks.

Supported (`SUPPORTED`, the message of an unknown file): GPEN generators, GFP-GAN generators, StyleGAN2
generators, DFDNet generators (with their dictionaries), StyleGANEX checkpoints (inversion and SR).
"""

import os
from collections.abc import Callable, Mapping, Sequence

from facezoo.utils.errors import FacezooError
from facezoo.weights.dfdnet import import_dfdnet_release, is_dfdnet_generator
from facezoo.weights.gfpgan import import_gfpgan_release, is_gfpgan_generator
from facezoo.weights.gpen import import_gpen_release, is_gpen_generator
from facezoo.weights.imported import Imported
from facezoo.weights.state_dict import as_state_dict, pick, strip_prefix, sub_tree
from facezoo.weights.stylegan2 import basicsr_discriminator_name, import_stylegan2_release
from facezoo.weights.styleganex import import_styleganex_release, is_styleganex_release, pickled_opts_error

SUPPORTED = (
    "GPEN generators (GPEN-BFR-512/256.pth, a GPEN training checkpoint's g_ema), "
    "GFP-GAN generators (GFPGANv1.pth, GFPGANv1.3/v1.4.pth, BasicSR net_g params_ema/params), "
    "StyleGAN2 generators (rosinality/GPEN g_ema, BasicSR StyleGAN2_*.pth params_ema, GFP-GAN clean), "
    "DFDNet generators (latest_net_G.pth, BasicSR DFDNet_official-*.pth params) with --dictionary, "
    "StyleGANEX checkpoints (styleganex_inversion.pt, styleganex_sr.pt, styleganex_sr32.pt)"
)

IMPORTERS: dict[str, Callable[..., Imported]] = {
    "gpen": import_gpen_release,
    "gfpgan": import_gfpgan_release,
    "stylegan2": import_stylegan2_release,
    "dfdnet": import_dfdnet_release,
    "styleganex": import_styleganex_release,
}


def _is_stylegan2(state: Mapping) -> bool:
    mapping = any(k.startswith(("style.1.", "style_mlp.1.")) for k in state)
    return mapping and any(k.startswith("to_rgb1.") for k in state)


def _what_else(state: Mapping) -> str:
    keys = {basicsr_discriminator_name(k) for k in state}
    if "convs.0.0.weight" in keys and "final_linear.1.weight" in keys:
        return "a StyleGAN2 discriminator: give it with --discriminator beside its generator"
    if {"conv1.0.weight", "final_conv.0.weight"} <= keys:
        return "a GFP-GAN facial component discriminator: give it with --components beside its generator"
    return "no known generator"


def _generator(state: Mapping) -> dict:
    """The generator-like part of a file: a Lightning checkpoint's (EMA) generator, BasicSR `params_ema` /
    `params`, rosinality `g_ema`, or the file itself."""
    inner = state.get("state_dict")
    if isinstance(inner, Mapping):
        return sub_tree(inner, "generator_ema.module.") or sub_tree(inner, "generator.")
    return strip_prefix(pick(state, ("params_ema", "params", "g_ema")) or state)


def recognise(source) -> str:
    """The importer (`IMPORTERS` key) for a release file or state, from its keys; else one FacezooError
    listing what is supported."""
    state = as_state_dict(source)
    if is_styleganex_release(state):
        return "styleganex"
    generator = _generator(state)
    if is_gpen_generator(generator):
        return "gpen"
    if is_gfpgan_generator(generator):
        return "gfpgan"
    if _is_stylegan2(generator):
        return "stylegan2"
    if is_dfdnet_generator(generator):
        return "dfdnet"
    raise FacezooError(f"{_what_else(generator)}; facezoo reads facezoo checkpoints and {SUPPORTED}")


def import_release(
    source, method: str | None = None, discriminator=None, components: Sequence = (), dictionary=None
) -> Imported:
    """An official release file (path or state) → facezoo networks. `method` (a key of `IMPORTERS`) is
    recognised from the keys when not given; `discriminator`, `components` (GFP-GAN) and `dictionary`
    (DFDNet) are files of the same release."""
    try:
        state = as_state_dict(source)
    except FacezooError as err:
        raise pickled_opts_error(source, err) from None
    try:
        method = method or recognise(state)
    except FacezooError as err:
        named = isinstance(source, str | os.PathLike)
        raise FacezooError(f"{source}: {err}" if named else str(err)) from None
    if method not in IMPORTERS:
        raise FacezooError(f"--method {method}: expected one of {', '.join(IMPORTERS)}")
    extra = {"discriminator": discriminator}
    if components:
        if method != "gfpgan":
            raise FacezooError(
                f"--components: facial component discriminators belong to gfpgan, not {method}"
            )
        extra["components"] = components
    if dictionary is not None:
        if method != "dfdnet":
            raise FacezooError(f"--dictionary: component dictionaries belong to dfdnet, not {method}")
        extra["dictionary"] = dictionary
    return IMPORTERS[method](state, **extra)
