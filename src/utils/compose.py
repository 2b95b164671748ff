"""Compose the config tree outside `@hydra.main` (tests, benchmarks, notebooks), as the CLI would."""

from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from facezoo.cli import CONF_DIR, WORK_ROOT


def compose_config(
    name: str = "train",
    overrides=(),
    output_dir: str | Path | None = None,
    data_dir: str | Path | None = None,
) -> DictConfig:
    """The composed config; with `output_dir`, `${hydra:runtime.output_dir}` resolves to it (and data goes to
    `data_dir` when given), so the config can be instantiated and run like a CLI job."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name=name, overrides=list(overrides), return_hydra_config=True)
    if output_dir is not None:
        with open_dict(cfg):
            cfg.hydra.runtime.output_dir = str(output_dir)
            cfg.hydra.runtime.cwd = str(WORK_ROOT)
            cfg.hydra.job.num = 0
            if data_dir is not None:
                cfg.paths.data_dir = str(data_dir)
        HydraConfig.instance().set_config(cfg)
    return cfg
