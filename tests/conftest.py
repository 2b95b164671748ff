"""Shared fixtures. Importing `src` first installs the torchvision shim (see src/utils/torchvision_shim.py)."""

import os

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HYDRA_FULL_ERROR", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

import src  # noqa: E402,F401

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _isolated_torch_home(tmp_path_factory, monkeypatch):
    """Every test sees an empty torch hub cache: nothing may rely on weights found by chance."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path_factory.getbasetemp() / "torch_home"))
