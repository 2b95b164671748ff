"""Training entry point: `python -m facezoo.train [overrides]` (Hydra) over the plain function `train(cfg)`.

Each run writes into its Hydra output folder, every file atomically: `config.yaml` (resolved), `split.json`
(retouching data), `checkpoints/{last,best}.ckpt`, `samples/*.png` and `metrics.json` (+ `metrics.md`).
One live run per folder (`utils.run_folder`). Exit codes: 0 done, 2 bad input (one line on stderr), 130 / 143
stopped by Ctrl-C / SIGTERM after saving `last.ckpt` (`callbacks.stopping`).
"""

# isort: off
import facezoo.utils.torchvision_shim  # noqa: F401  (first: lets Lightning import torchvision)
# isort: on
from pathlib import Path

import hydra
import pytorch_lightning as pl
from lightning_fabric.utilities.rank_zero import _get_rank
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import LearningRateMonitor, ModelCheckpoint

from facezoo.callbacks.checkpointing import ConfigInCheckpoint
from facezoo.callbacks.stopping import launched
from facezoo.checkpoints import FacezooCheckpointIO, initialise_from, run_checkpoint
from facezoo.cli import CONF_DIR, check_seed, null_groups_as_deletions, run_cli
from facezoo.utils.atomic import remove_stale_temporaries, write_text
from facezoo.utils.errors import ConfigError
from facezoo.utils.instantiate import instantiate, instantiate_group
from facezoo.utils.results import finish_loggers, test_metrics, write_metrics
from facezoo.utils.run_folder import claim_run_folder, release_run_folder


def _resume_path(cfg: DictConfig) -> str | None:
    if not cfg.get("ckpt_path"):
        return None
    path = run_checkpoint(cfg.ckpt_path, "ckpt_path", names=("last.ckpt",))  # a run resumes its last state
    if not path.is_file():
        raise ConfigError(
            f"ckpt_path={cfg.ckpt_path}: no checkpoint there (expected a .ckpt file or a run folder)"
        )
    if cfg.get("init_from"):
        raise ConfigError(
            f"ckpt_path={cfg.ckpt_path} and init_from={cfg.init_from}: ckpt_path resumes a run, init_from "
            "starts a new one from a file's weights; give one"
        )
    return str(path)


def train(cfg: DictConfig, callbacks: list[pl.Callback] = ()) -> dict[str, float]:
    """Fit (and test) the configured model; returns the final metrics. `callbacks` are added to the
    configured ones (notebooks, tests)."""
    out = Path(cfg.paths.output_dir)
    if (_get_rank() or 0) > 0:  # a rank started by Lightning's script launcher: its rank 0 holds the folder
        return _train(cfg, out, callbacks)
    claim_run_folder(out)
    try:
        remove_stale_temporaries(out)
        return _train(cfg, out, callbacks)
    finally:
        release_run_folder(out)


def _train(cfg: DictConfig, out: Path, callbacks: list[pl.Callback]) -> dict[str, float]:
    pl.seed_everything(check_seed(cfg.seed), workers=True, verbose=False)
    resume = _resume_path(cfg)
    write_text(out / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))

    datamodule = instantiate(cfg.datamodule, "datamodule")
    model = instantiate(cfg.model, "model")
    model.check_image_size(getattr(datamodule, "image_size", None), "datamodule.image_size")
    if cfg.get("init_from"):  # a new run from a file's networks (not a resume)
        initialise_from(model, cfg.init_from)
    loggers = instantiate_group(cfg.get("logger"), "logger")
    callbacks = [*instantiate_group(cfg.get("callbacks"), "callbacks"), ConfigInCheckpoint(cfg), *callbacks]
    if not loggers:  # Lightning refuses an LR monitor without a logger (e.g. `logger=null`)
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    trainer: pl.Trainer = instantiate(
        cfg.trainer, "trainer", callbacks=callbacks, logger=loggers or False, plugins=[FacezooCheckpointIO()]
    )
    for logger in loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    try:
        with launched(trainer):
            if cfg.get("train", True):
                trainer.fit(model, datamodule=datamodule, ckpt_path=resume, weights_only=True)
            metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
            if cfg.get("test", True):
                best = _best(trainer)
                results = trainer.test(model, datamodule=datamodule, ckpt_path=best, weights_only=True)
                metrics.update(test_metrics(results))
    finally:
        finish_loggers(loggers)
    if trainer.is_global_zero:
        write_metrics(out, metrics, title=f"{cfg.model.get('name', 'model')} on {out}")
        _report(out)
    return metrics


def _best(trainer: pl.Trainer) -> str | None:
    """best.ckpt, or None when none was written (no validation): then the model is tested as it ends."""
    return next((c.best_model_path for c in trainer.callbacks if isinstance(c, ModelCheckpoint)), "") or None


def _report(out: Path) -> None:
    """Tell the user where everything went."""
    lines = [f"run folder:  {out}"]
    for name in ("last.ckpt", "best.ckpt"):
        if (out / "checkpoints" / name).is_file():
            lines.append(f"checkpoint:  {out / 'checkpoints' / name}")
    grids = sorted((out / "samples").glob("*.png")) if (out / "samples").is_dir() else []
    lines += [f"samples:     {g}" for g in grids[-2:]]
    lines.append(f"metrics:     {out / 'metrics.json'}")
    print("\n".join(lines))


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="train")
def _main(cfg: DictConfig) -> float | None:
    metrics = run_cli(train, cfg)
    metric = cfg.get("optimized_metric")
    return metrics.get(metric) if metric and metrics else None


def main() -> None:
    null_groups_as_deletions("train")  # `logger=null`: no logger
    _main()


if __name__ == "__main__":
    main()
