"""The networks of a zoo module as loaders see them: parameters built on the meta device (buffers real), EMA
copies paired with their networks by structure, a network's part of a state_dict, held-out skeletons."""

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from facezoo.models.components.facial_component import FacialComponentDiscriminator
from facezoo.models.components.stylegan2 import Discriminator
from facezoo.models.components.unet import UNetGenerator
from facezoo.weights.networks import ema_sources, hold_out, network_state, networks, parameters_on_meta


class TwoNets(nn.Module):
    """A generator, its EMA and a discriminator, as the GAN methods have them."""

    def __init__(self) -> None:
        super().__init__()
        self.generator = UNetGenerator(in_channels=3, out_channels=3, base_channels=4, depth=3)
        self.discriminator = Discriminator(8, narrow=1 / 64)
        self.generator_ema = AveragedModel(self.generator, use_buffers=True)
        self.generator_ema.update_parameters(self.generator)


def test_parameters_on_meta_keeps_buffers_real():
    with parameters_on_meta():
        d = FacialComponentDiscriminator()  # its blur kernels are non-persistent buffers
    assert all(p.is_meta for p in d.parameters())
    assert all(not b.is_meta for b in d.buffers()) and len(list(d.buffers())) == 2
    assert torch.equal(d.conv2[0].kernel, FacialComponentDiscriminator().conv2[0].kernel)
    assert not next(nn.Linear(2, 2).parameters()).is_meta  # only inside


def test_ema_copies_are_paired_with_their_network():
    model = TwoNets()
    assert set(networks(model)) == {"generator", "discriminator", "generator_ema"}
    assert ema_sources(model) == {"generator_ema": "generator"}


def test_network_state_of_an_ema_the_file_lacks_is_its_network():
    model = TwoNets()
    g = {f"generator.{k}": v + 1 for k, v in model.generator.state_dict().items()}
    state = network_state(model, "generator_ema", g)
    assert state.keys() == model.generator_ema.state_dict().keys()
    assert torch.equal(state["n_averaged"], model.generator_ema.n_averaged)
    assert all(torch.equal(state[f"module.{k[len('generator.'):]}"], v) for k, v in g.items())
    assert network_state(model, "discriminator", g) is None
    own = {f"generator_ema.{k}": v - 1 for k, v in model.generator_ema.state_dict().items()}
    stored = network_state(model, "generator_ema", {**g, **own})  # a file holding the EMA: its own
    assert all(torch.equal(stored[k[len("generator_ema.") :]], v) for k, v in own.items())


def test_held_out_networks_stay_readable_but_leave_the_module():
    model = TwoNets()
    hold_out(model, "discriminator")
    assert model.discriminator.size == 8 and all(p.is_meta for p in model.discriminator.parameters())
    assert not any(k.startswith("discriminator.") for k in model.state_dict())
    assert "discriminator" not in dict(model.named_children())
    model.to(torch.float64)  # .to() no longer sees the skeleton
    assert next(model.generator.parameters()).dtype == torch.float64
