"""RetouchFormer's transformer T of Selective Self-Attention Blocks (SSAB), paper Sec. 3.3.

With encoder tokens f_E and the imperfection weighting map f_H ∈ [0, 1] (1 = imperfection):

    Q = W_q(f_E ⊗ f_H) + b_q,   K = W_k(f_E ⊗ (1 − f_H)) + b_k,   V = W_v(f_E ⊗ (1 − f_H)) + b_v,
    Δf_E = softmax(Q Kᵀ / √Λ) V,   f̂_E = f_E ⊗ (1 − f_H) + Δf_E ⊗ f_H.

Queries come from imperfections and keys/values from normal skin, so a token with f_H = 1 contributes the
constant key b_k and value b_v whatever its features are, and a token with f_H = 0 is left as it was.
`mode="global"` is the paper's GSA ablation: Q/K/V = W_{q,k,v} f and a plain residual block, no mask.

Tokens are multi-scale (Swin-style, as in the paper): f is (B, S, C, H, W), S scales already resampled to
one H × W grid. Attention runs inside non-overlapping (S_w, W_h, W_w) windows with a learned relative
position bias over the (2S_w−1)(2W_h−1)(2W_w−1) offsets, and every other block cyclically shifts the grid
by half a window in H and W (Swin shifted windows, with the region mask that stops tokens which are not
neighbours in the unshifted grid from attending to each other; no shift along S, and none along a
dimension holding a single window). Sizes that are not multiples of the window are zero-padded at the
end; padded tokens are never keys (masked out of the softmax) and are cropped from the output. Masked
logits use a finite −1e4 (exactly 0 after the float32 softmax, and NaN-free when a padded query has no
valid key).

The official code differs (K = W_k f without the mask, GEGLU MLP, a final LayerNorm and a hard λ = 0.5
merge outside the transformer); this module follows the paper's equations.
"""

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

Window = tuple[int, int, int]
_BLOCKED = -1e4


def _check_window(window) -> Window:
    window = tuple(int(v) for v in window)
    if len(window) != 3 or min(window) < 1:
        raise ValueError(f"window={window}: expected three positive sizes (S_w, W_h, W_w)")
    return window


def _relative_position_index(window: Window) -> torch.Tensor:
    """(N, N) index into the (2S_w−1)(2W_h−1)(2W_w−1)-row bias table, N = S_w·W_h·W_w."""
    ws, wh, ww = window
    grids = torch.meshgrid(torch.arange(ws), torch.arange(wh), torch.arange(ww), indexing="ij")
    coords = torch.stack(grids).flatten(1)
    rel = coords[:, :, None] - coords[:, None, :]
    rel = rel + torch.tensor([ws - 1, wh - 1, ww - 1])[:, None, None]
    return (rel[0] * (2 * wh - 1) + rel[1]) * (2 * ww - 1) + rel[2]


