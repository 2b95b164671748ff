"""Feature matching: the generator's output should give the discriminator's intermediate features of the real
image. GPEN's L_F (Yang et al., CVPR 2021, Eq. 2): Σ_i ‖D_i(X) − D_i(X̂)‖ over D's layers i. The paper writes
the L2 norm without a normalisation; `mse` averages the squared difference over each feature map, as the
perceptual losses do (`l1` the absolute one). The real features are targets (detached).
"""

import torch
from torch import nn

from facezoo.losses.perceptual import CRITERIA
from facezoo.utils.errors import ConfigError


class FeatureMatchingLoss(nn.Module):
    def __init__(self, criterion: str = "mse") -> None:
        super().__init__()
        if criterion not in CRITERIA:
            raise ConfigError(f"fm criterion must be one of {list(CRITERIA)}, got {criterion!r}")
        self.criterion = CRITERIA[criterion]

    def forward(self, fake_features: list[torch.Tensor], real_features: list[torch.Tensor]) -> torch.Tensor:
        return sum(
            self.criterion(f, r.detach()) for f, r in zip(fake_features, real_features, strict=True)
        )
