"""RetouchFormer's selective self-attention transformer (src/models/components/selective_attention.py): clean
tokens kept, masked tokens filled from clean keys only, the global (mask-free) mode, padding, shifted windows,
the paper's block update, relative positions, gradients and argument checks."""

import pytest
import torch

from facezoo.models.components.selective_attention import (
    SelectiveBlock,
    SelectiveTransformer,
    WindowAttention,
    _relative_position_index,
)


def _inputs(b=2, s=3, c=8, h=6, w=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    f = torch.randn(b, s, c, h, w, generator=g)
    m = (torch.rand(b, s, 1, h, w, generator=g) > 0.5).float()
    return f, m


def _model(mode="selective", depth=2, window=(2, 4, 4), dim=8):
    torch.manual_seed(0)
    return SelectiveTransformer(dim=dim, depth=depth, heads=2, window=window, mlp_ratio=2.0, mode=mode).eval()


def test_selective_keeps_clean_tokens_exactly():
    f, m = _inputs(h=7, w=9)  # padding in every dimension
    m[0, :, :, :3] = torch.rand(3, 1, 3, 9)  # soft weights too
    model = _model(depth=3)
    out = model(f, m)
    clean = (m == 0).expand_as(f)
    assert torch.equal(out[clean], f[clean])
    assert not torch.allclose(out[~clean], f[~clean])
    assert torch.isfinite(out).all()
    # a (B, 1, 1, H, W) map broadcasts over scales
    m1 = m[:, :1]
    assert torch.equal(model(f, m1), model(f, m1.expand_as(m)))


def test_masked_tokens_are_filled_only_from_clean_keys():
    f, m = _inputs()
    model = _model(depth=2)
    out = model(f, m)
    b, s, h, w = 1, 1, 2, 5
    m[b, s, 0, h, w] = 1.0
    out = model(f, m)
    g = f.clone()
    g[b, s, :, h, w] += 10 * torch.randn(f.shape[2])
    out2 = model(g, m)
    others = torch.ones_like(out, dtype=torch.bool)
    others[b, s, :, h, w] = False
    assert torch.equal(out2[others], out[others])  # a masked key/value cannot influence any output
    assert not torch.allclose(out2[b, s, :, h, w], out[b, s, :, h, w])  # its own query changed

    # A clean token does feed the masked tokens of its window (one block: no shift), and only those.
    one = _model(depth=1)
    m[:] = 0
    m[0, :2, :, :4, :4] = 1.0  # window (scales 0-1, rows 0-3, cols 0-3) masked except one clean token
    m[0, 0, 0, 1, 1] = 0.0
    m[0, :2, :, :4, 4:8] = 1.0  # the neighbouring window, all masked
    out = one(f, m)
    g = f.clone()
    g[0, 0, :, 1, 1] += 10 * torch.randn(f.shape[2])
    out2 = one(g, m)
    diff = (out2 - out).abs().amax(2)[0]  # (S, H, W)
    assert diff[0, 1, 1] > 0  # the clean token itself is kept as is, so its own input change shows
    assert (diff[:2, :4, :4] > 0).sum() == 2 * 16  # all masked tokens in the window changed
    assert diff[:2, :4, 4:8].max() == 0 and diff[2:].max() == 0  # nothing outside the window


def test_global_mode_ignores_mask_and_uses_every_token():
    f, m = _inputs()
    model = _model(mode="global", depth=1)
    out = model(f, m)
    assert torch.equal(out, model(f, 1 - m)) and torch.equal(out, model(f, None))
    b, s, h, w = 0, 0, 1, 1
    m[b, s, 0, h, w] = 1.0
    g = f.clone()
    g[b, s, :, h, w] += 10 * torch.randn(f.shape[2])
    diff = (model(g, m) - out).abs().amax(2)[b]
    diff[s, h, w] = 0
    assert (diff[:2, :4, :4] > 0).sum() == 2 * 16 - 1  # the masked token feeds its whole window


@pytest.mark.parametrize(
    ("size", "window"),
    [((1, 8, 8), (1, 4, 4)), ((3, 6, 10), (2, 4, 4)), ((6, 5, 7), (6, 8, 8)), ((2, 16, 12), (1, 8, 4))],
)
@pytest.mark.parametrize("mode", ["selective", "global"])
def test_shapes(size, window, mode):
    s, h, w = size
    f, m = _inputs(b=1, s=s, h=h, w=w)
    out = _model(mode=mode, depth=2, window=window)(f, m)
    assert out.shape == f.shape and torch.isfinite(out).all()


def test_padded_tokens_are_never_keys():
    """One (padded) window covering everything equals plain attention over the real tokens only."""
    torch.manual_seed(0)
    attn = WindowAttention(dim=8, heads=2, window=(2, 4, 8), mode="global", rel_pos_bias=False).eval()
    x = torch.randn(2, 2, 3, 5, 8)
    tokens = x.reshape(2, -1, 8)
    split = lambda t: t.view(2, -1, 2, 4).transpose(1, 2)  # noqa: E731
    q, k, v = split(attn.q(tokens)), split(attn.k(tokens)), split(attn.v(tokens))
    ref = torch.softmax(q @ k.transpose(-1, -2) / 2.0, -1) @ v
    ref = attn.proj(ref.transpose(1, 2).reshape(2, -1, 8)).view_as(x)
    torch.testing.assert_close(attn(x), ref, rtol=1e-5, atol=1e-5)


def test_shifted_windows_respect_regions_and_connect_neighbours():
    torch.manual_seed(0)
    shifted = WindowAttention(dim=8, heads=2, window=(1, 4, 4), mode="global", shift=True).eval()
    x = torch.randn(1, 1, 8, 8, 8)
    y = x.clone()
    y[0, 0, 0, 0] += 10 * torch.randn(8)
    diff = (shifted(y) - shifted(x)).abs().amax(-1)[0, 0]
    assert diff[1, 1] > 0  # same wrapped region (rows/cols 0-1)
    assert diff[7, 7] == 0 and diff[0, 7] == 0 and diff[7, 0] == 0  # wrapped-in tokens are not neighbours
    # Two blocks (plain, then shifted) carry a perturbation across a window border; one block does not.
    f, m = _inputs(b=1, s=1, h=8, w=8)
    model = _model(mode="global", depth=2, window=(1, 4, 4))
    g = f.clone()
    g[0, 0, :, 3, 3] += 10 * torch.randn(f.shape[2])
    x, y = f.permute(0, 1, 3, 4, 2), g.permute(0, 1, 3, 4, 2)
    one = (model.blocks[0](y) - model.blocks[0](x)).abs().amax(-1)[0, 0]
    assert one[4, 4] == 0 and one[:4, :4].min() > 0
    two = (model(g, m) - model(f, m)).abs().amax(2)[0, 0]
    assert two[4, 4] > 0 and two[5, 5] > 0


def test_selective_block_is_the_paper_update():
    """f̂ = f ⊗ (1 − m) + Δ ⊗ m, Δ = Attn(LN f, m) + MLP(LN ·): masked tokens are replaced, not added to."""
    torch.manual_seed(0)
    block = SelectiveBlock(dim=8, heads=2, window=(2, 4, 4), shift=True).eval()
    x = torch.randn(2, 3, 6, 10, 8)
    m = torch.rand(2, 3, 6, 10, 1)
    delta = block.attn(block.norm1(x), m)
    delta = delta + block.mlp(block.norm2(delta))
    torch.testing.assert_close(block(x, m), x * (1 - m) + delta * m)
    # With m = 1 everywhere every key/value is the bias b_k/b_v: the output no longer depends on f at all.
    ones = torch.ones_like(m)
    torch.testing.assert_close(block(x, ones), block(torch.randn_like(x), ones))


def test_relative_position_index_is_one_to_one_on_offsets():
    window = (2, 3, 4)
    idx = _relative_position_index(window)
    grids = torch.meshgrid(*(torch.arange(n) for n in window), indexing="ij")
    coords = torch.stack(grids).flatten(1).T
    offsets = (coords[:, None] - coords[None]).reshape(-1, 3)
    pairs = torch.unique(torch.cat([idx.reshape(-1, 1), offsets], 1), dim=0)
    assert len(pairs) == len(torch.unique(idx)) == len(torch.unique(offsets, dim=0)) == 3 * 5 * 7
    assert idx.min() == 0 and idx.max() == 3 * 5 * 7 - 1


def test_selective_block_gradients_reach_qkv():
    f, m = _inputs()
    model = _model(depth=2).train()
    f.requires_grad_(True)
    model(f, m).square().sum().backward()
    for block in model.blocks:
        for proj in (block.attn.q, block.attn.k, block.attn.v):
            assert proj.weight.grad is not None and proj.weight.grad.abs().sum() > 0
        assert block.attn.relative_position_bias_table.grad.abs().sum() > 0
    assert f.grad.abs().sum() > 0


def test_invalid_arguments():
    with pytest.raises(ValueError, match="window"):
        SelectiveTransformer(dim=8, depth=1, heads=2, window=(4, 4))
    with pytest.raises(ValueError, match="mode"):
        WindowAttention(dim=8, heads=2, mode="local")
    f, _ = _inputs()
    with pytest.raises(ValueError, match="m of shape"):
        _model()(f, None)
