"""The facezoo checkpoint format, and `load_model`: a ready `restore()`-able module from any facezoo
checkpoint or any official release file the importers accept.

The format: a Lightning checkpoint (`state_dict`, and for trained runs the optimizer and loop states) plus
`facezoo_config` (the resolved run config: what builds the model, and by default the data of eval) and
`facezoo_format` (this layout's version). Imported releases hold only the networks the release holds (e.g. the
generator: no random discriminator, no second copy for the EMA) and `facezoo_imported` (what was recognised).

- Every write is atomic (`save_checkpoint`: `facezoo.utils.atomic`, a temporary, fsync, rename), every read is
  `torch.load(weights_only=True)`, explicitly, resume included (`FacezooCheckpointIO` is the Trainer's
  CheckpointIO), so a pickle that would run code is refused whatever `TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD` says.
- A stored config is data, never code: before it builds anything its `_target_`s are checked
  (`facezoo.utils.targets`).
- `load_model(path)` maps the file (`mmap=True`) and builds the networks the config injects (`_target_`
  children of the model node) on the meta device (no memory, no initialisation); it then assigns the file's
  tensors to the networks `restore()` uses (`inference_networks()`) and holds the others out as skeletons
  (`facezoo.weights.networks`), so a discriminator is never materialised and its bytes never read. Nothing
  here knows a method: the networks are the config's, the inference ones the module's own answer. The
  module's own tensors (state_dict keys without a dot, e.g. StyleGANEX's `latent_avg`) that the file holds
  are loaded too.
- `initialise_from(model, path)` (train's `init_from=`): a new run whose networks the file holds start from
  it, the others fresh, an EMA copy the file lacks a copy of its network; the module's own tensors from the
  file, but for the training-loop state (`RUN_STATE`), which a new run starts afresh.
- `load_styleganex(path, device)`: `load_model` for the StyleGANEX commands (facezoo-invert, facezoo-video),
  refusing a file of any other method in one line.
"""

# isort: off
import facezoo.utils.torchvision_shim  # noqa: F401  (first: lets Lightning import torchvision)
# isort: on
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import hydra
import torch
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf, open_dict
from pytorch_lightning.plugins.io import TorchCheckpointIO

from facezoo.utils.atomic import atomic_file
from facezoo.utils.compose import compose_config
from facezoo.utils.errors import ConfigError, FacezooError
from facezoo.utils.instantiate import instantiate
from facezoo.utils.targets import check_targets
from facezoo.weights.imported import Imported
from facezoo.weights.networks import ema_sources, hold_out, network_state, networks, parameters_on_meta
from facezoo.weights.releases import import_release
from facezoo.weights.resolver import KNOWN_WEIGHTS, resolve
from facezoo.weights.state_dict import load_state_dict, match_state_dict, sub_tree
from facezoo.weights.styleganex import pickled_opts_error

log = logging.getLogger("facezoo")

CONFIG_KEY = "facezoo_config"
FORMAT_KEY = "facezoo_format"
IMPORTED_KEY = "facezoo_imported"
FORMAT_VERSION = 1
RUN_STATE = ("batch_counter", "mean_path_length")  # FaceZooModule's and GANModule's training-loop buffers
STYLEGANEX = "facezoo.models.styleganex.StyleGANEX"


# --- writing and reading ------------------------------------------------------------------------------------


def save_checkpoint(checkpoint: dict | torch.Tensor, path: str | os.PathLike) -> None:
    """`torch.save` through `atomic_file`: a crash mid-write leaves the previous checkpoint intact, never a
    truncated one; a full disk is a one-line `WriteError`."""
    with atomic_file(path) as f:
        torch.save(checkpoint, f)


def config_entries(cfg: DictConfig) -> dict:
    """What every facezoo checkpoint of a run carries besides Lightning's state: the resolved config (plain
    containers, so `weights_only` loading works) and the format version."""
    return {CONFIG_KEY: OmegaConf.to_container(cfg, resolve=True), FORMAT_KEY: FORMAT_VERSION}


