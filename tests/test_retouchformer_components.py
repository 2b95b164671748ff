"""RetouchFormer components: the clean-face VQ dictionary and the selective self-attention transformer."""

import pytest
import torch
import torch.nn.functional as F

from facezoo.models.components import vector_quantizer as vq_module
from facezoo.models.components.selective_attention import (
    SelectiveBlock,
    SelectiveTransformer,
    WindowAttention,
    _relative_position_index,
)
from facezoo.models.components.vector_quantizer import VectorQuantizer

# ---------------------------------------------------------------- vector quantizer


def _flat(z: torch.Tensor) -> torch.Tensor:
    return z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])


def test_vq_nearest_matches_brute_force():
    torch.manual_seed(0)
    vq = VectorQuantizer(num_codes=64, dim=8, chunk_size=7).eval()  # chunks do not divide the 70 positions
    z = torch.randn(2, 8, 5, 7)
    out = vq(z)
    dist = torch.cdist(_flat(z), vq.codebook.detach())
    top2 = dist.topk(2, largest=False).values
    clear = (top2[:, 1] - top2[:, 0]) > 1e-4  # leave out near-ties, where float rounding may pick either
    assert clear.float().mean() > 0.9
    assert torch.equal(out["indices"].reshape(-1)[clear], dist.argmin(1)[clear])
    assert out["indices"].shape == (2, 5, 7) and out["indices"].dtype == torch.long
    # Features placed next to known codes map back onto them.
    idx = torch.randint(64, (2, 5, 7))
    z = vq.lookup(idx).detach() + 1e-5 * torch.randn(2, 8, 5, 7)
    assert torch.equal(vq(z)["indices"], idx)
    torch.testing.assert_close(vq(z)["quantized"], vq.lookup(idx))  # z + (ρ* − z): equal up to rounding
    assert torch.equal(vq.lookup(idx), vq.codebook[idx].permute(0, 3, 1, 2))


def test_vq_straight_through_and_loss_gradients():
    torch.manual_seed(0)
    vq = VectorQuantizer(num_codes=16, dim=4, beta=0.25, dead_code_threshold=0)
    assert set(dict(vq.named_parameters())) == {"embedding.weight"}
    z = torch.randn(2, 4, 3, 3, requires_grad=True)
    out = vq(z)
    g = torch.randn_like(z)
    (grad_z,) = torch.autograd.grad(out["quantized"], z, g, retain_graph=True)
    assert torch.equal(grad_z, g)  # d quantized / dz = identity
    z_q = vq.lookup(out["indices"]).detach()
    torch.testing.assert_close(out["codebook_loss"], F.mse_loss(z_q, z.detach()))
    torch.testing.assert_close(out["commitment_loss"], F.mse_loss(z.detach(), z_q))
    torch.testing.assert_close(out["loss"], out["codebook_loss"] + 0.25 * out["commitment_loss"])
    gz, gw = torch.autograd.grad(out["codebook_loss"], [z, vq.codebook], retain_graph=True, allow_unused=True)
    assert (gz is None or not gz.any()) and gw.abs().sum() > 0
    gz, gw = torch.autograd.grad(out["commitment_loss"], [z, vq.codebook], allow_unused=True)
    assert gz.abs().sum() > 0 and (gw is None or not gw.any())


