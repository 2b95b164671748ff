"""What the weight importers' command lines share: build a facezoo model from config overrides, load the
imported weights into it and write a checkpoint that `python -m facezoo.eval ckpt_path=...` loads."""

import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

from facezoo.utils.errors import FacezooError


def write_imported_checkpoint(overrides: list[str], load: Callable, out: str) -> int:
    """Compose the train config with `overrides`, instantiate its model, call `load(model)`, save the model
    and its resolved config to `out`. → the exit code (2 with a one-line message on a FacezooError)."""
    from omegaconf import OmegaConf, open_dict

    from facezoo.callbacks.checkpointing import CONFIG_KEY
    from facezoo.utils.compose import compose_config
    from facezoo.utils.instantiate import instantiate

    try:
        with tempfile.TemporaryDirectory() as tmp:
            cfg = compose_config(overrides=overrides, output_dir=tmp)
            with open_dict(cfg):
                del cfg["hydra"]
            config = OmegaConf.to_container(cfg, resolve=True)
            model = instantiate(cfg.model, "model")
        load(model)
    except FacezooError as err:
        print(f"facezoo: error: {err}", file=sys.stderr)
        return 2
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": model.state_dict(), CONFIG_KEY: config}, path)
    return 0
