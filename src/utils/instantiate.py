"""Build objects from config nodes, turning our config/data errors into one-line messages."""

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import hydra
from hydra.errors import InstantiationException
from omegaconf import DictConfig, ListConfig, OmegaConf

from facezoo.utils.errors import ConfigError, FacezooError


@contextmanager
def user_errors(what: str) -> Iterator[None]:
    """Unwrap Hydra's InstantiationException so the user sees the FacezooError underneath."""
    try:
        yield
    except InstantiationException as err:
        cause = err.__cause__
        while cause is not None and not isinstance(cause, FacezooError):
            cause = cause.__cause__
        if cause is not None:
            raise cause from None
        raise ConfigError(f"could not build {what}: {err}".replace("\n", " ")) from err


def instantiate(node: DictConfig, what: str, **kwargs):
    with user_errors(what):
        return hydra.utils.instantiate(node, **kwargs)


def instantiate_group(group: DictConfig | None, what: str) -> list:
    """Every child of `group` that has a `_target_` (e.g. callbacks, loggers); None -> []."""
    if not group:
        return []
    return [
        instantiate(node, f"{what}.{name}") for name, node in group.items() if node and "_target_" in node
    ]


def plain(value):
    """Config nodes (also inside mappings, lists and tuples) as plain containers, so module hyperparameters
    saved in checkpoints load with torch.load(weights_only=True)."""
    if isinstance(value, DictConfig | ListConfig):
        return OmegaConf.to_container(value, resolve=True)
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(plain(v) for v in value)
    return value
