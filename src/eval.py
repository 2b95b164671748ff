"""Evaluate a checkpoint: `python -m facezoo.eval ckpt_path=<run>/checkpoints/best.ckpt [datamodule=...]`.

`ckpt_path` is a run folder (its `checkpoints/best.ckpt`, else `last.ckpt`) or any file `load_model` reads:
a facezoo checkpoint (trained or imported) or an official release (GPEN-BFR-512.pth, GFPGANv1.4.pth …). The
model is rebuilt from the checkpoint alone, only its inference networks read; the data come from
`datamodule=` when given, else from the checkpoint's config (a release has none). Images are evaluated at the
size the checkpoint was trained at (a release: its network's size), not the data set's default, unless
`datamodule.image_size` is given. Without `datamodule=`, `++datamodule.KEY=VALUE` edits the stored data
config (e.g. `++datamodule.unaligned.prob=1`: unaligned test faces, src/datamodules/unaligned.py; `++`, not
`+`, also works beside `datamodule=NAME`, whose file may hold the key already). Stored configs only build the
zoo's own classes (`facezoo.utils.targets`).
Writes `metrics.json` and `metrics.md` into the eval run folder, plus a sample grid.
"""

# isort: off
import facezoo.utils.torchvision_shim  # noqa: F401  (first: lets Lightning import torchvision)
# isort: on
from pathlib import Path

import hydra
import pytorch_lightning as pl
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

from facezoo.callbacks.sample_grid import SampleGrid
from facezoo.checkpoints import load_model, open_model_file
from facezoo.cli import CONF_DIR, check_seed, run_cli
from facezoo.utils.errors import ConfigError
from facezoo.utils.instantiate import instantiate
from facezoo.utils.results import test_metrics, write_metrics
from facezoo.utils.targets import check_targets


def _user_set(key: str) -> bool:
    """Whether `key=` was given on the command line."""
    overrides = HydraConfig.get().overrides.task if HydraConfig.initialized() else []
    return any(o.lstrip("+~").split("=")[0] == key for o in overrides)


def sized_data_config(datamodule: DictConfig, file, model) -> DictConfig:
    """`datamodule=` at the size the model was trained at (unless the command line sets it)."""
    data_cfg = datamodule.copy()
    trained = file.trained_size() or model.native_size
    if trained and data_cfg.get("image_size") != trained and not _user_set("datamodule.image_size"):
        print(f"eval at {trained} px, the size {file.path.name} was trained at (set datamodule.image_size "
              "to change it)")
        with open_dict(data_cfg):
            data_cfg.image_size = trained
    model.check_image_size(data_cfg.get("image_size"), "datamodule.image_size")
    return data_cfg


def evaluate(cfg: DictConfig) -> dict[str, float]:
    pl.seed_everything(check_seed(cfg.seed), workers=True, verbose=False)
    if OmegaConf.is_missing(cfg, "ckpt_path") or not cfg.get("ckpt_path"):
        raise ConfigError("ckpt_path is missing: give the run folder or the checkpoint file to evaluate")
    file = open_model_file(cfg.ckpt_path, option="ckpt_path")
    given = cfg.get("datamodule")
    edits = given is not None and "_target_" not in given  # `++datamodule.KEY=...` without `datamodule=`
    stored = None if given and not edits else file.datamodule_config()  # checked before anything is built
    if edits:
        stored = OmegaConf.merge(stored, given)
        check_targets(stored, f"{file.path.name}: datamodule")
    model = load_model(file)
    data_cfg = stored or sized_data_config(cfg.datamodule, file, model)
    out = Path(cfg.paths.output_dir)
    datamodule = instantiate(data_cfg, "datamodule", manifest_dir=str(out))
    trainer: pl.Trainer = instantiate(
        cfg.trainer, "trainer", logger=False, callbacks=[SampleGrid(str(out / "samples"))]
    )
    results = trainer.test(model, datamodule=datamodule)
    metrics = test_metrics(results)
    write_metrics(out, metrics, title=f"{file.path.name}")
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