def _partition(x: torch.Tensor, window: Window) -> torch.Tensor:
    """(B, S, H, W, ...) with sizes divisible by the window → (B, num_windows, N, ...)."""
    b, s, h, w = x.shape[:4]
    ws, wh, ww = window
    rest = x.shape[4:]
    x = x.reshape(b, s // ws, ws, h // wh, wh, w // ww, ww, *rest)
    x = x.permute(0, 1, 3, 5, 2, 4, 6, *range(7, 7 + len(rest)))
    return x.reshape(b, -1, ws * wh * ww, *rest)


def _merge(x: torch.Tensor, window: Window, size: tuple[int, int, int]) -> torch.Tensor:
    """Inverse of `_partition`: (B, num_windows, N, C) → (B, S, H, W, C)."""
    (s, h, w), (ws, wh, ww) = size, window
    b, c = x.shape[0], x.shape[-1]
    x = x.reshape(b, s // ws, h // wh, w // ww, ws, wh, ww, c).permute(0, 1, 4, 2, 5, 3, 6, 7)
    return x.reshape(b, s, h, w, c)


class WindowAttention(nn.Module):
    """Multi-head (selective or global) self-attention in (S_w, W_h, W_w) windows, optionally shifted.

    forward(x, m) with channels-last tokens x (B, S, H, W, C) and, in selective mode, the weighting map
    m (B, S, H, W, 1) or broadcastable (B, 1, H, W, 1); returns Δ (B, S, H, W, C), i.e. the projected
    softmax(QKᵀ/√Λ)V of the paper. Global mode ignores m.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        window: Window = (2, 8, 8),
        mode: Literal["selective", "global"] = "selective",
        qkv_bias: bool = True,
        rel_pos_bias: bool = True,
        shift: bool = False,
    ) -> None:
        super().__init__()
        if mode not in ("selective", "global"):
            raise ValueError(f"mode={mode!r}: expected 'selective' or 'global'")
        if dim % heads:
            raise ValueError(f"dim={dim} is not divisible by heads={heads}")
        self.dim, self.heads, self.mode, self.shift = dim, heads, mode, shift
        self.window = _check_window(window)
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.k = nn.Linear(dim, dim, bias=qkv_bias)
        self.v = nn.Linear(dim, dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.register_parameter("relative_position_bias_table", None)
        if rel_pos_bias:
            ws, wh, ww = self.window
            table = torch.zeros((2 * ws - 1) * (2 * wh - 1) * (2 * ww - 1), heads)
            self.relative_position_bias_table = nn.Parameter(nn.init.trunc_normal_(table, std=0.02))
            index = _relative_position_index(self.window)
            self.register_buffer("relative_position_index", index, persistent=False)

    def _blocked(self, size, padded, shifts, device) -> torch.Tensor | None:
        """(num_windows, N, N) bool: True where a query may not attend to a key (shift regions, padding)."""
        (s, h, w), (sp, hp, wp), (sh, sw) = size, padded, shifts
        if (s, h, w) == (sp, hp, wp) and sh == sw == 0:
            return None
        valid = torch.zeros(sp, hp, wp, dtype=torch.bool, device=device)
        valid[:s, :h, :w] = True
        label = torch.zeros(sp, hp, wp, dtype=torch.long, device=device)
        _, wh, ww = self.window
        for i, rows in enumerate((slice(0, hp - wh), slice(hp - wh, hp - sh), slice(hp - sh, hp))):
            label[:, rows] += 3 * i if sh else 0
        for j, cols in enumerate((slice(0, wp - ww), slice(wp - ww, wp - sw), slice(wp - sw, wp))):
            label[:, :, cols] += j if sw else 0
        valid = torch.roll(valid, (-sh, -sw), (1, 2))  # `label` is already laid out on the shifted grid
        valid = _partition(valid[None], self.window)[0]
        label = _partition(label[None], self.window)[0]
        return (label[:, :, None] != label[:, None, :]) | ~valid[:, None, :]

    def forward(self, x: torch.Tensor, m: torch.Tensor | None = None) -> torch.Tensor:
        b, s, h, w, c = x.shape
        if self.mode == "selective":
            if m is None:
                raise ValueError("selective attention needs the weighting map m")
            m = m.to(x.dtype)
            q_in, kv_in = x * m, x * (1 - m)
        else:
            q_in = kv_in = x
        qkv = torch.cat([self.q(q_in), self.k(kv_in), self.v(kv_in)], -1)

        ws, wh, ww = self.window
        sp, hp, wp = -(-s // ws) * ws, -(-h // wh) * wh, -(-w // ww) * ww
        qkv = F.pad(qkv, (0, 0, 0, wp - w, 0, hp - h, 0, sp - s))
        sh = wh // 2 if self.shift and hp > wh else 0
        sw = ww // 2 if self.shift and wp > ww else 0
        if sh or sw:
            qkv = torch.roll(qkv, (-sh, -sw), (2, 3))
        qkv = _partition(qkv, self.window)  # (B, nW, N, 3C)
        nw, n = qkv.shape[1:3]
        q, k, v = qkv.view(b, nw, n, 3, self.heads, c // self.heads).permute(3, 0, 1, 4, 2, 5)

        attn_mask = None
        if self.relative_position_bias_table is not None:
            idx = self.relative_position_index.reshape(-1)
            attn_mask = self.relative_position_bias_table[idx].view(n, n, -1).permute(2, 0, 1).to(x.dtype)
        blocked = self._blocked((s, h, w), (sp, hp, wp), (sh, sw), x.device)
        if blocked is not None:
            block_bias = torch.zeros(blocked.shape, dtype=x.dtype, device=x.device)
            block_bias = block_bias.masked_fill(blocked, _BLOCKED)[:, None]  # (nW, 1, N, N): over B, heads
            attn_mask = block_bias if attn_mask is None else attn_mask + block_bias
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)  # (B, nW, heads, N, d)
        out = _merge(out.transpose(2, 3).reshape(b, nw, n, c), self.window, (sp, hp, wp))
        if sh or sw:
            out = torch.roll(out, (sh, sw), (2, 3))
        return self.proj(out[:, :s, :h, :w])


class SelectiveBlock(nn.Module):
    """One SSAB on channels-last tokens x (B, S, H, W, C) with m (B, S, H, W, 1); returns (B, S, H, W, C).

    Selective: Δ = Attn(LN x, m); Δ = Δ + MLP(LN Δ); x̂ = x ⊗ (1 − m) + Δ ⊗ m (the paper's f̂_E), so tokens
    with m = 0 pass bit-for-bit. Global (GSA ablation): x + Attn(LN x), then + MLP(LN ·); m is ignored.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        window: Window = (2, 8, 8),
        mlp_ratio: float = 2.0,
        shift: bool = False,
        mode: Literal["selective", "global"] = "selective",
        qkv_bias: bool = True,
        rel_pos_bias: bool = True,
    ) -> None:
        super().__init__()
        self.mode = mode
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, heads, window, mode, qkv_bias, rel_pos_bias, shift)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor, m: torch.Tensor | None = None) -> torch.Tensor:
        if self.mode == "global":
            x = x + self.attn(self.norm1(x))
            return x + self.mlp(self.norm2(x))
        delta = self.attn(self.norm1(x), m)
        delta = delta + self.mlp(self.norm2(delta))
        m = m.to(x.dtype)
        return x * (1 - m) + delta * m


