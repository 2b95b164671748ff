"""Official StyleGANEX weights (williamyang1991/StyleGANEX).

A release file (`styleganex_inversion.pt`, `styleganex_sr.pt`, `styleganex_sr32.pt`, and the issue-16 tasks
`styleganex_sketch2face.pt`, `styleganex_mask2face.pt`, `styleganex_edit_{hair,age}.pt`,
`styleganex_toonify_{cartoon,arcane,pixar}.pt`) is what the official coach saves (training/coach.py
`__get_save_dict`): `{'state_dict': pSp.state_dict(), 'opts': vars(opts), ['latent_avg'] (n_styles, 512),
['discriminator'], ['editing_w']}`. `opts` is a plain dict of the training options, so the file loads with
`torch.load(weights_only=True)`; a file whose `opts` was re-saved as an argparse.Namespace is refused with
what to do (`pickled_opts_error`).

`import_styleganex_release` (the `facezoo-import` entry) turns it into a facezoo `model=styleganex_<task>`
network set:
- the task from `opts['dataset_type']`, as the official inference scripts decide it: `ffhq_encode` →
  inversion, `ffhq_super_resolution` → sr, `ffhq_sketch_to_face` → sketch2face, `ffhq_seg_to_face` →
  mask2face, `ffhq_edit` → edit, `toonify` → toonify (its decoder in the file is already G′);
- the translation network T `encoder.input_label_layer.*` of the sketch / parsing-map tasks: built when
  input_nc ≠ 3 (official), with `label_nc` = input_nc (`model.encoder.label_nc`); a file whose T and input_nc
  disagree, or whose task and input_nc do (label maps are the translation tasks' input), is refused;
- the architecture from `opts` (`output_size`; `use_skip` and `skip_max_layer`: max(1, min(7, n)) fusion
  levels, none without use_skip, as the official encoder builds them; `use_skip_torgb`, `use_att`,
  `max_pooling`) and the widths from the shapes (the releases are config-f: style_dim 512, 8 mapping layers,
  channel multiplier 2, narrow 1); options the file lacks take the official defaults
  (options/train_options.py), apart from `dataset_type` and `output_size`, which it must have;
- `state_dict`: `encoder.*` → `encoder`, `decoder.*` → `decoder` (our names are the official ones, the
  decoder's six `blur_weight` buffers included); `discriminator` (rosinality's, `adv_lambda` > 0) →
  `discriminator`; every key is checked (`match_state_dict`: a missing, unexpected or mis-shaped key is
  named), and so is every top-level entry;
- `latent_avg` → `Imported.buffers['latent_avg']` (the module's own buffer, added to the encoder's w+);
  a file trained without `start_from_latent_avg` has none and its codes get no offset: zeros;
- `editing_w` (video editing only: (N, n_styles, 512), the coach's editing_w_path file) →
  `Imported.buffers['editing_w']`, its first vector, as video_editing.py uses (`editing_w[0:1]`).

`load_styleganex_prior` loads a StyleGAN2 generator file (rosinality's stylegan2-ffhq-config-f.pt `{'g_ema',
'latent_avg'}`, a facezoo model=stylegan2 checkpoint: `stylegan2.prior_states`) into the decoder.
"""

import math
from collections.abc import Mapping

import torch

from facezoo.models.components.styleganex import StyleGANEXGenerator
from facezoo.models.components.styleganex_encoder import SKIP_SOURCES, StyleGANEXEncoder
from facezoo.utils.errors import FacezooError
from facezoo.weights.imported import Imported
from facezoo.weights.networks import parameters_on_meta
from facezoo.weights.state_dict import as_state_dict, listing, match_state_dict, sub_tree
from facezoo.weights.stylegan2 import (
    build_discriminator,
    discriminator_state,
    import_stylegan2_discriminator,
    infer_discriminator_config,
    infer_stylegan2_config,
    levels,
    prior_states,
)