class FacezooCheckpointIO(TorchCheckpointIO):
    """The Trainer's CheckpointIO: atomic writes, and reads with `weights_only=True` whatever the caller or
    the environment asks (Lightning's resume and `trainer.test(ckpt_path=...)` go through it), on the CPU
    (Lightning moves the states to the device)."""

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        save_checkpoint(checkpoint, path)

    def load_checkpoint(self, path, map_location=None, weights_only=None) -> dict:
        return load_state_dict(path)


# --- what a model file holds --------------------------------------------------------------------------------


@dataclass
class ModelFile:
    """A facezoo checkpoint (`config` set) or an official release (`imported` set), memory-mapped; its
    `state_dict` is in the layout of the method's module (`generator.*`, `generator_ema.module.*` …)."""

    path: Path
    state_dict: dict
    config: dict | None = None
    imported: Imported | None = None

    def model_config(self) -> DictConfig:
        """The model node that builds this file's network (checked: only the zoo's own classes)."""
        if self.imported is not None:
            node = OmegaConf.to_container(_compose(self.imported.overrides).model, resolve=True)
        else:
            node = self.config.get("model")
            if not isinstance(node, dict):
                raise FacezooError(f"{self.path}: its facezoo config has no model")
        check_targets(node, f"{self.path}: model")
        return OmegaConf.create(node)

    def trained_size(self) -> int | None:
        """The image size the checkpoint's run trained at (None: a release, or a run at the files' sizes)."""
        size = ((self.config or {}).get("datamodule") or {}).get("image_size")
        return size if isinstance(size, int) else None

    def datamodule_config(self) -> DictConfig:
        """The data the checkpoint's run used (checked), for eval without `datamodule=`."""
        node = (self.config or {}).get("datamodule")
        if not isinstance(node, dict):
            raise FacezooError(
                f"{self.path}: no data config inside (an official release?); pass datamodule=NAME"
            )
        check_targets(node, f"{self.path}: datamodule")
        return OmegaConf.create(node)


def _compose(overrides: list[str]) -> DictConfig:
    """The train config with `overrides`; inside a running Hydra app (eval) through its own compose."""
    if GlobalHydra.instance().is_initialized():
        return hydra.compose(config_name="train", overrides=overrides)
    return compose_config(overrides=overrides)


def run_checkpoint(path: str | os.PathLike, option: str | None = None,
                   names: tuple[str, ...] = ("best.ckpt", "last.ckpt")) -> Path:
    """`path` itself, or for a run folder the first of its `checkpoints/<names>` there (eval and restore:
    best, else last; a resume: last only)."""
    path = Path(path)
    if not path.is_dir():
        return path
    for name in names:
        if (path / "checkpoints" / name).is_file():
            return path / "checkpoints" / name
    raise FacezooError(
        f"{option + '=' if option else ''}{path}: no checkpoints/{' or '.join(names)} in this folder "
        "(expected a run folder or a checkpoint file)"
    )


def _in_pretrained(path: Path) -> Path:
    """A known release named by its file name (`GFPGANv1.4.pth`) or KNOWN_WEIGHTS key and not here: found in
    the pretrained folders as the resolver searches them (where `facezoo-weights download` puts it), or one
    error saying where it was looked for and how to fetch it; any other path as it is."""
    known = str(path) in KNOWN_WEIGHTS or any(spec.filename == str(path) for spec in KNOWN_WEIGHTS.values())
    return resolve(str(path)) if known and not path.exists() else path


