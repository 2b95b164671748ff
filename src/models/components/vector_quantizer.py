"""Vector quantizer for the RetouchFormer clean-face dictionary P = {ρ_1, ..., ρ_K} (paper Sec. 3.1).

Every encoder feature E(y)|(i,j) is replaced by its nearest code, ρ* = argmin_k ‖E(y)|(i,j) − ρ_k‖²₂
(van den Oord et al. 2017, "Neural discrete representation learning"). The official RetouchFormer code uses
the RestoreFormer/VQGAN quantizer (K = 1024, C = 256, β = 0.25, loss-based), whose codebook key is
`quantize.embedding.weight`; the paper's μ = 0.99 suggests an EMA dictionary, so both updates are offered.

Design choices:

* Nearest code: the expanded distance ‖z‖² − 2 z·ρ_k + ‖ρ_k‖² is evaluated on chunks of `chunk_size`
  positions (the ‖z‖² term is constant per position and does not change the argmin, so it is skipped);
  memory stays at chunk_size × K floats however large the feature map. Distances are computed in float32
  without gradient.
* `update="loss"`: `embedding.weight` is a Parameter (K, C), init U(−1/K, 1/K); the loss is the VQ-VAE
  objective ‖sg[z] − ρ*‖² + β‖z − sg[ρ*]‖² (means over all elements, as in VQGAN; the paper's L_prior sums).
* `update="ema"` (van den Oord 2017 appendix A.1, Razavi et al. 2019): `embedding.weight` is a buffer;
  in training N_k ← d N_k + (1−d) n_k, m_k ← d m_k + (1−d) Σ_{z→k} z and ρ_k = m_k / N̂_k with the
  Laplace-smoothed N̂_k = (N_k + ε) / (Σ N + K ε) · Σ N. N starts at 1 and m at the initial codebook, so
  an unused code keeps its value instead of collapsing. The loss is the commitment term β‖z − sg[ρ*]‖² only.
* Distributed training: when `torch.distributed` is initialised, the per-batch counts n_k and sums are
  all-reduced (summed) before any update, so every rank sees the same statistics and keeps the same
  codebook, usage and dead-code set.
* Dead codes: `usage` is an EMA (decay d) of the per-batch counts in both modes. It starts at the
  threshold, so a code unused for one batch is dead: the first training batch therefore re-seeds every
  code it does not use from the data, like a data-dependent init. A restarted code gets usage
  `RESTART_GRACE` × threshold, i.e. about ln(10) / (1 − d) batches (230 at d = 0.99) to be chosen. In
  training, every `restart_every` calls, codes with usage below `dead_code_threshold` are re-initialised
  from encoder outputs of the current batch chosen uniformly at random (without replacement when the batch
  is large enough) plus Gaussian noise of 1e-3·std(z) so that two restarts never coincide; under DDP the
  new codes of rank 0 are broadcast. In EMA mode a restarted code also gets N_k = 1 and m_k = ρ_k; in loss
  mode the optimizer moments of its row are left as they are. The threshold is an absolute count per
  (global) batch: with few tokens per batch (e.g. batch 1 at 16×16 = 256 tokens for K = 1024) lower it,
  or set it to 0 to disable restarts.
* Restarts and EMA updates act after the current batch has been quantized: the output always uses the
  codebook as it was at the start of the call. Nothing changes in eval mode, nor (loss mode) when
  `embedding.weight.requires_grad` is False, so a frozen pretrained dictionary (the official setting) is
  never re-seeded. A pretrained EMA dictionary should be used with dead_code_threshold=0 or in eval mode.
* `usage`, `num_updates` (and in EMA mode `cluster_size` = 1, `embed_sum` = codebook) are optional when
  loading a state dict, so a checkpoint holding only `embedding.weight` (e.g. the official
  `quantize.embedding.weight`) loads strictly.
"""

from typing import Literal

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

_RESTART_NOISE = 1e-3
RESTART_GRACE = 10.0  # a restarted code's usage, in units of the threshold


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


class _BufferCodebook(nn.Module):
    """Holds the EMA codebook as a buffer named `weight`, so both modes share the key `embedding.weight`."""

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("weight", weight)


