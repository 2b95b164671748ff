"""A resumable, rank-aware sampler that draws from several subsets at once.

Each draw is a tuple (draw_id, i_0, i_1, ...) with one index per subset: an epoch is `length` draws, each
subset walks through its own seeded permutations (a shorter subset starts a fresh permutation when it runs
out), and `draw_id = epoch * length + position` is unique over the whole run. The order depends only on
(seed, epoch), so a run resumed mid-epoch continues with exactly the batches it would have seen
(`resume_at(draw_id)`). Under DDP each rank takes every world_size-th draw, so ranks never overlap.
"""

from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Sampler


class MultiSubsetSampler(Sampler):
    def __init__(
        self,
        sizes: Sequence[int],
        seed: int,
        length: int | None = None,
        shuffle: bool = True,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if not sizes or min(sizes) < 1:
            raise ValueError(f"every subset needs at least one item, got sizes {list(sizes)}")
        self.sizes = [int(n) for n in sizes]
        self.seed = int(seed)
        self.length = int(length or max(self.sizes))
        self.shuffle = shuffle
        self.rank, self.world_size = rank, world_size
        self.epoch = 0
        self._resume: tuple[int, int] | None = None

    def set_epoch(self, epoch: int) -> None:  # called by Lightning at the start of every epoch
        self.epoch = int(epoch)

    def resume_at(self, next_draw_id: int) -> None:
        """Start the epoch holding `next_draw_id` at that draw (used once, after a checkpoint restore)."""
        self._resume = divmod(int(next_draw_id), self.length)

    def _order(self, subset: int) -> torch.Tensor:
        n = self.sizes[subset]
        repeats = -(-self.length // n)
        if not self.shuffle:
            return torch.arange(self.length) % n
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch * 101 + subset)
        return torch.cat([torch.randperm(n, generator=gen) for _ in range(repeats)])[: self.length]

    def __iter__(self) -> Iterator[tuple[int, ...]]:
        start = 0
        if self._resume is not None and self._resume[0] == self.epoch:
            start = self._resume[1]
            self._resume = None
        # evaluation order ignores the epoch, so its draw ids (and the seeds derived from them) never change
        columns = [torch.arange(self.length) + (self.epoch * self.length if self.shuffle else 0)]
        columns += [self._order(s) for s in range(len(self.sizes))]
        table = torch.stack(columns, dim=1)[start:][self.rank :: self.world_size]
        return iter(tuple(row) for row in table.tolist())

    def __len__(self) -> int:
        return len(range(self.rank, self.length, self.world_size))