WHAT = "StyleGANEX"
TOP_LEVEL = ("state_dict", "opts", "latent_avg", "discriminator", "editing_w")  # what the coach saves
TASKS = {"ffhq_encode": "inversion", "ffhq_super_resolution": "sr", "ffhq_edit": "edit", "toonify": "toonify"}
# the translation tasks (their label maps: input_nc ≠ 3); the official inference takes latent_mask 8..17
# whatever the file says, and so does model=styleganex_{sketch2face,mask2face} (latent_mask null)
TRANSLATION = {"ffhq_sketch_to_face": "sketch2face", "ffhq_seg_to_face": "mask2face"}
# options/train_options.py defaults of the options read here (a file saved by an older version may lack one)
OPTS_DEFAULTS = {
    "encoder_type": "GradualStyleEncoder", "input_nc": 3, "feat_ind": 0, "max_pooling": False,
    "use_skip": False, "use_skip_torgb": False, "skip_max_layer": 7, "crop_face": False, "use_att": 0,
    "resize_factors": None, "blind_sr": False, "start_from_latent_avg": False, "affine_augment": False,
    "random_crop": False, "l2_lambda": 1.0, "lpips_lambda": 0.8, "id_lambda": 0.0, "w_norm_lambda": 0.0,
    "adv_lambda": 0.0, "r1": 1.0, "d_reg_every": 16, "tmp_lambda": 0.0,
}
SR_FACTORS = "1,2,4,8,16,32"  # configs/transforms_config.py SuperResTransforms without --resize_factors
LOSSES = {"l2": "l2_lambda", "lpips": "lpips_lambda", "id": "id_lambda", "w_norm": "w_norm_lambda",
          "adv": "adv_lambda", "r1": "r1", "tmp": "tmp_lambda"}  # model.loss key → official option


def is_styleganex_release(state: Mapping) -> bool:
    """A StyleGANEX (pSp + first-layer feature) checkpoint: `state_dict` with `encoder.featlayer.weight`."""
    inner = state.get("state_dict")
    return isinstance(inner, Mapping) and "encoder.featlayer.weight" in inner


def pickled_opts_error(path, err: FacezooError) -> FacezooError:
    """For a file that `load_state_dict` refused (`err`): when what it pickles is an argparse.Namespace (a
    pSp / StyleGANEX checkpoint whose `opts` was saved as the Namespace instead of `vars(opts)`, the plain
    dict the official coach writes), an error saying how to re-save it; else `err` itself."""
    if "argparse.Namespace" not in str(err.__context__):
        return err
    return FacezooError(
        f"{path}: its opts are an argparse.Namespace, which torch.load(weights_only=True) refuses; in a "
        "Python session you trust, re-save them as a dict: ckpt = torch.load(path, weights_only=False); "
        "ckpt['opts'] = vars(ckpt['opts']); torch.save(ckpt, path) (the official coach saves vars(opts))"
    )


def _options(opts) -> dict:
    if not isinstance(opts, Mapping):
        raise FacezooError(
            f"{WHAT}: 'opts' is a {type(opts).__name__}; expected the dict of training options the official "
            "coach saves (vars(opts))"
        )
    missing = [k for k in ("dataset_type", "output_size") if k not in opts]
    if missing:
        raise FacezooError(f"{WHAT}: opts without {', '.join(missing)}: not an official training checkpoint")
    return {**OPTS_DEFAULTS, **opts}


def _task(opts: Mapping, state: Mapping) -> str:
    dataset = opts["dataset_type"]
    if dataset not in TASKS | TRANSLATION:
        known = ", ".join(TASKS | TRANSLATION)
        raise FacezooError(f"{WHAT}: opts dataset_type={dataset}; expected one of {known}")
    input_nc = opts["input_nc"]
    label = any(k.startswith("encoder.input_label_layer.") for k in state)
    if label != (input_nc != 3):
        raise FacezooError(
            f"{WHAT}: the state_dict {'holds' if label else 'lacks'} the translation network T "
            f"(encoder.input_label_layer.*) but opts input_nc={input_nc} (T is built when input_nc ≠ 3)"
        )
    if label != (dataset in TRANSLATION):
        raise FacezooError(
            f"{WHAT}: opts dataset_type={dataset} with input_nc={input_nc}; the translation tasks "
            f"({', '.join(TRANSLATION)}), and only they, read label maps (input_nc ≠ 3)"
        )
    if opts["encoder_type"] != "GradualStyleEncoder":
        raise FacezooError(f"{WHAT}: opts encoder_type={opts['encoder_type']}; expected GradualStyleEncoder")
    return (TASKS | TRANSLATION)[dataset]


def fusion_levels(opts: Mapping) -> int:
    """The number of fusion layers the official encoder builds: max(1, min(7, skip_max_layer)) with use_skip,
    none without."""
    return max(1, min(len(SKIP_SOURCES), int(opts["skip_max_layer"]))) if opts["use_skip"] else 0


