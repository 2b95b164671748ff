"""facezoo: face retouching and blind face restoration methods in one Lightning + Hydra code base."""

from src.utils.torchvision_shim import install as _install_torchvision_shim

_install_torchvision_shim()
