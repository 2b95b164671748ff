"""Evaluate a checkpoint: `python -m facezoo.eval ckpt_path=<run>/checkpoints/best.ckpt [datamodule=...]`.

The model is rebuilt from the config stored in the checkpoint (no run folder needed); the data come from
`datamodule=` when given, else from the checkpoint's config. Writes `metrics.json` and `metrics.md` into the
eval run folder, plus a sample grid.
"""

# isort: off
import facezoo.utils.torchvision_shim  # noqa: F401  (first: lets Lightning import torchvision)
# isort: on
from pathlib import Path

import hydra
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf

from facezoo.callbacks.checkpointing import CONFIG_KEY
from facezoo.callbacks.sample_grid import SampleGrid
from facezoo.cli import CONF_DIR, run_cli
from facezoo.utils.errors import ConfigError, FacezooError
from facezoo.utils.instantiate import instantiate
from facezoo.utils.results import test_metrics, write_metrics


def load_checkpoint(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"ckpt_path={path}: file not found")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise FacezooError(f"{path}: not a readable checkpoint ({err.__class__.__name__})") from None
    if CONFIG_KEY not in ckpt:
        raise FacezooError(f"{path}: no facezoo config inside (was it written by `facezoo.train`?)")
    return ckpt


def load_model(ckpt: dict) -> pl.LightningModule:
    run_cfg = OmegaConf.create(ckpt[CONFIG_KEY])
    model = instantiate(run_cfg.model, "model")
    model.load_state_dict(ckpt["state_dict"])
    return model.eval()


def evaluate(cfg: DictConfig) -> dict[str, float]:
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    ckpt = load_checkpoint(cfg.ckpt_path)
    model = load_model(ckpt)
    out = Path(cfg.paths.output_dir)
    data_cfg = cfg.datamodule if cfg.get("datamodule") else OmegaConf.create(ckpt[CONFIG_KEY]).datamodule
    datamodule = instantiate(data_cfg, "datamodule", manifest_dir=str(out))
    trainer: pl.Trainer = instantiate(
        cfg.trainer, "trainer", logger=False, callbacks=[SampleGrid(str(out / "samples"))]
    )
    results = trainer.test(model, datamodule=datamodule)
    metrics = test_metrics(results)
    write_metrics(out, metrics, title=f"{Path(cfg.ckpt_path).name}")
    print(
        f"metrics: {out / 'metrics.json'}\n"
        + "\n".join(f"  {k}: {v:.4f}" for k, v in sorted(metrics.items()))
    )
    return metrics


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="eval")
def main(cfg: DictConfig) -> None:
    run_cli(evaluate, cfg)


if __name__ == "__main__":
    main()
