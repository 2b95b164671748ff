"""Latent editing directions in StyleGAN's W / W+ space, InterFaceGAN style.

Shen et al., "Interpreting the Latent Space of GANs for Semantic Face Editing" (CVPR 2020): an attribute that
a linear boundary separates in W is edited by moving w along the boundary's unit normal. StyleGANEX (Yang et
al., ICCV 2023) applies such directions unchanged to its W+ codes (`video_editing.py` adds
`editing_w · scale_factor` to every code).

- `load_direction(path, n_latent, style_dim)`: a `.npy` / `.pt` file holding (S,), (1, S), (L, S) or
  (1, L, S) → (L, S) float tensor; anything else is one `DataError` line.
- `save_direction(path, direction)`: the inverse (atomic write; `.npy` or `.pt`).
- `edit(w_plus, direction, strength)`: w+ + strength · direction, the same offset at every layer for a W
  direction.
- `fit_direction(generator, attribute_fn, samples, seed)`: a direction of one's own. Samples z → w, draws
  the faces, measures `attribute_fn` on them and fits InterFaceGAN's `train_boundary` (utils/manipulator.py):
  the codes are sorted by score, the top and bottom `chosen_num_or_ratio` (default 0.02, at most half each)
  are the positives and negatives, each split `split_ratio` (0.7) train / rest validation, a linear SVM is
  trained on the train part and its weight vector, normalised to unit length, is the normal. The official
  code uses scikit-learn's `SVC(kernel='linear')` (hinge loss, C = 1); here the primal L2-SVM (squared
  hinge, C = 1, unregularised intercept; scikit-learn's `LinearSVC` loss) is minimised by full-batch L-BFGS
  in float64, so no solver library is needed and the fit is deterministic. Positives are the high scores,
  so the normal points the way the attribute increases.
- `face_brightness(images)`: an attribute every generator has, trained or random: the mean Rec. 601 luma
  of the face region of an aligned crop (an ellipse around the centre). It follows lighting and skin tone
  and is measurable at 32–64 px.
"""

import logging
import os
import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from facezoo.checkpoints import save_checkpoint
from facezoo.utils.atomic import atomic_file
from facezoo.utils.errors import DataError

log = logging.getLogger(__name__)

SUFFIXES = (".npy", ".pt", ".pth")
LUMA = (0.299, 0.587, 0.114)  # Rec. 601


def _read(path: Path):
    if path.suffix == ".npy":
        return torch.from_numpy(np.load(path, allow_pickle=False))
    return torch.load(path, map_location="cpu", weights_only=True)


def load_direction(path: str | os.PathLike, n_latent: int, style_dim: int) -> torch.Tensor:
    """An editing direction file → (n_latent, style_dim) float32; a W direction is repeated per layer."""
    path = Path(path)
    expected = (
        f"expected a .npy/.pt file holding one tensor of shape ({style_dim},), (1, {style_dim}), "
        f"({n_latent}, {style_dim}) or (1, {n_latent}, {style_dim})"
    )
    if path.suffix not in SUFFIXES:
        raise DataError(f"{path}: {expected}")
    if not path.is_file():
        raise DataError(f"{path}: editing direction not found; {expected}")
    try:
        value = _read(path)
    except pickle.UnpicklingError as err:
        if "weights only" not in str(err).lower():
            raise DataError(f"{path}: {expected} (not a readable file: UnpicklingError)") from None
        raise DataError(
            f"{path}: {expected} (it holds pickled objects, refused by weights_only loading)"
        ) from None
    except Exception as err:  # numpy / torch raise many types (ValueError, RuntimeError, struct.error, ...)
        reason = (str(err).strip().splitlines() or [""])[0][:100]
        raise DataError(f"{path}: {expected} (not a readable file: {type(err).__name__}: {reason})") from None
    if not isinstance(value, torch.Tensor):
        raise DataError(f"{path}: {expected}, found a {type(value).__name__}")
    shape = tuple(value.shape)
    if shape in ((style_dim,), (1, style_dim)):
        value = value.reshape(1, style_dim).expand(n_latent, style_dim)
    elif shape in ((n_latent, style_dim), (1, n_latent, style_dim)):
        value = value.reshape(n_latent, style_dim)
    else:
        raise DataError(f"{path}: {expected}, found shape {shape}")
    if not value.is_floating_point() or not torch.isfinite(value).all():
        raise DataError(f"{path}: {expected} of finite floats, found {value.dtype} or non-finite values")
    return value.float().contiguous()


def save_direction(path: str | os.PathLike, direction: torch.Tensor) -> None:
    """Write `direction` to a `.npy` (NumPy) or `.pt` / `.pth` (one tensor) file, atomically."""
    path = Path(path)
    if path.suffix not in SUFFIXES:
        raise DataError(f"{path}: an editing direction is saved as .npy, .pt or .pth")
    direction = direction.detach().float().cpu()
    if path.suffix != ".npy":
        save_checkpoint(direction, path)
        return
    with atomic_file(path) as f:
        np.save(f, direction.numpy())


