"""The networks of a zoo module as the loaders see them, and how to build them without their memory.

- `parameters_on_meta()`: modules built inside have their parameters on the meta device (shapes and dtypes,
  no memory, no initialisation work); buffers are created as usual (FIR kernels, index tables, counters,
  non-persistent ones included), so a network loaded over it with `load_state_dict(assign=True)` is complete.
- `networks(model)`: the top-level children that hold parameters (generator, discriminator, EMA copies …).
- `ema_sources(model)`: each EMA copy (an `AveragedModel` child) → the network it averages, recognised by
  structure (the one other network with the same keys and shapes), with no per-method table.
- `network_state(model, name, state)`: the part of a module state_dict that is network `name`; an EMA copy
  the state lacks is its source's weights (release files hold one generator, not two).
- `hold_out(model, name)`: take a network out of the module tree. What stays is a skeleton on the meta device:
  its attributes (sizes, widths) are still readable as `model.<name>`, but it holds no memory, and
  `.to()`, `state_dict()` and `parameters()` of the module no longer see it.
"""

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from torch import nn
from torch.optim.swa_utils import AveragedModel

from facezoo.weights.state_dict import sub_tree


@contextmanager
def parameters_on_meta() -> Iterator[None]:
    """Inside, every parameter a module registers is moved to the meta device as it is registered (one tensor
    at a time is ever allocated). Not thread-safe: it swaps `nn.Module.register_parameter` meanwhile."""
    register = nn.Module.register_parameter

    def register_on_meta(module: nn.Module, name: str, param) -> None:
        if param is not None and not param.is_meta:
            param = nn.Parameter(param.detach().to("meta"), requires_grad=param.requires_grad)
        register(module, name, param)

    nn.Module.register_parameter = register_on_meta
    try:
        yield
    finally:
        nn.Module.register_parameter = register


def networks(model: nn.Module) -> dict[str, nn.Module]:
    """Top-level children that hold parameters, by name."""
    return {
        name: child for name, child in model.named_children() if next(child.parameters(), None) is not None
    }


def _shapes(module: nn.Module) -> dict[str, tuple]:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def ema_sources(model: nn.Module) -> dict[str, str]:
    """EMA child name → name of the network it averages (`generator_ema` → `generator`)."""
    nets = networks(model)
    shapes = {name: _shapes(net) for name, net in nets.items() if not isinstance(net, AveragedModel)}
    pairs = {}
    for name, net in nets.items():
        if isinstance(net, AveragedModel):
            want = _shapes(net.module)
            found = [source for source, s in shapes.items() if s == want]
            if len(found) == 1:
                pairs[name] = found[0]
    return pairs


def network_state(model: nn.Module, name: str, state: Mapping) -> dict | None:
    """The entries of module state_dict `state` that belong to network `name`, prefix removed; for an EMA
    copy that `state` lacks, its source network's weights (and the copy's own counters); else None."""
    part = sub_tree(state, f"{name}.")
    if part:
        return part
    source = ema_sources(model).get(name)
    weights = sub_tree(state, f"{source}.") if source else {}
    if not weights:
        return None
    own = {k: v for k, v in getattr(model, name).state_dict().items() if not k.startswith("module.")}
    return {**own, **{f"module.{k}": v for k, v in weights.items()}}


def hold_out(model: nn.Module, name: str) -> None:
    """Replace child `name` by a skeleton on the meta device outside the module tree (see the docstring)."""
    child = getattr(model, name).to("meta")
    delattr(model, name)
    object.__setattr__(model, name, child)
