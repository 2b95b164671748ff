"""What an importer makes of an official release file: the facezoo networks it holds, and the config that
builds them."""

from dataclasses import dataclass, field


@dataclass
class Imported:
    """An official release as facezoo networks.

    - `method`: the importer (`gpen`, `gfpgan`, `stylegan2`);
    - `description`: the architecture recognised, for messages;
    - `overrides`: Hydra overrides of the train config that build this architecture (`model=gpen`, sizes …);
    - `networks`: network name in the method's module (`generator`, `discriminator`,
      `component_discriminators.left_eye` …) → its state_dict: only what the release holds (no EMA copy);
    - `buffers`: the module's own tensors outside its networks, by name (StyleGANEX's `latent_avg`).
    """

    method: str
    description: str
    overrides: list[str]
    networks: dict[str, dict]
    buffers: dict = field(default_factory=dict)

    def state_dict(self) -> dict:
        """The networks and buffers as one module state_dict (`generator.*`, `discriminator.*`, `latent_avg`
        …)."""
        nets = {f"{name}.{k}": v for name, state in self.networks.items() for k, v in state.items()}
        return nets | self.buffers
