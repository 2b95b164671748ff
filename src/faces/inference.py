"""Run a loaded model's `restore()` as fast as the device allows: `prepare(model, device, ...)` → a callable
with restore's contract (a (B, 3, H, W) batch in [-1, 1] → dict(image=..., ...)), outputs float32 NCHW.

What it does (measured on a shared 2-core AVX-512 + avx512_bf16 CPU, 1 thread, 512 px, batch 1, against the
official forward with the same weights; the figures are noisy, ±10%):
- `channels_last`: parameters and inputs in NHWC, the layout oneDNN's convolutions run fastest in (3×3 convs
  at 256–512 px with 32–128 channels 1.2–2× faster than NCHW); the same numbers up to rounding (≤ 5e-5).
  GFPGANv1.3/1.4 0.87× the official time (NCHW 0.93×), GFPGANv1 0.63×; but on GPEN the layout changes
  around its FIR filters and concatenations cost more than the convs gain (GPEN-BFR-256: 0.59× vs NCHW
  0.55×; GPEN-BFR-512 0.92× vs 0.60× before), so it is off by default.
- `precision`: "fp32", or autocast to "bf16" / "fp16". On a CPU with avx512_bf16 (or AMX) bf16 is the mode
  under half the official time for every release (0.39–0.46×), at a max abs difference against fp32 of
  1–4e-2 of outputs of magnitude ~2 (random weights; GFPGANv1's reach 10, its difference 0.3).
- `compile`: `torch.compile(predict)` with weight freezing (constants folded, conv weights prepacked): the
  same numbers (≤ 5e-6); compiling took 3.5–5 minutes even for 64 px test networks here, so it pays only
  for long videos and is off by default.
- Always `torch.inference_mode`, so the StyleGAN2 layers take their inference form (`ModulatedConv2d`: one
  shared-weight conv for a whole batch of faces).
"""

from collections.abc import Callable
from contextlib import nullcontext

import torch

from facezoo.utils.errors import ConfigError

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def prepare(
    model, device: str | torch.device = "cpu", precision: str = "fp32", channels_last: bool = False,
    compile: bool = False,
) -> Callable[[torch.Tensor], dict[str, torch.Tensor]]:
    """Move `model` (a FaceZooModule, e.g. from `load_model`) to `device` in eval mode, in the memory format
    and with the compiled networks asked for, and → the function that restores a batch with it."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision={precision}: expected fp32, bf16 or fp16")
    device = torch.device(device)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model.to(device).eval()
    if channels_last:
        _to_channels_last(model)
    if compile:  # restore() runs this instance's `predict`: its compiled version
        model.predict = torch.compile(model.predict, dynamic=False, options={"freezing": True})
    dtype = PRECISIONS[precision]

    def run(lq: torch.Tensor, **inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        autocast = torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()
        with torch.inference_mode(), autocast:
            out = model.restore(lq.to(device, memory_format=memory_format), **inputs)
        return {key: value.float().contiguous() for key, value in out.items()}

    return run


@torch.no_grad()
def _to_channels_last(model: torch.nn.Module) -> None:
    """NHWC strides for every 4-D parameter and buffer, and for the StyleGAN2 modulated-conv weights
    (1, out, in, k, k), whose `[0]` (the inference conv's weight) then is an NHWC (out, in, k, k) tensor."""
    for tensor in [*model.parameters(), *model.buffers()]:
        if tensor.ndim == 4:
            tensor.data = tensor.contiguous(memory_format=torch.channels_last)
        elif tensor.ndim == 5 and tensor.shape[0] == 1:
            tensor.data = tensor[0].contiguous(memory_format=torch.channels_last)[None]
