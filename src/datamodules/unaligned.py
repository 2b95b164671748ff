"""Unaligned evaluation faces: each validation / test HQ face moved by its own shift, rotation and zoom-out
before the degradation makes its LQ from it, to measure restoration beyond cropped aligned faces (StyleGANEX,
Yang et al., ICCV 2023, whose coach trains on faces moved by ADA's affine: datamodules/geometric.py).

`datamodule.unaligned` options (`Unaligned`; prob 0, the default, leaves every batch as it was):
- prob: the chance that a face is moved (1: all of them);
- shift: the largest translation per axis, a fraction of the image side (x and y each U(−shift, shift));
- rotate: the largest rotation in degrees, U(−rotate, rotate), at most 45 (ADA's range in StyleGANEX's port),
  so the eye boxes keep their left / right order;
- zoom_out: [min, max], the face shrunk by 1/z, z ~ U(min, max), min ≥ 1 (1: no zoom);
- seed: the transforms' own seed, apart from the run's, so runs trained with other seeds meet the same faces.
A moved face is scaled, then rotated about the image centre, then shifted (`geometric.similarity`), and
resampled by `geometric.warp`: bilinear, reflection padding (no black borders), as StyleGANEX's coach pads.

Each face's transform is a pure function of `seed` and its index in its split: counter-based uniforms
(splitmix64 in int64 tensor ops on the batch's device, exact on any device) rather than a generator's
stream, so it is the same in every run, on every device and at every batch size, with no loop over samples.
Validation and test faces of the same index move alike. The batch's `boxes` move with the faces
(`geometric.warp_boxes`: the box around the moved corners); a paired test set (LQ and HQ folders) has its LQ
moved by the same matrices, after its degradation rather than before.
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields

import torch

from facezoo.datamodules.batch import BOXES, HQ, LQ
from facezoo.datamodules.geometric import similarity, warp, warp_boxes
from facezoo.utils.errors import ConfigError

OPTION = "datamodule.unaligned"
MAX_ROTATE = 45.0  # degrees
_DRAWS = 5  # uniforms per face: moved?, shift x, shift y, rotation, zoom


def _signed(value: int) -> int:
    return value - 2**64 if value >= 2**63 else value


_GOLDEN, _M1, _M2 = (_signed(c) for c in (0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB))


def _shr(x: torch.Tensor, bits: int) -> torch.Tensor:
    """Logical right shift of int64 (torch's >> keeps the sign)."""
    return (x >> bits) & ((1 << (64 - bits)) - 1)


def _splitmix64(x: torch.Tensor) -> torch.Tensor:
    """Steele et al.'s SplitMix64 finaliser of int64 counters (products wrap modulo 2⁶⁴)."""
    z = x + _GOLDEN
    z = (z ^ _shr(z, 30)) * _M1
    z = (z ^ _shr(z, 27)) * _M2
    return z ^ _shr(z, 31)


def uniforms(seed: int, index: torch.Tensor, count: int) -> torch.Tensor:
    """(B, count) float32 uniforms in [0, 1), a pure function of (seed, index (B,), column)."""
    key = _splitmix64(torch.tensor(_signed(seed % 2**64), dtype=torch.int64, device=index.device))
    counters = index.long()[:, None] * count + torch.arange(count, device=index.device)
    bits = _shr(_splitmix64(key ^ _splitmix64(counters)), 40)  # the top 24 bits: exact in float32
    return bits.float() / 2.0**24


@dataclass(frozen=True)
class Unaligned:
    """The `datamodule.unaligned` options (module docstring); called on a batch, moves its faces."""

    prob: float = 0.0
    shift: float = 0.125
    rotate: float = 30.0
    zoom_out: tuple[float, float] = (1.0, 1.25)
    seed: int = 0

    @classmethod
    def from_config(cls, options) -> "Unaligned":
        """From the `datamodule.unaligned` mapping (None: off), each value checked with a one-line error."""
        if options is None:
            return cls()
        if not isinstance(options, Mapping):
            raise ConfigError(f"{OPTION}={options!r}: expected a mapping of {', '.join(cls._names())}")
        unknown = sorted(set(options) - set(cls._names()))
        if unknown:
            raise ConfigError(
                f"{OPTION}.{unknown[0]}: unknown option (expected {', '.join(cls._names())})"
            )
        values = dict(options)
        for name in ("prob", "shift", "rotate"):
            if name in values:
                values[name] = _number(values[name], name)
        if "seed" in values and (isinstance(values["seed"], bool) or not isinstance(values["seed"], int)):
            raise ConfigError(f"{OPTION}.seed={values['seed']!r}: expected an integer")
        if "zoom_out" in values:
            zoom = values["zoom_out"]
            if isinstance(zoom, str | bytes) or not hasattr(zoom, "__len__") or len(zoom) != 2:
                raise ConfigError(f"{OPTION}.zoom_out={zoom!r}: expected [min, max] with 1 <= min <= max")
            values["zoom_out"] = tuple(_number(z, "zoom_out") for z in zoom)
        unaligned = cls(**values)
        unaligned._check()
        return unaligned

    @classmethod
    def _names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    def _check(self) -> None:
        low, high = self.zoom_out
        checks = (
            ("prob", self.prob, 0 <= self.prob <= 1, "a probability in [0, 1]"),
            ("shift", self.shift, 0 <= self.shift <= 0.5, "a fraction of the image side in [0, 0.5]"),
            ("rotate", self.rotate, 0 <= self.rotate <= MAX_ROTATE, f"degrees in [0, {MAX_ROTATE:g}]"),
            ("zoom_out", list(self.zoom_out), 1 <= low <= high, "[min, max] with 1 <= min <= max"),
        )
        for name, value, ok, expected in checks:
            if not ok:
                raise ConfigError(f"{OPTION}.{name}={value}: expected {expected}")

    @property
    def enabled(self) -> bool:
        return self.prob > 0

    def matrices(self, index: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """(B, 3, 3) forward transforms (`geometric.similarity`) of the faces of split indices `index` (B,);
        a face not drawn (prob) gets the identity, which `warp` leaves untouched."""
        u = uniforms(self.seed, index, _DRAWS)
        moved = u[:, 0] < self.prob
        side = torch.tensor([width, height], device=index.device) / min(height, width)
        shift = (u[:, 1:3] * 2 - 1) * self.shift * 2 * side  # a side spans 2·side/shorter side frame units
        angle = (u[:, 3] * 2 - 1) * math.radians(self.rotate)
        low, high = self.zoom_out
        scale = 1 / (low + (high - low) * u[:, 4])
        return similarity(shift * moved[:, None], angle * moved, torch.where(moved, scale, 1.0))

    def __call__(self, batch: dict) -> dict:
        """The batch with its `hq` (and `lq`, `boxes` when there) moved; it needs the loaders' `index`."""
        hq = batch[HQ]
        matrices = self.matrices(batch["index"].to(hq.device), *hq.shape[-2:])
        out = {**batch, HQ: warp(hq, matrices)}
        if LQ in batch:
            out[LQ] = warp(batch[LQ], matrices)
        if BOXES in batch:
            out[BOXES] = warp_boxes(batch[BOXES], matrices, *hq.shape[-2:])
        return out


def _number(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{OPTION}.{name}={value!r}: expected a number")
    return float(value)
