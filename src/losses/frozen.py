"""Frozen pretrained helpers: networks a method uses but never trains (VGG-19 of the perceptual losses, the
ArcFace / IR-SE50 of the identity losses; later DFDNet's VGG).

`Frozen(net)` holds the network the way torchmetrics holds LPIPS's: as a plain attribute of a small wrapper,
not as a submodule. So the owner's `parameters()` never yield it (no optimizer, no gradient, no DDP bucket),
its `state_dict()` never holds it (checkpoints keep only what is trained, and load whether or not the helper's
weights file is on the machine), yet the owner's `.to(device / dtype)`, `.cuda()` and `.double()` move it:
the wrapper passes `_apply` on. It is always in eval mode (a parent's `train()` leaves it in eval: BatchNorm
statistics and dropout stay as released) and its parameters never require gradients; gradients still flow
through it to its inputs.
"""

from typing import Self

from torch import nn


class Frozen(nn.Module):
    """A never-trained pretrained network: call it like the network; the network itself is `.net`."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        object.__setattr__(self, "net", net.eval().requires_grad_(False))  # not a submodule (docstring)
        super().train(False)

    def forward(self, *args, **kwargs):
        return self.net(*args, **kwargs)

    def train(self, mode: bool = True) -> Self:
        """Always eval, whatever `mode`."""
        self.net.eval()
        return super().train(False)

    def _apply(self, fn, recurse: bool = True) -> Self:
        self.net._apply(fn, recurse)
        return super()._apply(fn, recurse)

    def extra_repr(self) -> str:
        return f"net={type(self.net).__name__}"
