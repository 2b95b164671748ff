"""facezoo: face retouching and blind face restoration methods in one Lightning + Hydra code base.

Importing `facezoo` itself does nothing else. The sub-packages that need Lightning, torchmetrics or lpips
(`models`, `metrics`, `losses`, `callbacks`, `datamodules`) and the entry points import
`facezoo.utils.torchvision_shim` first, explicitly; see that module.
"""

__version__ = "0.1.0"
