"""Identity losses: the distance between face-recognition embeddings of the restored and the ground-truth
face, from a frozen pretrained network `net` (the target's embedding under no_grad; gradients reach only the
restoration).

- `cosine`: 1 − ⟨e(fake), e(real)⟩, batch mean, for a network whose embeddings are unit vectors: GPEN's
  `IDLoss` (yangxy/GPEN training/loss/id_loss.py, train_simple.py) with IR-SE50 on `gpen_identity_crop`s.
- `l1`: L1 distance of the embeddings: GFP-GAN's identity loss (gfpgan_model.py, `identity_weight`) with its
  ArcFace ResNet-18 on `gfpgan_identity_input` (gray 128 px faces).

`preprocess` maps (B, 3, H, W) images in [-1, 1] to the network's input. The network and its preprocessing
live with the architectures (models/components/arcface.py); the owner loads the weights.
"""

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from facezoo.losses.frozen import Frozen
from facezoo.utils.errors import ConfigError

DISTANCES = ("cosine", "l1")


class IdentityLoss(nn.Module):
    def __init__(
        self, net: nn.Module, preprocess: Callable[[torch.Tensor], torch.Tensor], distance: str
    ) -> None:
        super().__init__()
        if distance not in DISTANCES:
            raise ConfigError(f"identity loss distance must be one of {DISTANCES}, got {distance!r}")
        self.net, self.preprocess, self.distance = Frozen(net), preprocess, distance

    def forward(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target = self.net(self.preprocess(real))
        embedding = self.net(self.preprocess(fake))
        if self.distance == "cosine":
            return (1 - (embedding * target).sum(1)).mean()
        return F.l1_loss(embedding, target)
