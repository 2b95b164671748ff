"""The VQ dictionary (src/models/components/vector_quantizer.py): nearest codes, the straight-through
estimator and its losses, the EMA codebook update, dead-code restarts, eval mode, perplexity; and the EMA
codebook under real data parallelism: two CPU processes joined by a gloo process group.

Each rank quantizes its own half of a batch; with the counts and sums all-reduced, both ranks must end
with the codebook a single process computes from the whole batch, and dead-code restarts (rank 0's new
codes, broadcast) must leave the ranks identical.
"""

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from facezoo.models.components import vector_quantizer as vq_module
from facezoo.models.components.vector_quantizer import VectorQuantizer

K, C, STEPS = 16, 4, 3


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


# --- two processes ------------------------------------------------------------------------------------------


def _batches() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return [torch.randn(4, C, 4, 4, generator=g) for _ in range(STEPS)]


def _quantizer(threshold: float) -> VectorQuantizer:
    torch.manual_seed(1)  # the same initial codebook on every rank
    return VectorQuantizer(num_codes=K, dim=C, update="ema", decay=0.8, dead_code_threshold=threshold).train()


def _rank(rank: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        for threshold in (0.0, 0.5):
            vq = _quantizer(threshold)
            torch.manual_seed(100 + rank)  # restarts draw different samples on each rank before the broadcast
            for z in _batches():
                vq(z.chunk(2)[rank])
            torch.save(vq.state_dict(), f"{out_dir}/rank{rank}_t{threshold}.pt")
    finally:
        dist.destroy_process_group()


def test_ema_codebook_statistics_are_all_reduced_across_two_processes(tmp_path):
    mp.spawn(_rank, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    states = {
        (rank, t): torch.load(tmp_path / f"rank{rank}_t{t}.pt", weights_only=True)
        for rank in (0, 1)
        for t in (0.0, 0.5)
    }
    single = _quantizer(0.0)
    for z in _batches():
        single(z)
    for key in ("embedding.weight", "cluster_size", "embed_sum", "usage"):
        torch.testing.assert_close(states[0, 0.0][key], single.state_dict()[key])
        torch.testing.assert_close(states[1, 0.0][key], single.state_dict()[key])
        assert torch.equal(states[0, 0.5][key], states[1, 0.5][key])  # restarts broadcast from rank 0
    # the restart path ran (16 codes, 32 vectors per step: some go unused) and changed the codebook
    assert not torch.equal(states[0, 0.5]["embedding.weight"], states[0, 0.0]["embedding.weight"])
