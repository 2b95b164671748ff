"""Per-sample parameter draws of the synthetic faces: every sample draws from its own `torch.Generator`,
seeded by (seed, index, salt), so a face is the same whichever batch it is made in."""

import numpy as np
import torch
from torch import Tensor


def as_indices(indices) -> Tensor:
    idx = torch.as_tensor(list(indices) if not isinstance(indices, Tensor) else indices, dtype=torch.long)
    if idx.dim() != 1:
        raise ValueError(f"indices must be a 1-D sequence of ints, got shape {tuple(idx.shape)}")
    return idx.cpu()


def _generator(seed: int, index: int, salt: int) -> torch.Generator:
    """A generator whose stream depends only on (seed, index, salt), well mixed by numpy's SeedSequence."""
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(seed) >> 32 & 0xFFFFFFFF, int(index), salt])
    return torch.Generator().manual_seed(int(state.generate_state(1, dtype=np.uint64)[0]) & (2**63 - 1))


def uniforms(indices: Tensor, seed: int, salt: int, n: int) -> Tensor:
    """(B, n) uniforms in [0, 1); row b comes from sample b's own generator (the only per-sample loop)."""
    rows = [torch.rand(n, generator=_generator(seed, int(i), salt)) for i in indices]
    return torch.stack(rows) if rows else torch.zeros(0, n)


class Draw:
    """Hands out the columns of a (B, N) uniform table in a fixed order, mapped to ranges."""

    def __init__(self, u: Tensor) -> None:
        self.u, self.col = u, 0

    def raw(self) -> Tensor:
        if self.col >= self.u.shape[1]:
            raise RuntimeError("synthetic: more parameter draws than reserved columns")
        self.col += 1
        return self.u[:, self.col - 1]

    def __call__(self, lo: float, hi: float) -> Tensor:
        return lo + (hi - lo) * self.raw()

    def pick(self, palette, jitter: float = 0.0) -> Tensor:
        """A palette row per sample (B, 3), scaled by a random factor in [1 - jitter, 1 + jitter]."""
        table = torch.tensor(palette, dtype=torch.float32)
        choice = table[(self.raw() * len(table)).long().clamp(max=len(table) - 1)]
        return (choice * self(1 - jitter, 1 + jitter)[:, None]).clamp(0, 1)

    def blend(self, palette) -> Tensor:
        """A colour on the piecewise-linear path through the palette rows (B, 3)."""
        table = torch.tensor(palette, dtype=torch.float32)
        t = self.raw() * (len(table) - 1)
        i = t.floor().long().clamp(max=len(table) - 2)
        return torch.lerp(table[i], table[i + 1], (t - i)[:, None])

    def colour(self, lo: float, hi: float) -> Tensor:
        return torch.stack([self(lo, hi) for _ in range(3)], dim=1)