def open_model_file(path: str | os.PathLike, option: str | None = None) -> ModelFile:
    """Map a facezoo checkpoint (a file, or a run folder: `run_checkpoint`) or an official release file
    (weights only; unknown files: one FacezooError listing what is supported). `option` names the config
    option that gave the path, for messages."""
    path = run_checkpoint(_in_pretrained(Path(path)), option)
    name = f"{option}={path}" if option else str(path)
    if not path.is_file():
        raise FacezooError(f"{name}: file not found")
    try:
        raw = load_state_dict(path, mmap=True)
    except FacezooError as err:
        raise pickled_opts_error(path, err) from None
    if CONFIG_KEY not in raw:
        try:
            imported = import_release(raw)
        except FacezooError as err:
            raise FacezooError(f"{name}: {err}") from None
        return ModelFile(path, imported.state_dict(), imported=imported)
    version = raw.get(FORMAT_KEY, FORMAT_VERSION)  # checkpoints written before the key existed: version 1
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise FacezooError(
            f"{name}: facezoo checkpoint format {version}; this facezoo reads {FORMAT_VERSION}"
        )
    if not isinstance(raw.get("state_dict"), dict) or not isinstance(raw[CONFIG_KEY], dict):
        raise FacezooError(f"{name}: a facezoo checkpoint without its state_dict or config")
    return ModelFile(path, raw["state_dict"], config=raw[CONFIG_KEY])


# --- building models from files -----------------------------------------------------------------------------


def _injected(model_cfg: DictConfig) -> dict:
    """The networks a model config injects: its `_target_` children that are objects, not `_partial_`."""
    return {
        key: node for key, node in model_cfg.items()
        if isinstance(node, DictConfig) and "_target_" in node and not node.get("_partial_", False)
    }


def _lean_network(node: DictConfig, what: str) -> torch.nn.Module | None:
    """An injected network built without memory: on the meta device; with its buffers real when it has
    non-persistent ones (derived constants no file holds, e.g. attention index tables); None for an object
    without visible parameters (a frozen pretrained helper, a metric: no network of the checkpoint)."""
    with torch.device("meta"):
        net = instantiate(node, what)
    if not isinstance(net, torch.nn.Module) or next(net.parameters(), None) is None:
        return None
    if {name for name, _ in net.named_buffers()} - set(net.state_dict()):
        with parameters_on_meta():
            net = instantiate(node, what)
    return net


def build_model(model_cfg: DictConfig, lean: bool = False):
    """Instantiate a (checked) model config; `lean`: the injected networks without memory (`_lean_network`),
    to be assigned from a file or held out."""
    nets = {}
    if lean:
        for key, node in _injected(model_cfg).items():
            net = _lean_network(node, f"model.{key}")
            if net is not None:
                nets[key] = net
    return instantiate(model_cfg, "model", **nets)


def _assign(net: torch.nn.Module, weights: dict) -> None:
    """Load `weights` (already matched) by assignment: the module takes the file's (mapped) tensors; a
    floating-point tensor of another dtype than the network's is converted."""
    own = net.state_dict()
    net.load_state_dict(
        {k: v.to(own[k].dtype) if v.is_floating_point() and v.dtype != own[k].dtype else v
         for k, v in weights.items()},
        assign=True,
    )


def _load_own(model, state: dict, what: str, skip: tuple[str, ...] = ()) -> list[str]:
    """Copy the module's own tensors (its state_dict keys without a dot) that `state` holds, but `skip`, into
    the module, checked by shape. → their names."""
    mine = model.state_dict(keep_vars=True).items()
    own = {k: v for k, v in mine if "." not in k and k in state and k not in skip}
    with torch.no_grad():
        for key, value in match_state_dict({k: state[k] for k in own}, own, what).items():
            own[key].copy_(value)
    return list(own)


def load_model(source: str | os.PathLike | ModelFile, device: str | torch.device = "cpu"):
    """A ready, eval-mode FaceZooModule from a facezoo checkpoint (trained or imported) or an official
    release file; only the networks `restore()` uses are read and materialised."""
    file = source if isinstance(source, ModelFile) else open_model_file(source)
    model = build_model(file.model_config(), lean=True)
    used = model.inference_networks()
    for name in used:
        net = getattr(model, name)
        state = network_state(model, name, file.state_dict)
        if state is None:
            raise FacezooError(f"{file.path}: no weights for {name}, the network restore() uses")
        _assign(net, match_state_dict(state, net, f"{file.path}: {name}"))
    for name in networks(model):
        if name not in used:
            hold_out(model, name)
    _load_own(model, file.state_dict, str(file.path))
    return model.to(device).eval()