def _decoder_arch(decoder: Mapping, opts: Mapping) -> dict:
    try:
        arch = infer_stylegan2_config(decoder)
    except FacezooError as err:
        raise FacezooError(f"{WHAT} decoder: {err}") from None
    if arch["size"] != opts["output_size"]:
        raise FacezooError(
            f"{WHAT}: opts output_size={opts['output_size']} but the decoder weights are {arch['size']} px"
        )
    return {k: arch[k] for k in ("size", "style_dim", "n_mlp", "channel_multiplier", "narrow")}


def _encoder_narrow(state: Mapping) -> float:
    stem = state.get("encoder.input_layer.0.weight")
    if stem is None:
        raise FacezooError(f"{WHAT}: not a complete encoder (no encoder.input_layer.0.weight)")
    return stem.shape[0] / 64


def _latent_avg(file: Mapping, opts: Mapping, n_styles: int, style_dim: int) -> torch.Tensor:
    latent = file.get("latent_avg")
    if latent is None:
        if opts["start_from_latent_avg"]:
            raise FacezooError(f"{WHAT}: trained with start_from_latent_avg but the file has no latent_avg")
        return torch.zeros(n_styles, style_dim)
    if not isinstance(latent, torch.Tensor) or tuple(latent.shape) != (n_styles, style_dim):
        got = tuple(latent.shape) if isinstance(latent, torch.Tensor) else type(latent).__name__
        raise FacezooError(f"{WHAT}: latent_avg is {got}; expected ({n_styles}, {style_dim})")
    return latent


def _editing_w(file: Mapping, n_styles: int, style_dim: int) -> torch.Tensor:
    """v of an edit release, (n_styles, style_dim): the file's (N, n_styles, style_dim) editing vectors give
    their first, as video_editing.py takes (`editing_w[0:1]`)."""
    v = file.get("editing_w")
    shape = tuple(v.shape) if isinstance(v, torch.Tensor) else None
    if shape is None or len(shape) not in (2, 3) or shape[-2:] != (n_styles, style_dim):
        raise FacezooError(f"{WHAT}: a video editing file (ffhq_edit) holds editing_w (N, {n_styles}, "
                           f"{style_dim}); got {shape or type(v).__name__}")
    return (v[0] if v.ndim == 3 else v).float().clone()


def _overrides(task: str, opts: Mapping, decoder: dict, encoder: dict) -> list[str]:
    """Hydra overrides of `model=styleganex_<task>` that build the release's networks and recipe."""
    out = [f"model=styleganex_{task}", f"model.size={decoder['size']}"]
    out += [f"model.decoder.{k}={decoder[k]}" for k in ("style_dim", "n_mlp", "channel_multiplier", "narrow")]
    out += [f"model.encoder.{k}={v}" for k, v in encoder.items() if k not in ("size", "style_dim")]
    out += [f"model.feat_ind={int(opts['feat_ind'])}"]
    out += [f"model.{k}={bool(opts[k])}" for k in ("crop_face", "affine_augment", "random_crop")]
    if task == "sr":
        factors = str(opts["resize_factors"] or SR_FACTORS)
        if not all(f.strip().isdigit() for f in factors.split(",")):
            raise FacezooError(f"{WHAT}: opts resize_factors={factors!r}; expected factors like '1,2,4,8'")
        out.append(f"model.resize_factors=[{factors.replace(' ', '')}]")
        out.append(f"model.blind_sr={bool(opts['blind_sr'])}")
    # (++: L_tmp's weight, which only the video tasks' configs list, is added where missing)
    out += [f"{'++' if k == 'tmp' else ''}model.loss_weights.{k}={float(opts[option])}"
            for k, option in LOSSES.items()]
    out.append(f"model.r1_every={int(opts['d_reg_every'])}")
    # the file holds the decoder; restoring and evaluating it need none of the training losses' files
    out += ["model.prior.required=false", "model.identity.required=false", "model.lpips_required=false"]
    out += {"edit": ["model.editing.required=false"],
            "toonify": ["model.toonify.required=false"]}.get(task, [])
    return out


