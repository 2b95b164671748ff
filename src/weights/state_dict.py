"""The state-dict toolkit of every importer and loader: read a weight file safely, take the part of it that is
one network, and check it against that network with a one-line error.

- `load_state_dict(path, key=None, mmap=False)`: a file → a dict, read with `torch.load(weights_only=True)`
  (never unpickling code; memory-mapped with `mmap`, so only the tensors used are ever read) or safetensors.
- `as_state_dict(source)`: a path (read as above) or an in-memory mapping → a dict.
- `pick(state, keys)`: the first of `keys` that holds a sub-dict: BasicSR `params_ema` / `params`,
  rosinality and GPEN `g_ema` / `d`, Lightning's `state_dict`.
- `strip_prefix(state, prefix)`: drop a prefix that every key has (DataParallel / DDP's `module.`).
- `sub_tree(state, prefix)`: the keys under a prefix, the prefix removed (`generator.` of a FullGenerator).
- `lightning_network(state, prefixes)`: one network of a Lightning / facezoo checkpoint by its prefix.
- `match_state_dict(source, target, what)`: the same keys and shapes as the target, else one `FacezooError`
  naming the missing, unexpected and mis-shaped keys.
"""

import os
import pickle
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch
from torch import nn

from facezoo.utils.errors import FacezooError, WeightsNotFoundError

SHOW = 8  # keys listed per kind of mismatch


def first_line(err: BaseException) -> str:
    """`Type: first line of the message` of an exception, for one-line errors."""
    text = str(err).strip().splitlines()
    return f"{err.__class__.__name__}: {text[0] if text else ''}"


def _read(path: Path, mmap: bool):
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    # mmap needs torch's zip format; files saved before PyTorch 1.6 are read whole
    mmap = mmap and zipfile.is_zipfile(path)
    return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)


def load_state_dict(path: str | os.PathLike, key: str | None = None, mmap: bool = False) -> dict:
    """Load a weight file on the CPU (`torch.load(weights_only=True)`, or safetensors for `.safetensors`).

    `key` picks a sub-dict of a checkpoint (e.g. `'params_ema'`, `'g_ema'`, `'state_dict'`); `mmap` maps the
    file instead of reading it (tensors are read when used). Missing file -> `WeightsNotFoundError`;
    unreadable file, pickled objects or missing key -> `FacezooError`.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsNotFoundError(f"{path}: weight file not found")
    try:
        state = _read(path, mmap)
    except pickle.UnpicklingError as err:
        if "weights only" in str(err).lower():
            raise FacezooError(
                f"{path}: holds Python objects besides tensors, refused by torch.load(weights_only=True); "
                "re-save its state_dict (torch.save(model.state_dict(), path))"
            ) from None
        raise FacezooError(f"{path}: not a readable weight file ({first_line(err)})") from None
    except Exception as err:  # torch/safetensors raise many types (RuntimeError, EOFError, ...)
        raise FacezooError(f"{path}: not a readable weight file ({first_line(err)})") from None
    if not isinstance(state, Mapping):
        raise FacezooError(f"{path}: expected a dict of tensors, found {type(state).__name__}")
    if key is not None:
        if key not in state:
            raise FacezooError(f"{path}: no key '{key}'; available keys: {listing(map(str, state), 20)}")
        state = state[key]
        if not isinstance(state, Mapping):
            raise FacezooError(f"{path}: '{key}' is a {type(state).__name__}, not a dict of tensors")
    return dict(state)


def as_state_dict(source) -> dict:
    """A path (read with `load_state_dict`) or a mapping, as a dict."""
    return load_state_dict(source) if isinstance(source, str | os.PathLike) else dict(source)


def pick(state: Mapping, keys: Iterable[str]) -> dict | None:
    """The sub-dict under the first of `keys` that holds one, else None."""
    for key in keys:
        if isinstance(state.get(key), Mapping):
            return dict(state[key])
    return None


def strip_prefix(state: Mapping, prefix: str = "module.") -> dict:
    """`state` without `prefix` when every key has it (DataParallel / DDP save `module.*`), else unchanged."""
    if state and all(k.startswith(prefix) for k in state):
        return {k[len(prefix) :]: v for k, v in state.items()}
    return dict(state)


def sub_tree(state: Mapping, prefix: str) -> dict:
    """The entries whose key starts with `prefix`, the prefix removed."""
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def lightning_network(state: Mapping, prefixes: Iterable[str]) -> dict | None:
    """The first of `prefixes` found in a Lightning checkpoint's `state_dict`, stripped; None when `state`
    is not a Lightning checkpoint; a `FacezooError` when it is one without any of them."""
    inner = state.get("state_dict")
    if not isinstance(inner, Mapping):
        return None
    prefixes = list(prefixes)
    for prefix in prefixes:
        part = sub_tree(inner, prefix)
        if part:
            return part
    raise FacezooError(f"a Lightning checkpoint without any of {', '.join(prefixes)}* weights")


def listing(keys: Iterable[str], show: int = SHOW) -> str:
    """`a, b, c, ... (N in all)`: the first `show` keys."""
    keys = list(keys)
    shown = ", ".join(keys[:show]) + (f", ... ({len(keys)} in all)" if len(keys) > show else "")
    return shown or "(none)"


def match_state_dict(source: Mapping, target: nn.Module | Mapping, what: str) -> dict[str, torch.Tensor]:
    """`source` checked against the target's state_dict: the same keys and shapes, else one FacezooError
    naming the missing, unexpected and mis-shaped keys. An empty target tensor is sized by the data it is
    given (DFDNet's dictionaries: K atoms of the size they were built at) and takes any tensor of its number
    of dimensions. → the source as a plain dict, in the target's order."""
    expected = target.state_dict() if isinstance(target, nn.Module) else target

    def fits(got: torch.Tensor, want: torch.Tensor) -> bool:
        return got.shape == want.shape or (want.numel() == 0 and got.ndim == want.ndim)

    missing = [k for k in expected if k not in source]
    unexpected = [k for k in source if k not in expected]
    shapes = [
        f"{k} {tuple(source[k].shape)} vs {tuple(expected[k].shape)}"
        for k in expected
        if k in source and not fits(source[k], expected[k])
    ]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} ({listing(missing)})")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} ({listing(unexpected)})")
        if shapes:
            parts.append(f"wrong shapes (got vs expected) {len(shapes)} ({listing(shapes)})")
        raise FacezooError(f"{what}: the weights do not match the network: " + "; ".join(parts))
    return {k: source[k] for k in expected}
