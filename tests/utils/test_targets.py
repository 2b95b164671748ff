"""The `_target_`s a stored config may name: the zoo's own networks, modules and datamodules, torch
optimizers, schedulers and nn modules; everything else is refused by name, judged before it is imported."""

import sys

import pytest

from facezoo.utils.errors import FacezooError
from facezoo.utils.targets import check_targets

ALLOWED = [
    "facezoo.models.components.stylegan2.Discriminator",
    "facezoo.datamodules.restore.RestoreDataModule",
    "torch.optim.Adam",
    "torch.optim.lr_scheduler.MultiStepLR",
    "torch.nn.Identity",
    "pytorch_optimizer.Ranger",  # StyleGANEX's optimizer
]
REFUSED = [
    "pathlib.Path.write_text",  # outside the allowlist: judged by name
    "os.system",
    "builtins.eval",
    "torch.load",  # torch, but not an optimizer, scheduler or nn module
    "torch.nn.functional.relu",
    "torch.optim.Adam.step",
    "pytorch_optimizer.create_optimizer",  # the optimizer package, but a function
    "facezoo.utils.compose.compose_config",  # ours, but a function
    "facezoo.models.components.stylegan2.torch.nn.Linear",  # a class reached through a facezoo module
    "facezoo.no_such_module.Thing",
    "facezoo.models..Bad",
]


@pytest.mark.parametrize("target", ALLOWED)
def test_the_zoos_classes_and_torch_optimizers_are_allowed(target):
    check_targets({"model": {"_target_": target, "_partial_": True}}, "best.ckpt")


@pytest.mark.parametrize("target", REFUSED)
def test_anything_else_is_refused_by_name_wherever_it_is(target):
    nested = {"_target_": "torch.nn.Sequential", "_args_": [{"_target_": "torch.nn.Identity"},
                                                           {"x": [{"_target_": target}]}]}
    with pytest.raises(FacezooError) as err:
        check_targets({"generator": nested}, "best.ckpt: model")
    message = str(err.value)
    where = "best.ckpt: model.generator._args_[1].x[0]"
    assert message.startswith(f"{where}: refused to build _target_ '{target}'")
    assert "\n" not in message


def test_names_outside_the_allowlist_are_not_imported():
    sys.modules.pop("antigravity", None)
    with pytest.raises(FacezooError):
        check_targets({"_target_": "antigravity.fly"}, "x")  # importing it would open a web browser
    assert "antigravity" not in sys.modules
