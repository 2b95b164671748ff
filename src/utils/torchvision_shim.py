"""Let `import torchvision` work when its compiled ops cannot load (a CUDA wheel next to a CPU torch).

torchvision registers fake kernels for `torchvision::nms`/`qnms` at import time, which fails when its
`_C.so` cannot be loaded. Defining the two schemas first lets the pure-Python parts import (and with
them torchmetrics, Lightning and lpips). facezoo never calls torchvision's compiled ops or image I/O.
Where `_C.so` loads (a matching torchvision build) this does nothing.

Importing this module applies the shim (once). It is imported explicitly, first, by the sub-packages whose
modules import Lightning / torchmetrics / lpips (`facezoo.models`, `.metrics`, `.losses`, `.callbacks`,
`.datamodules`) and by the entry points; `import facezoo` alone does not touch torch or torchvision.
"""

import importlib.util
import os
import sys

_LIBRARIES = []  # keep the torch.library fragment alive


def install() -> bool:
    """Define the op schemas if needed; return True when the shim was applied."""
    if "torchvision" in sys.modules or _LIBRARIES:
        return False
    spec = importlib.util.find_spec("torchvision")
    if spec is None or spec.origin is None:
        return False
    import torch

    try:
        torch.ops.load_library(os.path.join(os.path.dirname(spec.origin), "_C.so"))
        return False
    except (OSError, RuntimeError):
        pass
    lib = torch.library.Library("torchvision", "FRAGMENT")
    for name in ("nms", "qnms"):
        lib.define(f"{name}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _LIBRARIES.append(lib)
    return True


install()
