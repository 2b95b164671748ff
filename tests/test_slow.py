"""Slower end-to-end runs (`make test-full`): the default recipe learns on the synthetic data."""

import pytest

from facezoo.train import train
from facezoo.utils.compose import compose_config
from helpers import QUIET


@pytest.mark.slow
def test_default_recipe_learns(tmp_path, data_dir):
    """The baseline recipe (baseline_synthetic), shortened: the generator EMA ends far above its start."""
    overrides = [
        "experiment=baseline_synthetic",
        *QUIET,
        "trainer.max_epochs=4",
        "datamodule.synthetic.size=64",
        "datamodule.image_size=64",
        "model.generator.depth=6",
    ]
    metrics = train(compose_config(overrides=overrides, output_dir=tmp_path, data_dir=data_dir))
    # an untrained generator scores about 12 dB / SSIM 0.01 here (see test_train); 4 epochs give ~21 dB / 0.33
    assert metrics["test/psnr"] > 18 and metrics["test/ssim"] > 0.2, metrics
