"""The IR-SE50 identity term of GPEN (train_simple.py) and StyleGANEX (the coach's `id` loss): 1 − cos of
the ArcFace embeddings of the official crop (`gpen_identity_crop`: [35:223, 32:220] of a 256 image, scaled),
with its file found by the resolver, built on first use, and skipped, said once, when the file is absent."""

from collections.abc import Mapping
from pathlib import Path

from facezoo.losses.identity import IdentityLoss
from facezoo.models.components.arcface import IRSE50, gpen_identity_crop
from facezoo.weights.resolver import KNOWN_WEIGHTS, resolve
from facezoo.weights.state_dict import load_state_dict, match_state_dict


class IdentityTermMixin:
    """For a FaceZooModule: `find_identity_file(model.identity)` in `__init__` (sets `identity_file`), then
    `identity()` in the training step (None: no file, the term is skipped)."""

    identity_file: Path | None  # (no class defaults: a class attribute would hide nn.Module's registered
    identity_loss: IdentityLoss | None  # submodule of that name)

    def find_identity_file(self, identity: Mapping | None) -> Path | None:
        """model_ir_se50.pth (`identity.weights`, else the pretrained folders), or None, which training says;
        `identity.required` refuses to start without it."""
        options = {"weights": None, "required": False, **(identity or {})}
        self.identity_file = resolve(
            "ir_se50", options["weights"], required=options["required"], option="model.identity.weights"
        )
        if self.identity_file is None:
            self.training_note(
                f"{type(self).__name__}: identity loss SKIPPED: {KNOWN_WEIGHTS['ir_se50'].filename} not "
                "found (put it in pretrained/ or set model.identity.weights=PATH; "
                "model.identity.required=true refuses to start instead)"
            )
        return self.identity_file

    def identity(self) -> IdentityLoss | None:
        """The identity loss, built on first use; None without its file."""
        if self.identity_loss is None and self.identity_file is not None:
            self.identity_loss = load_identity_loss(self.identity_file).to(self.device)
        return self.identity_loss


def load_identity_loss(path) -> IdentityLoss:
    net = IRSE50()
    state = load_state_dict(path)
    # files saved before PyTorch 0.4.1 have no BatchNorm step counters: keep ours (unused in eval)
    counters = {k: v for k, v in net.state_dict().items() if k.endswith("num_batches_tracked")}
    net.load_state_dict(match_state_dict({**counters, **state}, net, "IR-SE50"))
    return IdentityLoss(net, gpen_identity_crop, "cosine")
