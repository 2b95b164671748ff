"""The EMA codebook under real data parallelism: two CPU processes joined by a gloo process group.

Each rank quantizes its own half of a batch; with the counts and sums all-reduced, both ranks must end
with the codebook a single process computes from the whole batch, and dead-code restarts (rank 0's new
codes, broadcast) must leave the ranks identical.
"""

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from facezoo.models.components.vector_quantizer import VectorQuantizer

K, C, STEPS = 16, 4, 3


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
