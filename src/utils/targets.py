"""Which `_target_`s a stored config may name: a checkpoint is data, never code.

A checkpoint carries the config of its run, and eval / `load_model` rebuild the model (and eval the data)
from it with `hydra.utils.instantiate`, which calls whatever a `_target_` names, nested ones included (a
`_target_: pathlib.Path.write_text` with `_args_` writes a file). `check_targets(node, where)` judges every
`_target_` of a config before anything is built:

1. by the dotted name alone, so nothing outside the allowlist is even imported: `facezoo.…`,
   `torch.optim.<Name>`, `torch.optim.lr_scheduler.<Name>`, `torch.nn.<Name>`, `pytorch_optimizer.<Name>`
   (the kept optimizer package: StyleGANEX's Ranger);
2. then the object it names must be a class: under `facezoo.` an `nn.Module` (LightningModules included) or
   `LightningDataModule` subclass defined in a facezoo module; under `torch.optim` and `pytorch_optimizer`
   an `Optimizer`, under `torch.optim.lr_scheduler` an `LRScheduler`, under `torch.nn` a `Module`.

Anything else is refused by name with one `FacezooError`.
"""

# isort: off
import facezoo.utils.torchvision_shim  # noqa: F401  (first: lets Lightning import torchvision)
# isort: on
import importlib
import inspect
import re
from collections.abc import Mapping

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, ListConfig, OmegaConf
from torch import nn

from facezoo.utils.errors import FacezooError

_DOTTED = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")
# optimizer and torch namespaces: (module name, the base class the one class name after it must subclass)
_TORCH = {
    "torch.optim.lr_scheduler.": ("torch.optim.lr_scheduler", torch.optim.lr_scheduler.LRScheduler),
    "torch.optim.": ("torch.optim", torch.optim.Optimizer),
    "torch.nn.": ("torch.nn", nn.Module),
    "pytorch_optimizer.": ("pytorch_optimizer", torch.optim.Optimizer),
}
ALLOWED = (
    "facezoo networks, modules and datamodules, torch.optim and pytorch_optimizer optimizers, torch.optim "
    "schedulers, torch.nn modules"
)


def _facezoo_class(target: str):
    parts = target.split(".")
    for cut in range(len(parts) - 1, 0, -1):  # the longest importable module, then attributes
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for name in parts[cut:]:
            obj = getattr(obj, name, None)
        return obj
    return None


def _allowed(target: str) -> bool:
    if not isinstance(target, str) or not _DOTTED.fullmatch(target):
        return False
    for prefix, (module, base) in _TORCH.items():
        if target.startswith(prefix):
            name = target[len(prefix) :]
            obj = getattr(importlib.import_module(module), name, None) if "." not in name else None
            return inspect.isclass(obj) and issubclass(obj, base)
    if not target.startswith("facezoo."):
        return False
    obj = _facezoo_class(target)
    return (
        inspect.isclass(obj)
        and obj.__module__.startswith("facezoo.")
        and issubclass(obj, nn.Module | pl.LightningDataModule)
    )


def _walk(node, path: str):
    """(path, `_target_` value) of every node under `node` that has one."""
    if isinstance(node, Mapping):
        if "_target_" in node:
            yield path, node["_target_"]
        for key, value in node.items():
            yield from _walk(value, f"{path}.{key}")
    elif isinstance(node, list | tuple):
        for i, value in enumerate(node):
            yield from _walk(value, f"{path}[{i}]")


def check_targets(node, where: str) -> None:
    """Refuse (FacezooError) a config that names any `_target_` outside the allowlist (module docstring);
    `where` names the config in the message (e.g. `best.ckpt: model`)."""
    if isinstance(node, DictConfig | ListConfig):
        node = OmegaConf.to_container(node, resolve=False)
    for path, target in _walk(node, where):
        if not _allowed(target):
            raise FacezooError(
                f"{path}: refused to build _target_ {target!r}; a stored config may only name {ALLOWED}"
            )
