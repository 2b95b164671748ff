"""The semi-supervised split of a retouching training set by the paired ratio γ.

One permutation of the identities, drawn from the split's own seed (never the run seed), decides
everything: the first ceil(γ·N) identities are paired; every later identity keeps a fixed unpaired role
given by the parity of its position (even → unpaired raw, odd → unpaired retouched). Hence
- paired subsets are nested across γ (γ=0.01 ⊂ 0.1 ⊂ 0.2 ⊂ 1),
- unpaired raw and unpaired retouched images never share an identity, nor with the paired subset,
- the split is a pure function of (identities, γ, seed): identical on every DDP rank, no broadcast needed.
The released RetouchFormer code instead reuses the paired images as its "unpaired" set; this split does not.
"""

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from facezoo.utils.atomic import write_text
from facezoo.utils.errors import ConfigError


@dataclass(frozen=True)
class SemiSupervisedSplit:
    gamma: float
    seed: int
    paired: tuple[str, ...]
    unpaired_raw: tuple[str, ...]
    unpaired_retouched: tuple[str, ...]

    def sizes(self) -> dict[str, int]:
        return {k: len(getattr(self, k)) for k in ("paired", "unpaired_raw", "unpaired_retouched")}

    def write(self, path: str | Path) -> Path:
        record = {"gamma": self.gamma, "seed": self.seed, "sizes": self.sizes(), **asdict(self)}
        return write_text(path, json.dumps(record, indent=1))


def check_gamma(gamma: float) -> float:
    if isinstance(gamma, bool) or not isinstance(gamma, int | float) or not 0.0 < float(gamma) <= 1.0:
        raise ConfigError(f"split.gamma={gamma!r}: expected the paired ratio as a number with 0 < gamma <= 1")
    return float(gamma)


def make_split(identities: Sequence[str], gamma: float, seed: int) -> SemiSupervisedSplit:
    gamma = check_gamma(gamma)
    ids = sorted(identities)
    if not ids:
        raise ConfigError("the training set is empty: nothing to split")
    order = torch.randperm(len(ids), generator=torch.Generator().manual_seed(int(seed))).tolist()
    n_paired = min(len(ids), max(1, math.ceil(gamma * len(ids) - 1e-9)))
    rest = range(n_paired, len(ids))
    return SemiSupervisedSplit(
        gamma=gamma,
        seed=int(seed),
        paired=tuple(ids[order[i]] for i in range(n_paired)),
        unpaired_raw=tuple(ids[order[i]] for i in rest if i % 2 == 0),
        unpaired_retouched=tuple(ids[order[i]] for i in rest if i % 2 == 1),
    )
