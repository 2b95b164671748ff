"""The GAN prior options (src/models/gan_prior.py): a run without a prior says so when training starts, and
only then; a model built for eval or by `load_model` (its weights come from a file) says nothing. The same
holds for every training-only note (`FaceZooModule.training_note`, e.g. a loss skipped for want of its file).
Networks have random weights on purpose."""

import logging

import pytest
import torch
from omegaconf import open_dict

from facezoo.checkpoints import config_entries, load_model
from facezoo.utils.compose import compose_config
from facezoo.utils.instantiate import instantiate
from helpers import TINY, first_batch, fit_repeated

GPEN = [*TINY, "model=gpen", "datamodule=synthetic_restore"]


@pytest.mark.parametrize(
    ("prior", "said"),
    [("model.prior.from_scratch=true", "decoder trained from scratch"),
     ("model.prior.from_scratch=false", "RANDOMLY INITIALISED"),
     ("model/recipe=gpen_simple", "identity loss SKIPPED: model_ir_se50.pth not found")],
)
def test_no_prior_is_said_when_training_starts_not_when_a_model_is_built(tmp_path, data_dir, caplog, prior,
                                                                          said):
    cfg = compose_config(overrides=[*GPEN, prior], output_dir=tmp_path, data_dir=data_dir)
    with open_dict(cfg):
        del cfg["hydra"]
    batch = first_batch(instantiate(cfg.datamodule, "datamodule"))
    torch.manual_seed(0)
    with caplog.at_level(logging.INFO, logger="facezoo"):
        model = instantiate(cfg.model, "model")
        assert said not in caplog.text  # built, not trained
        fit_repeated(model, batch, 1)
        assert caplog.text.count(said) == 1
        caplog.clear()
        path = tmp_path / "gpen.ckpt"
        torch.save({"state_dict": model.state_dict(), **config_entries(cfg)}, path)
        load_model(path).restore(batch["lq"])
    assert said not in caplog.text  # load_model (and eval) build the model silently