class VectorQuantizer(nn.Module):
    """Nearest-code quantization of (B, C, H, W) features with a K × C codebook (see the module docstring).

    forward(z) returns a dict: `quantized` (B, C, H, W) straight-through z + sg[ρ* − z]; `loss` (scalar);
    `codebook_loss` and `commitment_loss` (scalars, unweighted; codebook_loss is 0 in EMA mode);
    `indices` (B, H, W) long; `perplexity` (scalar) exp(entropy) of the code histogram of this batch.
    """

    def __init__(
        self,
        num_codes: int = 1024,
        dim: int = 256,
        beta: float = 0.25,
        update: Literal["loss", "ema"] = "loss",
        decay: float = 0.99,
        eps: float = 1e-5,
        dead_code_threshold: float = 1.0,
        restart_every: int = 1,
        chunk_size: int = 8192,
    ) -> None:
        super().__init__()
        if update not in ("loss", "ema"):
            raise ValueError(f"VectorQuantizer update={update!r}: expected 'loss' or 'ema'")
        if restart_every < 1 or chunk_size < 1:
            raise ValueError("VectorQuantizer: restart_every and chunk_size must be >= 1")
        self.num_codes, self.dim, self.beta, self.update = num_codes, dim, beta, update
        self.decay, self.eps = decay, eps
        self.dead_code_threshold, self.restart_every = dead_code_threshold, restart_every
        self.chunk_size = chunk_size
        init = torch.empty(num_codes, dim).uniform_(-1.0 / num_codes, 1.0 / num_codes)
        if update == "loss":
            self.embedding = nn.Embedding(num_codes, dim, _weight=init)
        else:
            self.embedding = _BufferCodebook(init)
            self.register_buffer("cluster_size", torch.ones(num_codes))
            self.register_buffer("embed_sum", init.clone())
        self.register_buffer("usage", torch.full((num_codes,), float(dead_code_threshold)))
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))

    @property
    def codebook(self) -> torch.Tensor:
        """The (K, C) codebook tensor (a Parameter in loss mode, a buffer in EMA mode)."""
        return self.embedding.weight

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        for name in ("usage", "num_updates"):
            state_dict.setdefault(prefix + name, getattr(self, name))
        weight = state_dict.get(prefix + "embedding.weight")
        if self.update == "ema" and weight is not None:  # EMA statistics consistent with a bare codebook
            counts = state_dict.setdefault(prefix + "cluster_size", torch.ones_like(self.cluster_size))
            state_dict.setdefault(prefix + "embed_sum", weight * counts[:, None].to(weight))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @torch.no_grad()
    def nearest(self, flat: torch.Tensor) -> torch.Tensor:
        """Indices (N,) of the nearest codes for vectors (N, C), chunked over N."""
        codes = self.codebook.detach().float()
        code_sq = codes.pow(2).sum(1)
        out = [
            torch.addmm(code_sq, chunk, codes.t(), alpha=-2.0).argmin(1)
            for chunk in flat.detach().float().split(self.chunk_size)
        ]
        return torch.cat(out) if out else flat.new_zeros(0, dtype=torch.long)

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """Codes for indices (B, H, W) as a (B, C, H, W) tensor."""
        return F.embedding(indices, self.codebook).permute(0, 3, 1, 2).contiguous()

    def forward(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        if z.ndim != 4 or z.shape[1] != self.dim:
            raise ValueError(f"VectorQuantizer expects (B, {self.dim}, H, W), got {tuple(z.shape)}")
        b, _, h, w = z.shape
        flat = z.detach().permute(0, 2, 3, 1).reshape(-1, self.dim).float()
        idx = self.nearest(flat)
        indices = idx.view(b, h, w)
        z_q = self.lookup(indices).to(z.dtype)

        commitment = F.mse_loss(z, z_q.detach())
        if self.update == "loss":
            codebook_loss = F.mse_loss(z_q, z.detach())
        else:
            codebook_loss = z.new_zeros(())
        loss = codebook_loss + self.beta * commitment

        counts = torch.bincount(idx, minlength=self.num_codes).float()
        probs = counts / counts.sum().clamp_min(1.0)
        perplexity = torch.exp(-(probs * torch.log(probs.clamp_min(1e-10))).sum())

        frozen = self.update == "loss" and not self.codebook.requires_grad
        if self.training and not frozen:
            self._train_step(flat, idx, counts)
        quantized = z + (z_q - z).detach()
        return {
            "quantized": quantized,
            "loss": loss,
            "codebook_loss": codebook_loss,
            "commitment_loss": commitment,
            "indices": indices,
            "perplexity": perplexity,
        }

    @torch.no_grad()
    def _train_step(self, flat: torch.Tensor, idx: torch.Tensor, counts: torch.Tensor) -> None:
        """EMA codebook update, usage tracking and dead-code restarts (training mode only)."""
        d = self.decay
        if self.update == "ema":
            sums = torch.zeros(self.num_codes, self.dim, device=flat.device).index_add_(0, idx, flat)
            stats = torch.cat([counts[:, None], sums], 1)
            if _distributed():
                dist.all_reduce(stats)
            counts, sums = stats[:, 0], stats[:, 1:]
            self.cluster_size.mul_(d).add_(counts, alpha=1 - d)
            self.embed_sum.mul_(d).add_(sums, alpha=1 - d)
            total = self.cluster_size.sum()
            smoothed = (self.cluster_size + self.eps) / (total + self.num_codes * self.eps) * total
            self.codebook.copy_(self.embed_sum / smoothed[:, None])
        elif _distributed():
            counts = counts.clone()
            dist.all_reduce(counts)
        self.usage.mul_(d).add_(counts, alpha=1 - d)
        self.num_updates += 1
        if self.dead_code_threshold > 0 and int(self.num_updates) % self.restart_every == 0:
            self._restart_dead_codes(flat)

    @torch.no_grad()
    def _restart_dead_codes(self, flat: torch.Tensor) -> None:
        dead = (self.usage < self.dead_code_threshold).nonzero().squeeze(1)
        if dead.numel() == 0 or flat.shape[0] == 0:
            return
        n = flat.shape[0]
        if n >= dead.numel():
            pick = torch.randperm(n, device=flat.device)[: dead.numel()]
        else:
            pick = torch.randint(n, (dead.numel(),), device=flat.device)
        new = flat[pick]
        new = new + _RESTART_NOISE * flat.std(correction=0) * torch.randn_like(new)
        if _distributed():
            dist.broadcast(new, src=0)
        new = new.to(self.codebook.dtype)
        self.codebook.data[dead] = new
        self.usage[dead] = RESTART_GRACE * self.dead_code_threshold
        if self.update == "ema":
            self.cluster_size[dead] = 1.0
            self.embed_sum[dead] = new