def load_styleganex(ckpt: str | os.PathLike, device: str | torch.device = "cpu"):
    """The StyleGANEX of `ckpt` (any file `load_model` reads); any other method is refused by name."""
    file = open_model_file(ckpt, option="ckpt")
    target = file.model_config().get("_target_")
    if target != STYLEGANEX:
        raise ConfigError(f"ckpt={file.path}: a {target} checkpoint; expected a StyleGANEX one (a model="
                          "styleganex_* run or an official styleganex_*.pt)")
    return load_model(file, device)


def initialise_from(model, path: str | os.PathLike) -> list[str]:
    """Initialise the networks of a freshly built `model` that the file holds (any file `load_model`
    accepts); an EMA copy the file lacks becomes a copy of its network (and a network the file lacks, a copy
    of its EMA); the module's own tensors the file holds (StyleGANEX's `latent_avg`) but `RUN_STATE`. → the
    names of the networks (and own tensors) initialised. Marks `model.initialised_from`."""
    option = f"init_from={path}"
    file = open_model_file(path, option="init_from")
    stored = ((file.config or {}).get("model") or {}).get("_target_")
    built = f"{type(model).__module__}.{type(model).__qualname__}"
    if stored and stored != built:
        raise FacezooError(f"{option}: a {stored} checkpoint, but the run builds {built}")
    nets = networks(model)
    loaded = []
    for name, net in nets.items():
        part = sub_tree(file.state_dict, f"{name}.")
        if part:
            net.load_state_dict(match_state_dict(part, net, f"{option}: {name}"))
            loaded.append(name)
    if not loaded:
        raise FacezooError(f"{option}: holds none of the model's networks ({', '.join(nets)})")
    own = _load_own(model, file.state_dict, option, skip=RUN_STATE)
    homeless = sorted({k.split(".")[0] for k in file.state_dict} - set(nets) - set(own) - set(RUN_STATE))
    if homeless:
        log.warning("%s: %s not in this run's model, not loaded", option, ", ".join(homeless))
    for ema, source in ema_sources(model).items():
        if source in loaded and ema not in loaded:
            nets[ema].module.load_state_dict(nets[source].state_dict())
            loaded.append(ema)
        elif ema in loaded and source not in loaded:
            nets[source].load_state_dict(nets[ema].module.state_dict())
            loaded.append(source)
    model.initialised_from = str(path)
    return loaded + own


def imported_checkpoint(imported: Imported, datamodule: str = "ffhq") -> dict:
    """A facezoo checkpoint of an imported release: its networks (checked against the model its config
    builds) and the composed train config (`datamodule` for eval without `datamodule=`)."""
    with tempfile.TemporaryDirectory() as tmp:
        cfg = compose_config(overrides=[*imported.overrides, f"datamodule={datamodule}"], output_dir=tmp)
        with open_dict(cfg):
            del cfg["hydra"]
        config = OmegaConf.to_container(cfg, resolve=True)
    model = build_model(OmegaConf.create(config["model"]), lean=True)
    for name, state in imported.networks.items():
        try:
            net = model.get_submodule(name)
        except AttributeError:
            raise FacezooError(f"{imported.method}: the model config builds no {name}") from None
        match_state_dict(state, net, f"{imported.method} {name}")
    own = {k: v for k, v in model.state_dict().items() if "." not in k}
    match_state_dict(imported.buffers, {k: own[k] for k in imported.buffers if k in own}, imported.method)
    return {
        "state_dict": imported.state_dict(),
        CONFIG_KEY: config,
        FORMAT_KEY: FORMAT_VERSION,
        IMPORTED_KEY: {"method": imported.method, "description": imported.description},
    }