def test_vq_ema_update_matches_formula():
    torch.manual_seed(0)
    k, c, d, eps = 4, 2, 0.9, 1e-5
    vq = VectorQuantizer(num_codes=k, dim=c, update="ema", decay=d, eps=eps, dead_code_threshold=0).train()
    assert list(vq.parameters()) == [] and "embedding.weight" in vq.state_dict()
    codes = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [5.0, 5.0]])
    vq.codebook.copy_(codes)
    vq.embed_sum.copy_(codes * 2.0)
    vq.cluster_size.copy_(torch.tensor([2.0, 1.0, 0.5, 3.0]))
    n0, m0 = vq.cluster_size.clone(), vq.embed_sum.clone()
    vectors = torch.tensor([[0.1, 0.0], [0.9, 0.1], [1.1, -0.1], [0.0, 0.8], [-0.1, 0.1], [1.0, 0.2]])
    assign = torch.tensor([0, 1, 1, 2, 0, 1])
    z = vectors.T.reshape(1, c, 2, 3)
    out = vq(z)
    assert torch.equal(out["indices"].reshape(-1), assign)
    assert torch.equal(out["quantized"], codes[assign].T.reshape(1, c, 2, 3))  # old codebook is used
    torch.testing.assert_close(out["loss"], 0.25 * F.mse_loss(z, codes[assign].T.reshape(1, c, 2, 3)))
    counts = torch.tensor([2.0, 3.0, 1.0, 0.0])
    sums = torch.stack([vectors[assign == i].sum(0) for i in range(k)])
    n1 = d * n0 + (1 - d) * counts
    m1 = d * m0 + (1 - d) * sums
    smoothed = (n1 + eps) / (n1.sum() + k * eps) * n1.sum()
    torch.testing.assert_close(vq.cluster_size, n1, rtol=1e-6, atol=1e-7)  # float rounding only
    torch.testing.assert_close(vq.embed_sum, m1, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(vq.codebook, m1 / smoothed[:, None], rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(vq.usage, (1 - d) * counts)  # threshold 0: usage starts at 0


def test_vq_distributed_statistics_are_all_reduced(monkeypatch):
    """Simulate rank 0 of two ranks fed the same batch: all-reduce doubles the counts and sums."""
    calls = []

    def all_reduce(t, *args, **kwargs):
        calls.append("all_reduce")
        t.mul_(2)

    def broadcast(t, src, *args, **kwargs):
        calls.append(("broadcast", src))

    monkeypatch.setattr(vq_module, "_distributed", lambda: True)
    monkeypatch.setattr(vq_module.dist, "all_reduce", all_reduce)
    monkeypatch.setattr(vq_module.dist, "broadcast", broadcast)
    torch.manual_seed(0)
    k, c, d = 8, 3, 0.5
    vq = VectorQuantizer(num_codes=k, dim=c, update="ema", decay=d, dead_code_threshold=0.1).train()
    n0, m0 = vq.cluster_size.clone(), vq.embed_sum.clone()
    z = torch.randn(2, c, 4, 4)
    out = vq(z)
    idx = out["indices"].reshape(-1)
    counts = 2 * torch.bincount(idx, minlength=k).float()
    sums = 2 * torch.zeros(k, c).index_add_(0, idx, _flat(z))
    n1, m1 = d * n0 + (1 - d) * counts, d * m0 + (1 - d) * sums
    usage = d * 0.1 + (1 - d) * counts
    alive = usage >= 0.1
    assert torch.equal(vq.usage[alive], usage[alive]) and (vq.usage[~alive] == 10 * 0.1).all()
    smoothed = (n1 + vq.eps) / (n1.sum() + k * vq.eps) * n1.sum()
    torch.testing.assert_close(vq.codebook[alive], (m1 / smoothed[:, None])[alive])
    assert calls[0] == "all_reduce" and ("broadcast", 0) in calls  # codes 0..7 cannot all be used by 32 z


@pytest.mark.parametrize("update", ["loss", "ema"])
def test_vq_dead_code_restart(update):
    torch.manual_seed(0)
    vq = VectorQuantizer(num_codes=8, dim=4, update=update, dead_code_threshold=0.5).train()
    codes = torch.eye(4).repeat(2, 1) * torch.tensor([1.0] * 4 + [100.0] * 4)[:, None]  # codes 4..7 far
    vq.codebook.data.copy_(codes)
    if update == "ema":
        vq.embed_sum.copy_(codes)
    z = (torch.eye(4)[torch.randint(4, (2, 3, 3))] + 0.01 * torch.randn(2, 3, 3, 4)).permute(0, 3, 1, 2)
    out = vq(z)
    assert out["indices"].max() < 4
    flat = _flat(z)
    moved = vq.codebook.detach()[4:]
    assert torch.cdist(moved, flat).min(1).values.max() < 1e-2  # each dead code sits on a batch vector
    assert (moved - codes[4:]).norm(dim=1).min() > 50
    assert torch.equal(vq.usage[4:], torch.full((4,), 10 * 0.5))
    if update == "loss":
        assert torch.equal(vq.codebook.detach()[:4], codes[:4])  # live codes are untouched
        vq.codebook.requires_grad_(False)  # a frozen dictionary is never re-seeded
        frozen = vq.codebook.detach().clone()
        vq(z + 50.0)
        assert torch.equal(vq.codebook, frozen)


@pytest.mark.parametrize("update", ["loss", "ema"])
def test_vq_eval_changes_nothing_and_loads_bare_codebook(update):
    torch.manual_seed(0)
    vq = VectorQuantizer(num_codes=16, dim=4, update=update, dead_code_threshold=5.0).eval()
    before = {k: v.clone() for k, v in vq.state_dict().items()}
    out = vq(torch.randn(2, 4, 6, 6))
    assert all(torch.equal(before[k], v) for k, v in vq.state_dict().items())
    assert out["perplexity"] >= 1.0 and out["perplexity"] <= 16.0  # between one code and all 16
    fresh = VectorQuantizer(num_codes=16, dim=4, update=update)
    fresh.load_state_dict({"embedding.weight": before["embedding.weight"]})  # strict, official-style key
    assert torch.equal(fresh.codebook, before["embedding.weight"])


def test_vq_perplexity_uniform_use():
    vq = VectorQuantizer(num_codes=4, dim=4).eval()
    vq.codebook.data.copy_(torch.eye(4))
    z = torch.eye(4).T.reshape(1, 4, 2, 2)
    torch.testing.assert_close(vq(z)["perplexity"], torch.tensor(4.0))


# ---------------------------------------------------------------- selective attention


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
