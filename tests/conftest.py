"""Shared fixtures. The torchvision shim is imported explicitly first (src/utils/torchvision_shim.py)."""

import os
from pathlib import Path

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HYDRA_FULL_ERROR", "1")
import pytest  # noqa: E402
import torch  # noqa: E402

import facezoo.utils.torchvision_shim  # noqa: E402,F401

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _isolated_torch_home(tmp_path_factory, monkeypatch):
    """Every test sees an empty torch hub cache: nothing may rely on weights found by chance."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path_factory.getbasetemp() / "torch_home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "cache"))  # checked-image lists


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    """One folder for the synthetic data sets, rendered once per session."""
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="session")
def vgg19_features() -> torch.nn.Sequential:
    """torchvision's vgg19().features with random weights (`make_layers(cfgs['E'])`, no 120M classifier)."""
    from torchvision.models.vgg import cfgs, make_layers

    torch.manual_seed(0)
    return make_layers(cfgs["E"]).eval()


@pytest.fixture(scope="session")
def vgg19_folder(tmp_path_factory, vgg19_features) -> Path:
    """A folder holding a random VGG19 in torchvision layout under the real file name (tests only)."""
    from facezoo.weights.resolver import KNOWN_WEIGHTS

    folder = tmp_path_factory.mktemp("vgg")
    state = {f"features.{k}": v for k, v in vgg19_features.state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(2, 2)  # ignored
    torch.save(state, folder / KNOWN_WEIGHTS["vgg19"].filename)
    return folder


@pytest.fixture(scope="module")
def arcface():
    """GFP-GAN's ArcFace (`ResNetArcFace`) with random weights (tests only), in eval mode."""
    from facezoo.models.components.arcface import ResNetArcFace

    torch.manual_seed(0)
    return ResNetArcFace().eval()  # random weights: tests only


@pytest.fixture(scope="session")
def odd_face(tmp_path_factory) -> Path:
    """The astronaut's face as a 52x60 PNG, sides not multiples of 8 (facezoo-invert, facezoo-translate)."""
    from PIL import Image
    from skimage import data

    path = tmp_path_factory.mktemp("image") / "astronaut.png"
    Image.fromarray(data.astronaut()[20:220, 130:300]).resize((52, 60), Image.BICUBIC).save(path)
    return path