def import_styleganex_release(source, discriminator=None) -> Imported:
    """An official StyleGANEX release (a path or its loaded dict) and optionally a discriminator file (else
    the release's own, when it holds one) → a facezoo `model=styleganex_<task>` network set (see the module
    docstring)."""
    file = as_state_dict(source)
    unknown = [str(k) for k in file if k not in TOP_LEVEL]
    if unknown:
        raise FacezooError(
            f"{WHAT}: unexpected entries {listing(unknown)}; a release holds {', '.join(TOP_LEVEL)}"
        )
    if not is_styleganex_release(file):
        raise FacezooError(f"{WHAT}: no state_dict with the encoder's featlayer: not a StyleGANEX checkpoint")
    state = file["state_dict"]
    opts = _options(file.get("opts"))
    task = _task(opts, state)
    parts = {name: sub_tree(state, f"{name}.") for name in ("encoder", "decoder")}
    stray = [k for k in state if not k.startswith(("encoder.", "decoder."))]
    if stray:
        raise FacezooError(f"{WHAT}: state_dict keys outside encoder.* and decoder.*: {listing(stray)}")
    decoder_arch = _decoder_arch(parts["decoder"], opts)
    encoder_arch = dict(
        size=decoder_arch["size"], style_dim=decoder_arch["style_dim"], narrow=_encoder_narrow(state),
        skip_max_layer=fusion_levels(opts), use_skip_torgb=bool(opts["use_skip_torgb"]),
        use_att=int(opts["use_att"]), max_pooling=bool(opts["max_pooling"]),
    )
    if opts["input_nc"] != 3:  # (an override only here: the RGB tasks' configs have no label_nc)
        encoder_arch["label_nc"] = int(opts["input_nc"])
    with parameters_on_meta():  # only names and shapes are compared; the blur_weight constants are real
        targets = {"encoder": StyleGANEXEncoder(**encoder_arch),
                   "decoder": StyleGANEXGenerator(**decoder_arch)}
    networks = {
        name: match_state_dict(parts[name], target, f"{WHAT} {name}") for name, target in targets.items()
    }
    overrides = _overrides(task, opts, decoder_arch, encoder_arch)
    d = discriminator_state(discriminator) if discriminator is not None else file.get("discriminator")
    if d is not None:
        d_arch = infer_discriminator_config(d)
        overrides += [f"model.discriminator.{k}={v}" for k, v in d_arch.items()]
        networks["discriminator"] = import_stylegan2_discriminator(
            d, build_discriminator(d), f"{WHAT} discriminator"
        )
    n_styles = targets["encoder"].n_styles
    buffers = {"latent_avg": _latent_avg(file, opts, n_styles, decoder_arch["style_dim"])}
    if task == "edit":
        buffers["editing_w"] = _editing_w(file, n_styles, decoder_arch["style_dim"])
    elif "editing_w" in file:
        raise FacezooError(f"{WHAT}: an editing_w in a {task} file; only video editing (ffhq_edit) has one")
    skips = encoder_arch["skip_max_layer"]
    description = f"StyleGANEX {task} ({decoder_arch['size']} px decoder, {skips} fusion levels)"
    return Imported("styleganex", description, overrides, networks, buffers=buffers)


def load_styleganex_prior(source, decoder: StyleGANEXGenerator) -> tuple[torch.Tensor | None, dict | None]:
    """Load a StyleGAN2 generator of the decoder's architecture (rosinality's stylegan2-ffhq-config-f.pt, a
    facezoo model=stylegan2 checkpoint, a bare state: `stylegan2.prior_states`) into the StyleGANEX
    `decoder` (`load_stylegan2_state_dict`: the blur_weight constants stay). → (the file's latent_avg as
    (n_latent, style_dim), or None when it has none (the official coach then averages w over 10^5 samples);
    the file's discriminator state, or None)."""
    file = as_state_dict(source)
    g, d = prior_states(file)
    have, want = levels(g), int(math.log2(decoder.size)) - 2
    if have != want:
        raise FacezooError(
            f"StyleGANEX prior: a {2 ** (have + 2)} px StyleGAN2 generator cannot be the decoder of a "
            f"{decoder.size} px StyleGANEX"
        )
    expected = {k: v for k, v in decoder.state_dict().items() if not k.endswith(".blur_weight")}
    decoder.load_stylegan2_state_dict(match_state_dict(g, expected, "StyleGANEX prior (StyleGAN2 generator)"))
    latent = file.get("latent_avg")
    if latent is None:
        return None, d
    rows = latent.reshape(-1, latent.shape[-1]).shape[0] if latent.ndim in (1, 2) else 0
    if latent.shape[-1] != decoder.style_dim or rows not in (1, decoder.n_latent):
        raise FacezooError(
            f"StyleGANEX prior: latent_avg is {tuple(latent.shape)}; expected ({decoder.style_dim},) or "
            f"({decoder.n_latent}, {decoder.style_dim})"
        )
    return latent.reshape(rows, -1).expand(decoder.n_latent, -1).clone(), d

