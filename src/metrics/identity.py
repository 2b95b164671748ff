"""Identity similarity: the mean cosine similarity of ArcFace embeddings of restored and ground-truth faces
(the "identity" / IDS score that blind face restoration papers report, with GFP-GAN's identity network).

The network and its input preprocessing are given (for GFP-GAN: `ResNetArcFace` on `gfpgan_identity_input`'s
(B, 1, 128, 128) gray faces), so metrics import no model. The network is held by `Frozen`, as every frozen
pretrained helper: never trained, never written into Lightning checkpoints, moved with the metric; it also
follows the images' device at `update`.
"""

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import Metric

from facezoo.losses.frozen import Frozen


class IdentitySimilarity(Metric):
    """Mean cosine similarity between ``net(preprocess(preds))`` and the same of ``target``, over
    all image pairs seen (1 = same embedding direction; higher is better).

    ``net`` is put in eval mode with gradients off (a frozen, pretrained ArcFace) and always run in eval mode
    under ``torch.no_grad``. States: ``similarity_sum`` and ``count``, both summed across processes.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    similarity_sum: Tensor
    count: Tensor

    def __init__(self, net: nn.Module, preprocess: Callable[[Tensor], Tensor], **kwargs) -> None:
        super().__init__(**kwargs)
        self.preprocess = preprocess
        self.frozen = Frozen(net)
        self.add_state("similarity_sum", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0), dist_reduce_fx="sum")

    @property
    def network(self) -> nn.Module:
        """The frozen identity network."""
        return self.frozen.net

    def update(self, preds: Tensor, target: Tensor) -> None:
        """Add a batch of restored / ground-truth pairs, ``(B, 3, H, W)`` RGB in [-1, 1]."""
        if preds.shape != target.shape or preds.ndim != 4 or preds.shape[1] != 3:
            raise ValueError(
                "IdentitySimilarity: expected two (B, 3, H, W) images, "
                f"got {tuple(preds.shape)} and {tuple(target.shape)}"
            )
        self.frozen.to(preds.device)
        dtype = next(self.network.parameters()).dtype
        with torch.no_grad():
            pair = torch.cat([preds, target]).detach().to(dtype)
            restored, truth = self.frozen(self.preprocess(pair)).chunk(2)
            similarity = F.cosine_similarity(restored, truth, dim=1)
        self.similarity_sum += similarity.double().sum()
        self.count += similarity.numel()

    def compute(self) -> Tensor:
        """Mean cosine similarity over all image pairs seen (NaN before any update)."""
        return (self.similarity_sum / self.count).float()
