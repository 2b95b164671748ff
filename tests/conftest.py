"""Shared fixtures. Importing `src` first installs the torchvision shim (src/utils/torchvision_shim.py)."""

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


import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from hydra import compose, initialize_config_dir  # noqa: E402
from hydra.core.global_hydra import GlobalHydra  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from omegaconf import open_dict  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"


def compose_config(
    name: str = "train", overrides: list[str] = (), output_dir: Path | None = None, data_dir=None
):
    """Compose the real config tree as the CLI would, with output (and data) under test folders."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name=name, overrides=list(overrides), return_hydra_config=True)
    if output_dir is not None:
        with open_dict(cfg):
            cfg.hydra.runtime.output_dir = str(output_dir)
            cfg.hydra.runtime.cwd = str(ROOT)
            cfg.hydra.job.num = 0
            if data_dir is not None:
                cfg.paths.data_dir = str(data_dir)
        HydraConfig.instance().set_config(cfg)
    return cfg


def run_module(module: str, *args: str, cwd: Path, env: dict | None = None, timeout: int = 300):
    """Run `python -m <module> args...` the way a user does; returns the CompletedProcess."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), "HYDRA_FULL_ERROR": "0", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    """One folder for the synthetic data sets, rendered once per session."""
    return tmp_path_factory.mktemp("data")


QUIET = ["~callbacks.progress_bar", "callbacks.lr_monitor=null"]
TINY = ["debug=tiny", *QUIET, "datamodule.synthetic.size=64"]  # synthetic data sets only
