"""One ready batch served `n` times per epoch: for benchmarks and overfitting checks."""

import pytorch_lightning as pl


class _Repeat:
    def __init__(self, batch: dict, n: int) -> None:
        self.batch, self.n = batch, n

    def __iter__(self):
        return iter([self.batch] * self.n)

    def __len__(self) -> int:
        return self.n


class RepeatedBatchDataModule(pl.LightningDataModule):
    def __init__(self, batch: dict, n: int) -> None:
        super().__init__()
        self.batch, self.n = batch, n

    def train_dataloader(self):
        return _Repeat(self.batch, self.n)
