"""The γ split: sizes, nesting across γ, disjoint identities, determinism, γ = 1 and invalid γ."""

import json

import pytest

from facezoo.datamodules.sampler import MultiSubsetSampler
from facezoo.datamodules.split import make_split
from facezoo.utils.errors import ConfigError

IDS = [f"{i:05d}" for i in range(200)]


@pytest.mark.parametrize("gamma,n_paired", [(0.01, 2), (0.1, 20), (0.2, 40), (0.5, 100), (1.0, 200)])
def test_sizes(gamma, n_paired):
    split = make_split(IDS, gamma, seed=3)
    sizes = split.sizes()
    assert sizes["paired"] == n_paired
    assert sizes["paired"] + sizes["unpaired_raw"] + sizes["unpaired_retouched"] == len(IDS)
    assert abs(sizes["unpaired_raw"] - sizes["unpaired_retouched"]) <= 1


def test_paired_subsets_are_nested_and_unpaired_roles_fixed():
    splits = [make_split(IDS, g, seed=7) for g in (0.01, 0.1, 0.2, 1.0)]
    for small, large in zip(splits, splits[1:], strict=False):
        assert set(small.paired) < set(large.paired)
        # an identity that stays unpaired keeps its role when γ grows
        assert set(large.unpaired_raw) <= set(small.unpaired_raw)
        assert set(large.unpaired_retouched) <= set(small.unpaired_retouched)


def test_parts_are_disjoint():
    split = make_split(IDS, 0.1, seed=0)
    parts = [set(split.paired), set(split.unpaired_raw), set(split.unpaired_retouched)]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])


def test_deterministic_and_seeded_apart_from_input_order():
    a = make_split(IDS, 0.2, seed=5)
    assert make_split(list(reversed(IDS)), 0.2, seed=5) == a
    assert make_split(IDS, 0.2, seed=6).paired != a.paired


def test_gamma_one_has_no_unpaired_part():
    split = make_split(IDS, 1.0, seed=0)
    assert split.unpaired_raw == () and split.unpaired_retouched == ()


@pytest.mark.parametrize("gamma", [0.0, -0.1, 1.5, "0.5", True])
def test_invalid_gamma_is_a_clear_error(gamma):
    with pytest.raises(ConfigError, match=r"split\.gamma=.*0 < gamma <= 1"):
        make_split(IDS, gamma, seed=0)


def test_manifest_round_trip(tmp_path):
    split = make_split(IDS, 0.1, seed=1)
    record = json.loads(split.write(tmp_path / "split.json").read_text())
    assert record["gamma"] == 0.1 and record["sizes"] == split.sizes()
    assert record["paired"] == list(split.paired)


def test_sampler_cycles_shorter_subsets_and_is_seeded_by_epoch():
    sampler = MultiSubsetSampler([3, 10], seed=1)
    sampler.set_epoch(0)
    draws = list(sampler)
    assert len(draws) == 10 and [d[0] for d in draws] == list(range(10))
    assert sorted(d[2] for d in draws) == list(range(10))  # the long subset: a permutation
    assert sorted(d[1] for d in draws[:3]) == [0, 1, 2]  # the short one: fresh permutations
    sampler.set_epoch(1)
    assert [d[2] for d in sampler] != [d[2] for d in draws]
    assert list(MultiSubsetSampler([3, 10], seed=1)) == draws


def test_sampler_resumes_mid_epoch():
    full = MultiSubsetSampler([5, 12], seed=4)
    full.set_epoch(2)
    expected = list(full)
    resumed = MultiSubsetSampler([5, 12], seed=4)
    resumed.resume_at(2 * 12 + 5)
    resumed.set_epoch(2)
    assert list(resumed) == expected[5:]
    assert list(resumed) == expected  # the resume offset applies once


def test_sampler_ranks_partition_the_draws():
    ranks = [MultiSubsetSampler([7, 9], seed=0, rank=r, world_size=2) for r in range(2)]
    draws = [list(s) for s in ranks]
    ids = [d[0] for d in draws[0]] + [d[0] for d in draws[1]]
    assert sorted(ids) == list(range(9)) and len(draws[0]) == len(ranks[0])


def test_identities_epochs_have_as_many_batches_for_every_gamma(tmp_path, data_dir):
    from facezoo.utils.compose import compose_config
    from facezoo.utils.instantiate import instantiate
    from helpers import TINY

    def batches(gamma, epoch):
        overrides = [*TINY, f"split.gamma={gamma}", f"datamodule.epoch={epoch}"]
        cfg = compose_config(overrides=overrides, output_dir=tmp_path, data_dir=data_dir)
        dm = instantiate(cfg.datamodule, "datamodule")
        dm.prepare_data()
        dm.setup("fit")
        identities = len(dm.split.paired) + len(dm.split.unpaired_raw) + len(dm.split.unpaired_retouched)
        return len(dm.train_dataloader()), identities // cfg.datamodule.batch_size

    lengths = {gamma: batches(gamma, "identities") for gamma in (0.1, 0.5, 1.0)}
    assert len(set(lengths.values())) == 1, lengths
    assert lengths[1.0][0] == lengths[1.0][1]  # one draw per training identity
    assert batches(0.1, "largest")[0] < batches(1.0, "largest")[0]  # the default: the largest part