class SelectiveTransformer(nn.Module):
    """The transformer T: `depth` SSABs alternating unshifted / shifted windows, no final norm.

    forward(f, m) with f (B, S, C, H, W) and m (B, S, 1, H, W) or (B, 1, 1, H, W) (ignored, may be None,
    in global mode) returns (B, S, C, H, W). There is no final LayerNorm: it would alter the tokens with
    m = 0, which the selective blocks leave exactly unchanged (the output keeps the encoder's scale).
    """

    def __init__(
        self,
        dim: int = 512,
        depth: int = 4,
        heads: int = 8,
        window: Window = (2, 8, 8),
        mlp_ratio: float = 2.0,
        mode: Literal["selective", "global"] = "selective",
        qkv_bias: bool = True,
        rel_pos_bias: bool = True,
    ) -> None:
        super().__init__()
        self.mode = mode
        self.blocks = nn.ModuleList(
            SelectiveBlock(dim, heads, window, mlp_ratio, i % 2 == 1, mode, qkv_bias, rel_pos_bias)
            for i in range(depth)
        )

    def forward(self, f: torch.Tensor, m: torch.Tensor | None = None) -> torch.Tensor:
        if f.ndim != 5:
            raise ValueError(f"SelectiveTransformer expects f of shape (B, S, C, H, W), got {tuple(f.shape)}")
        b, s, c, h, w = f.shape
        x = f.permute(0, 1, 3, 4, 2)
        if self.mode == "selective":
            if m is None or m.ndim != 5 or m.shape[2] != 1:
                raise ValueError("selective mode needs m of shape (B, S, 1, H, W) or (B, 1, 1, H, W)")
            m = m.permute(0, 1, 3, 4, 2).expand(b, s, h, w, 1)
        else:
            m = None
        for block in self.blocks:
            x = block(x, m)
        return x.permute(0, 1, 4, 2, 3).contiguous()
