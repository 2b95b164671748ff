"""Every documented combination of config groups composes, and the objects it names can be built."""

from pathlib import Path

import pytest
from hydra.utils import instantiate

from facezoo.cli import CONF_DIR
from facezoo.utils.compose import compose_config

CONF = Path(CONF_DIR)
DATAMODULES = sorted(p.stem for p in (CONF / "datamodule").glob("*.yaml"))
STRATEGIES = sorted(p.stem for p in (CONF / "strategy").glob("*.yaml"))
LOGGERS = sorted(p.stem for p in (CONF / "logger").glob("*.yaml"))
MODELS = sorted(p.stem for p in (CONF / "model").glob("*.yaml"))


def test_groups_are_documented():
    assert {"synthetic_retouch", "ffhqr", "synthetic_restore", "ffhq", "paired_folder"} <= set(DATAMODULES)
    assert {"single", "ddp", "ddp_spawn", "ddp_cpu", "fsdp", "multinode"} <= set(STRATEGIES)
    assert {"csv", "wandb", "tensorboard"} <= set(LOGGERS)
    assert {p.stem for p in (CONF / "launcher").glob("*.yaml")} >= {"joblib", "submitit_slurm"}


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("datamodule", ["synthetic_retouch", "synthetic_restore", "ffhqr", "ffhq"])
def test_compose_model_data_strategy(tmp_path, datamodule, strategy):
    cfg = compose_config(
        overrides=[f"datamodule={datamodule}", f"strategy={strategy}", "split.gamma=0.1"], output_dir=tmp_path
    )
    assert cfg.trainer.devices is not None and cfg.trainer.num_nodes >= 1
    if strategy != "single":
        assert cfg.trainer.strategy.get("find_unused_parameters", True)
    if "retouch" in datamodule or datamodule == "ffhqr":
        assert cfg.datamodule.gamma == 0.1 and cfg.datamodule.split_seed == cfg.split.seed != cfg.seed


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("datamodule", DATAMODULES)
def test_model_and_datamodule_instantiate(tmp_path, model, datamodule, vgg19_folder, monkeypatch):
    monkeypatch.setenv("FACEZOO_PRETRAINED", str(vgg19_folder))  # models whose recipe needs VGG-19
    overrides = [f"model={model}", f"datamodule={datamodule}"]
    if datamodule == "paired_folder":
        overrides += [f"datamodule.test_lq_dir={tmp_path}", f"datamodule.test_hq_dir={tmp_path}"]
    cfg = compose_config(overrides=overrides, output_dir=tmp_path)
    assert instantiate(cfg.datamodule) is not None
    module = instantiate(cfg.model)
    assert hasattr(module, "restore") and not module.automatic_optimization


@pytest.mark.parametrize("logger", LOGGERS)
def test_loggers_compose(tmp_path, logger):
    cfg = compose_config(overrides=[f"logger={logger}", "split.gamma=0.2"], output_dir=tmp_path)
    node = next(iter(cfg.logger.values()))
    assert node.save_dir == str(tmp_path)
    if logger == "wandb":
        assert "gamma=0.2" in list(node.tags) and node.group == cfg.model.name


@pytest.mark.parametrize("launcher", ["joblib", "submitit_slurm"])
def test_launchers_compose(tmp_path, launcher):
    cfg = compose_config(overrides=[f"launcher={launcher}"], output_dir=tmp_path)
    assert launcher.split("_")[0] in cfg.hydra.launcher._target_.lower()


def test_gamma_sweep_and_debug_compose(tmp_path):
    cfg = compose_config(overrides=["hparams_search=gamma_sweep", "debug=default"], output_dir=tmp_path)
    assert cfg.hydra.sweeper.params["split.gamma"] == "0.01,0.1,0.2,1.0"
    assert cfg.trainer.max_epochs == 1 and cfg.logger is None
