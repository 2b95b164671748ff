"""LPIPS (Zhang et al., CVPR 2018) with the backbone loaded offline through the weights resolver.

The ``lpips`` package builds offline with ``pnet_rand=True``: its linear heads (``weights/v0.1/*.pth``) ship
in the wheel, and the backbone is torchvision's AlexNet / VGG16 with random weights. The ImageNet backbone is
then loaded from the resolver (``alexnet-owt-7be5be79.pth`` / ``vgg16-397923af.pth``, torchvision layout
``features.N.*``), mapped onto lpips' ``net.slice1..5`` (which keep the torchvision index ``N`` as the layer
name). LPIPS is never computed with a random backbone: ``LPIPS(...)`` raises ``WeightsNotFoundError`` and
``build_lpips`` returns None with a warning.

The inner network is held by `Frozen` (facezoo.losses.frozen, as every frozen pretrained helper of the zoo):
in eval mode, not in ``parameters()`` or ``state_dict()``, so it is neither trained nor written into Lightning
checkpoints; ``.to(device)`` on the metric (or on the LightningModule holding it) moves it along, and it stays
float32 (``keep_dtype``).
"""

from __future__ import annotations

import logging
import os
import warnings

import torch
from torch import Tensor, nn
from torchmetrics import Metric

from facezoo.losses.frozen import Frozen
from facezoo.utils.errors import ConfigError, FacezooError
from facezoo.weights.resolver import KNOWN_WEIGHTS, PRETRAINED_ENV, pretrained_dir, resolve, search_dirs
from facezoo.weights.state_dict import load_state_dict

log = logging.getLogger("facezoo")

# lpips net name -> KNOWN_WEIGHTS key of its torchvision backbone
BACKBONES = {"alex": "alexnet", "vgg": "vgg16"}
_OPTION = "model.lpips_weights=<file>"
_ALIASES = {"alex": "alex", "alexnet": "alex", "vgg": "vgg", "vgg16": "vgg"}


def _net_name(net: str) -> str:
    if net not in _ALIASES:
        raise ConfigError(f"LPIPS net must be one of {sorted(BACKBONES)}, got {net!r}")
    return _ALIASES[net]


def load_backbone(pnet: nn.Module, state: dict, source: str = "state dict", arch: str = "backbone") -> None:
    """Load torchvision ``features.N.*`` weights into an lpips backbone (``slice1..slice5``; others ignored).

    Each lpips slice holds torchvision's layers under their original index, so ``features.N.weight`` goes to
    ``sliceK.N.weight`` for the slice K that holds layer N.
    """
    mapped = {}
    for k in range(1, pnet.N_slices + 1):
        for name in getattr(pnet, f"slice{k}").state_dict():
            source_key = f"features.{name}"
            if source_key not in state:
                raise FacezooError(
                    f"{source}: not a torchvision {arch} state dict (no '{source_key}' weight)"
                )
            mapped[f"slice{k}.{name}"] = state[source_key]
    try:
        pnet.load_state_dict(mapped, strict=True)
    except RuntimeError as err:  # shape mismatch: e.g. a VGG file given for AlexNet
        first = str(err).strip().splitlines()
        raise FacezooError(f"{source}: does not fit the LPIPS {arch} ({first[-1].strip()})") from None


class LPIPS(Metric):
    """Mean LPIPS distance between ``preds`` and ``target``, ``(B, 3, H, W)`` in [-1, 1] (lower is closer).

    Values outside [-1, 1] are clamped (as when an image is saved); values beyond +-2 are an error, since
    they mean the images are not in [-1, 1] at all (e.g. [0, 255]).

    Args:
        net: ``'alex'`` (default, as in the paper's metric) or ``'vgg'``.
        weights_path: explicit backbone file; else the resolver searches the pretrained folder and hub cache.
    Raises:
        WeightsNotFoundError: the backbone file is not found (use ``build_lpips`` to get None instead).
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    score_sum: Tensor
    count: Tensor

    def __init__(self, net: str = "alex", weights_path: str | os.PathLike | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        import lpips as lpips_pkg  # the package, not this module (absolute import)

        self.net_name = _net_name(net)
        path = resolve(BACKBONES[self.net_name], explicit=weights_path, option=_OPTION)
        with warnings.catch_warnings():  # torchvision's 'pretrained' deprecation warnings from inside lpips
            warnings.simplefilter("ignore")
            model = lpips_pkg.LPIPS(net=self.net_name, pretrained=True, pnet_rand=True, verbose=False)
        load_backbone(model.net, load_state_dict(path), source=str(path), arch=BACKBONES[self.net_name])
        self.weights_file = path
        self.frozen = Frozen(model, keep_dtype=True)

        self.add_state("score_sum", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0), dist_reduce_fx="sum")

    @property
    def network(self) -> nn.Module:
        """The frozen ``lpips.LPIPS`` network (backbone under ``.net``)."""
        return self.frozen.net

    def update(self, preds: Tensor, target: Tensor) -> None:
        """Add a batch of image pairs, ``(B, 3, H, W)`` in [-1, 1]."""
        if preds.shape != target.shape or preds.ndim != 4 or preds.shape[1] != 3:
            raise ValueError(
                f"LPIPS: expected two (B, 3, H, W) images, got {tuple(preds.shape)} and {tuple(target.shape)}"
            )
        for name, img in (("preds", preds), ("target", target)):
            if img.numel() and img.detach().abs().max() > 2:
                raise ValueError(f"LPIPS: {name} must be in [-1, 1], got values up to {img.abs().max():.4g}")
        self.frozen.to(preds.device)  # a metric used on its own follows its images
        with torch.no_grad():
            x = preds.detach().float().clamp(-1, 1)
            y = target.detach().float().clamp(-1, 1)
            scores = self.frozen(x, y).flatten()
        self.score_sum += scores.double().sum().to(self.score_sum.device)
        self.count += scores.numel()

    def compute(self) -> Tensor:
        """Mean LPIPS over all image pairs seen (NaN before any update)."""
        return (self.score_sum / self.count).float()


def build_lpips(net: str = "alex", weights_path: str | os.PathLike | None = None) -> LPIPS | None:
    """An ``LPIPS`` metric, or None (with a WARNING) when the backbone file is not found.

    A wrong explicit ``weights_path`` still raises ``WeightsNotFoundError``: the user asked for that file.
    """
    if weights_path is None or str(weights_path) == "":
        spec = KNOWN_WEIGHTS[BACKBONES[_net_name(net)]]
        if resolve(spec.key, required=False) is None:
            log.warning(
                "LPIPS unavailable (not computed): its backbone %s is not in %s. Put it in %s/ (the folder "
                "$%s names, default ./pretrained) or set %s; model.lpips_net=null turns LPIPS off.",
                spec.filename, ", ".join(map(str, search_dirs())), pretrained_dir(), PRETRAINED_ENV, _OPTION,
            )
            return None
    return LPIPS(net=net, weights_path=weights_path)
