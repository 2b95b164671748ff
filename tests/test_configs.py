"""Every documented combination of config groups composes, and the objects it names can be built."""

from pathlib import Path

import pytest
from hydra.errors import MissingConfigException
from hydra.utils import instantiate
from omegaconf import OmegaConf

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


def _compose_pair(tmp_path, model: str, datamodule: str):
    overrides = [f"model={model}", f"datamodule={datamodule}"]
    if datamodule == "paired_folder":
        overrides += [f"datamodule.test_lq_dir={tmp_path}", f"datamodule.test_hq_dir={tmp_path}"]
    return compose_config(overrides=overrides, output_dir=tmp_path)


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("datamodule", DATAMODULES)
def test_every_model_and_datamodule_compose_and_resolve(tmp_path, model, datamodule):
    """Every pair resolves (a model's interpolations into the data config included); building every pair
    would repeat the two instantiations below (models × data modules, ~2 s each)."""
    cfg = _compose_pair(tmp_path, model, datamodule)
    assert OmegaConf.to_container(cfg.model, resolve=True)["_target_"].startswith("facezoo.models.")
    assert OmegaConf.to_container(cfg.datamodule, resolve=True)["_target_"].startswith("facezoo.datamodules.")


@pytest.mark.parametrize("model", MODELS)
def test_every_model_instantiates(tmp_path, model, vgg19_folder, monkeypatch):
    monkeypatch.setenv("FACEZOO_PRETRAINED", str(vgg19_folder))  # models whose recipe needs VGG-19
    module = instantiate(_compose_pair(tmp_path, model, "synthetic_restore").model)
    assert hasattr(module, "restore") and not module.automatic_optimization


@pytest.mark.parametrize("datamodule", DATAMODULES)
def test_every_datamodule_instantiates(tmp_path, datamodule):
    assert instantiate(_compose_pair(tmp_path, "baseline", datamodule).datamodule) is not None


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


RECIPES = sorted(p.stem for p in (CONF / "model" / "recipe").glob("*.yaml"))


@pytest.mark.parametrize("recipe", RECIPES)
def test_recipes_are_a_config_group_of_their_method(tmp_path, recipe):
    model = recipe.rsplit("_", 1)[0]  # gpen_simple -> model=gpen
    overrides = ["debug=tiny", f"model={model}", f"model/recipe={recipe}"]
    module = instantiate(compose_config(overrides=overrides, output_dir=tmp_path).model)
    assert set(module.loss_weights) == set(module.LOSS_WEIGHTS)
    with pytest.raises(MissingConfigException, match=r"recipe/paper'\n\nAvailable options in 'model/recipe'"):
        compose_config(overrides=[f"model={model}", "model/recipe=paper"], output_dir=tmp_path)


def test_experiments_choose_their_recipe_and_the_command_line_another(tmp_path):
    simple = compose_config(overrides=["experiment=gfpgan_synthetic"], output_dir=tmp_path).model
    assert simple.component_discriminator is None and simple.loss_weights.identity == 0
    overrides = ["experiment=gfpgan_synthetic", "model/recipe=gfpgan_paper"]
    paper = compose_config(overrides=overrides, output_dir=tmp_path).model
    assert paper.component_discriminator is not None and paper.loss_weights.identity == 10


@pytest.mark.parametrize("model", MODELS)
def test_every_model_config_has_the_one_shape(tmp_path, model):
    """Injected networks; optimizers (and schedulers) per network group as `_partial_` torch objects; one dict
    of loss weights; the run's iterations; no flat learning-rate or loss-weight keys."""
    cfg = compose_config(overrides=[f"model={model}"], output_dir=tmp_path).model
    assert cfg.discriminator._target_.startswith("facezoo.models.components.")
    optimizers = ("torch.optim.", "pytorch_optimizer.")  # StyleGANEX: pytorch_optimizer.Ranger, as official
    assert all(n._target_.startswith(optimizers) and n._partial_ for n in cfg.optimizers.values())
    schedulers = cfg.schedulers or {}
    assert set(schedulers) <= set(cfg.optimizers) and all(
        n._target_.startswith("torch.optim.lr_scheduler.") and n._partial_ for n in schedulers.values()
    )
    assert cfg.loss_weights and "iterations" in cfg
    flat = [k for k in cfg if k.startswith(("lr", "betas", "optimizer_", "recipe")) or k.endswith("_weight")]
    assert not flat, flat
