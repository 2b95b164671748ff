"""`Frozen`: a pretrained helper that is never trained, never checkpointed, always in eval mode, and moved
with its owner. The helper here is a random BatchNorm network (tests only)."""

import torch
from torch import nn

from facezoo.losses.frozen import Frozen


def _owner() -> nn.Module:
    owner = nn.Module()
    owner.head = nn.Conv2d(3, 3, 1)
    owner.helper = Frozen(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Dropout(0.5)).train())
    return owner


def test_the_helper_stays_in_eval_mode_after_the_owner_trains():
    owner = _owner().train()
    net = owner.helper.net
    assert not net.training and not any(m.training for m in net.modules())
    x = torch.randn(2, 3, 8, 8)
    first, second = owner.helper(x), owner.helper(x)
    torch.testing.assert_close(first, second)  # no dropout
    assert int(net[1].num_batches_tracked) == 0  # BatchNorm statistics untouched


def test_the_helper_gets_no_gradient_but_passes_one_to_its_input():
    owner = _owner()
    x = torch.randn(1, 3, 8, 8, requires_grad=True)
    owner.helper(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(not p.requires_grad and p.grad is None for p in owner.helper.net.parameters())
    owner.requires_grad_(True)  # e.g. a toggle of everything the owner trains
    assert not any(p.requires_grad for p in owner.helper.net.parameters())
    assert {id(p) for p in owner.parameters()} == {id(owner.head.weight), id(owner.head.bias)}


def test_the_helper_is_not_in_the_state_dict_and_a_checkpoint_without_it_loads():
    owner = _owner()
    assert set(owner.state_dict()) == {"head.weight", "head.bias"}
    saved = {k: torch.zeros_like(v) for k, v in owner.state_dict().items()}
    helper_before = {k: v.clone() for k, v in owner.helper.net.state_dict().items()}
    other = _owner()
    other.load_state_dict(saved)  # strict: nothing of the helper is expected
    assert all(torch.equal(v, helper_before[k]) for k, v in owner.helper.net.state_dict().items())
    assert all((v == 0).all() for v in other.state_dict().values())


def test_the_helper_moves_with_its_owner():
    owner = _owner().to(torch.float64)
    assert {p.dtype for p in owner.helper.net.parameters()} == {torch.float64}
    assert {b.dtype for b in owner.helper.net.buffers() if b.is_floating_point()} == {torch.float64}
    owner.to("meta")
    assert {p.device.type for p in owner.helper.net.parameters()} == {"meta"}


def test_a_helper_that_keeps_its_dtype_follows_only_the_device():
    owner = nn.Module()
    owner.helper = Frozen(nn.Conv2d(3, 4, 3), keep_dtype=True)  # e.g. LPIPS, a float32 metric
    owner.to(torch.float64)
    assert {p.dtype for p in owner.helper.net.parameters()} == {torch.float32}
    owner.to("meta")
    assert {(p.device.type, p.dtype) for p in owner.helper.net.parameters()} == {("meta", torch.float32)}


def test_a_helper_switched_to_training_directly_still_runs_as_released():
    owner = _owner()
    owner.helper.net.train()  # not through its owner
    owner.helper(torch.randn(2, 3, 8, 8))
    assert not owner.helper.net.training and int(owner.helper.net[1].num_batches_tracked) == 0
