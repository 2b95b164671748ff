"""Frozen pretrained helpers: networks a method uses but never trains (VGG-19 of the perceptual losses, the
ArcFace / IR-SE50 of the identity losses and metric, LPIPS's network; later DFDNet's VGG). Every one of them
is held by this one wrapper, in modules and in metrics alike.

`Frozen(net)` holds the network the way torchmetrics holds LPIPS's: as a plain attribute of a small wrapper,
not as a submodule. So the owner's `parameters()` never yield it (no optimizer, no gradient, no DDP bucket),
its `state_dict()` never holds it (checkpoints keep only what is trained, and load whether or not the helper's
weights file is on the machine), yet the owner's `.to(device / dtype)`, `.cuda()` and `.double()` move it:
the wrapper passes `_apply` on. It is always in eval mode (a parent's `train()` leaves it in eval: BatchNorm
statistics and dropout stay as released) and its parameters never require gradients; gradients still flow
through it to its inputs. With `keep_dtype` (a metric that must stay float32, e.g. LPIPS) it follows its
owner's device but never its dtype.
"""

from typing import Self

import torch
from torch import nn


class Frozen(nn.Module):
    """A never-trained pretrained network: call it like the network; the network itself is `.net`."""

    def __init__(self, net: nn.Module, keep_dtype: bool = False) -> None:
        super().__init__()
        object.__setattr__(self, "net", net.eval().requires_grad_(False))  # not a submodule (docstring)
        self.keep_dtype = keep_dtype
        # an empty tensor that follows the owner, so the net can follow its device alone (keep_dtype)
        self.register_buffer("device_probe", torch.zeros(0), persistent=False)
        super().train(False)

    def forward(self, *args, **kwargs):
        if self.net.training:  # switched to training directly (not through its owner): back to as released
            self.net.eval()
        return self.net(*args, **kwargs)

    def train(self, mode: bool = True) -> Self:
        """Always eval, whatever `mode`."""
        self.net.eval()
        return super().train(False)

    def _apply(self, fn, recurse: bool = True) -> Self:
        this = super()._apply(fn, recurse)
        if self.keep_dtype:
            self.net.to(device=self.device_probe.device)
        else:
            self.net._apply(fn, recurse)
        return this

    def extra_repr(self) -> str:
        return f"net={type(self.net).__name__}"
