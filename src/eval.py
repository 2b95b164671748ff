"""Evaluate a checkpoint: `python -m facezoo.eval ckpt_path=<run>/checkpoints/best.ckpt [datamodule=...]`.

`ckpt_path` is any file `load_model` reads: a facezoo checkpoint (trained or imported) or an official release
(GPEN-BFR-512.pth, GFPGANv1.4.pth …). The model is rebuilt from the checkpoint alone, only its inference
networks read; the data come from `datamodule=` when given, else from the checkpoint's config (a release has
none). Stored configs only build the zoo's own classes (`facezoo.utils.targets`). Writes `metrics.json` and
`metrics.md` into the eval run folder, plus a sample grid.
"""

# isort: off
import facezoo.utils.torchvision_shim  # noqa: F401  (first: lets Lightning import torchvision)
# isort: on
from pathlib import Path

import hydra
import pytorch_lightning as pl
from omegaconf import DictConfig

from facezoo.callbacks.sample_grid import SampleGrid
from facezoo.checkpoints import load_model, open_model_file
from facezoo.cli import CONF_DIR, run_cli
from facezoo.utils.instantiate import instantiate
from facezoo.utils.results import test_metrics, write_metrics


def evaluate(cfg: DictConfig) -> dict[str, float]:
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    file = open_model_file(cfg.ckpt_path, option="ckpt_path")
    data_cfg = cfg.datamodule if cfg.get("datamodule") else file.datamodule_config()
    model = load_model(file)
    out = Path(cfg.paths.output_dir)
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
