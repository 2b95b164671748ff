"""facezoo.callbacks (imports Lightning/torchmetrics: the torchvision shim runs first)."""
# isort: off
import facezoo.utils.torchvision_shim  # noqa: F401  (first: lets Lightning/torchmetrics import torchvision)
# isort: on