def edit(w_plus: torch.Tensor, direction: torch.Tensor, strength: float | torch.Tensor) -> torch.Tensor:
    """w+ (B, L, S) moved by `strength` (a number, or one per sample) along `direction` (S,) or (L, S)."""
    strength = torch.as_tensor(strength, dtype=w_plus.dtype, device=w_plus.device).reshape(-1, 1, 1)
    return w_plus + strength * direction.to(w_plus)


def face_brightness(images: torch.Tensor) -> torch.Tensor:
    """Mean luma (in [-1, 1]) of the face region of aligned crops (B, 3, H, W) in [-1, 1] → (B,): an ellipse
    centred at (0.5 W, 0.55 H) with semi-axes 0.3 W × 0.38 H, about the skin of an FFHQ-aligned face."""
    h, w = images.shape[-2:]
    y = (torch.arange(h, device=images.device) + 0.5) / h
    x = (torch.arange(w, device=images.device) + 0.5) / w
    mask = ((x[None] - 0.5) / 0.3) ** 2 + ((y[:, None] - 0.55) / 0.38) ** 2 <= 1
    luma = torch.einsum("bchw,c->bhw", images.clamp(-1, 1), images.new_tensor(LUMA))
    return luma[:, mask].mean(1)


@torch.no_grad()
def sample_attribute(
    generator: nn.Module, attribute_fn: Callable[[torch.Tensor], torch.Tensor], samples: int, batch_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """`samples` codes w (N, S) from random z and the attribute of their faces (N,), drawn with the
    generator's stored noise (noise from the current RNG for GPEN's concat generators, which store none)."""
    device = next(generator.parameters()).device
    codes, scores = [], []
    for start in range(0, samples, batch_size):
        z = torch.randn(min(batch_size, samples - start), generator.style_dim, device=device)
        w = generator.get_latent(z)
        image, _ = generator([w], input_is_latent=True, randomize_noise=generator.isconcat)
        codes.append(w.cpu())
        scores.append(attribute_fn(image).reshape(-1).cpu())
    return torch.cat(codes), torch.cat(scores)


def linear_svm(
    x: torch.Tensor, labels: torch.Tensor, c: float = 1.0, max_iter: int = 500
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights a (S,) and intercept b of a primal L2-SVM on labels y = ±1 (from 1 / 0), by L-BFGS:
    min ½‖a‖² + C Σ max(0, 1 − y(a·x + b))²."""
    x, y = x.double(), labels.double() * 2 - 1
    a = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS(
        [a, b],
        lr=1,
        max_iter=max_iter,
        tolerance_grad=1e-10,
        tolerance_change=1e-14,
        history_size=20,
        line_search_fn="strong_wolfe",
    )

    def objective() -> torch.Tensor:
        optimizer.zero_grad()
        loss = 0.5 * a.square().sum() + c * (1 - y * (x @ a + b)).clamp(min=0).square().sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(objective)
    return a.detach(), b.detach()


def train_boundary(
    codes: torch.Tensor,
    scores: torch.Tensor,
    chosen_num_or_ratio: float = 0.02,
    split_ratio: float = 0.7,
    seed: int = 0,
) -> torch.Tensor:
    """InterFaceGAN's boundary: unit normal (S,) separating the highest from the lowest scores."""
    order = torch.argsort(scores, descending=True, stable=True)
    codes = codes[order]
    n = len(codes)
    chosen = int(n * chosen_num_or_ratio) if chosen_num_or_ratio <= 1 else int(chosen_num_or_ratio)
    chosen = min(chosen, n // 2)
    train_num = int(chosen * split_ratio)
    if train_num < 1:
        raise ValueError(f"{n} samples × chosen_num_or_ratio {chosen_num_or_ratio}: no training samples")
    rng = torch.Generator().manual_seed(seed)
    positive = codes[:chosen][torch.randperm(chosen, generator=rng)]
    negative = codes[n - chosen :][torch.randperm(chosen, generator=rng)]
    x = torch.cat([positive[:train_num], negative[:train_num]])
    labels = torch.cat([torch.ones(train_num), torch.zeros(train_num)])
    a, b = linear_svm(x, labels)
    if chosen > train_num:
        val = torch.cat([positive[train_num:], negative[train_num:]]).double()
        predicted = (val @ a + b > 0).long()
        truth = torch.cat([torch.ones(chosen - train_num), torch.zeros(chosen - train_num)]).long()
        accuracy = (predicted == truth).float().mean().item()
        log.info("boundary validation accuracy %.3f on %d codes", accuracy, len(val))
    return (a / a.norm()).float()


def fit_direction(
    generator: nn.Module,
    attribute_fn: Callable[[torch.Tensor], torch.Tensor] = face_brightness,
    samples: int = 10000,
    seed: int = 0,
    chosen_num_or_ratio: float = 0.02,
    split_ratio: float = 0.7,
    batch_size: int = 64,
) -> torch.Tensor:
    """The unit normal (style_dim,) in W of the boundary of `attribute_fn` on the generator's faces, oriented
    so the attribute increases along it. Deterministic given `seed` (the global RNG is left as it was)."""
    device = next(generator.parameters()).device
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        codes, scores = sample_attribute(generator, attribute_fn, samples, batch_size)
    return train_boundary(codes, scores, chosen_num_or_ratio, split_ratio, seed)
