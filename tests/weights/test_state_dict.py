"""The public state-dict toolkit (src/weights/state_dict.py): safe (and memory-mapped) reading, picking,
prefixes, sub-trees, the one-line mismatch listing; plain, nested and safetensors files, and reading errors
that name the file."""

import argparse

import pytest
import torch
from torch import nn

from facezoo.utils.errors import FacezooError, WeightsNotFoundError
from facezoo.weights.state_dict import (
    lightning_network,
    load_state_dict,
    match_state_dict,
    pick,
    strip_prefix,
    sub_tree,
)
from helpers import save_weights


def test_mmap_reads_the_same_tensors_and_old_files_still_load(tmp_path):
    state = {"a.weight": torch.arange(6.0).view(2, 3), "b": torch.ones(2)}
    torch.save(state, tmp_path / "new.pth")
    torch.save(state, tmp_path / "legacy.pth", _use_new_zipfile_serialization=False)  # PyTorch < 1.6 format
    for name in ("new.pth", "legacy.pth"):
        loaded = load_state_dict(tmp_path / name, mmap=True)
        assert loaded.keys() == state.keys() and all(torch.equal(loaded[k], state[k]) for k in state), name


def test_pick_strip_and_sub_tree():
    inner = {"module.conv.weight": torch.zeros(1), "module.conv.bias": torch.zeros(1)}
    assert pick({"params": inner, "params_ema": {"x": 1}, "iter": 3}, ("params_ema", "params")) == {"x": 1}
    assert pick({"params": inner}, ("params_ema", "params")) == inner
    assert pick({"iter": 3}, ("params_ema",)) is None
    assert list(strip_prefix(inner)) == ["conv.weight", "conv.bias"]
    mixed = {**inner, "other": torch.zeros(1)}
    assert strip_prefix(mixed) == mixed  # only when every key has it
    state = {"generator.a": 1, "generator_ema.module.a": 2, "discriminator.b": 3}
    assert sub_tree(state, "generator.") == {"a": 1}
    assert sub_tree(state, "generator_ema.module.") == {"a": 2}


def test_lightning_network_takes_the_first_prefix_present():
    ckpt = {"state_dict": {"generator.a": 1, "generator_ema.module.a": 2}}
    assert lightning_network(ckpt, ("generator_ema.module.", "generator.")) == {"a": 2}
    assert lightning_network({"a": 1}, ("generator.",)) is None  # not a Lightning checkpoint
    with pytest.raises(FacezooError, match="without any of discriminator"):
        lightning_network(ckpt, ("discriminator.",))


def test_mismatches_are_listed_in_one_line():
    net = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1))
    state = dict(net.state_dict())
    del state["1.bias"]
    state["2.weight"] = torch.zeros(1)
    state["0.weight"] = torch.zeros(4, 2)
    with pytest.raises(FacezooError) as err:
        match_state_dict(state, net, "toy")
    message = str(err.value)
    assert "\n" not in message and message.startswith("toy: the weights do not match the network")
    assert "missing 1 (1.bias)" in message and "unexpected 1 (2.weight)" in message
    assert "wrong shapes (got vs expected) 1 (0.weight (4, 2) vs (3, 2))" in message
    good = match_state_dict(dict(reversed(net.state_dict().items())), net, "toy")
    assert list(good) == list(net.state_dict())  # in the network's order
    many = {f"extra.{i}": torch.zeros(1) for i in range(12)}
    with pytest.raises(FacezooError, match=r"unexpected 12 \(extra.0, .*extra.7, \.\.\. \(12 in all\)\)"):
        match_state_dict({**net.state_dict(), **many}, net, "toy")


def test_an_empty_target_tensor_takes_the_datas_size_but_not_another_rank():
    target = {"atoms": torch.zeros(0, 8, 1, 1), "weight": torch.zeros(3, 8)}
    source = {"atoms": torch.ones(5, 8, 4, 4), "weight": torch.ones(3, 8)}
    assert match_state_dict(source, target, "net")["atoms"].shape == (5, 8, 4, 4)
    with pytest.raises(FacezooError, match=r"atoms \(5, 8\) vs \(0, 8, 1, 1\)"):
        match_state_dict({**source, "atoms": torch.ones(5, 8)}, target, "net")


def test_load_state_dict_plain_and_with_key(tmp_path):
    inner = {"conv.weight": torch.arange(4.0)}
    plain = save_weights(tmp_path / "plain.pth", inner)
    nested = save_weights(
        tmp_path / "ckpt.pth", {"params_ema": inner, "params": inner, "iter": torch.tensor(3)}
    )
    assert torch.equal(load_state_dict(plain)["conv.weight"], inner["conv.weight"])
    assert torch.equal(load_state_dict(nested, key="params_ema")["conv.weight"], inner["conv.weight"])
    with pytest.raises(FacezooError) as info:
        load_state_dict(nested, key="g_ema")
    message = str(info.value)
    assert "g_ema" in message and "params_ema" in message and "params" in message and "ckpt.pth" in message


def test_load_state_dict_safetensors(tmp_path):
    from safetensors.torch import save_file

    save_file({"a": torch.ones(3)}, str(tmp_path / "w.safetensors"))
    assert torch.equal(load_state_dict(tmp_path / "w.safetensors")["a"], torch.ones(3))


def test_corrupt_file_names_the_file(tmp_path):
    bad = tmp_path / "broken_weights.pth"
    bad.write_bytes(b"this is not a checkpoint")
    with pytest.raises(FacezooError, match="broken_weights.pth"):
        load_state_dict(bad)
    refused = save_weights(
        tmp_path / "pickled_objects.pth", {"opt": argparse.Namespace(lr=1), "w": torch.ones(1)}
    )
    with pytest.raises(FacezooError, match="pickled_objects.pth.*weights_only"):
        load_state_dict(refused)  # never unpickles arbitrary objects
    with pytest.raises(WeightsNotFoundError, match="absent.pth"):
        load_state_dict(tmp_path / "absent.pth")
