"""Experiment loggers that work offline by default."""

import netrc
import os

from pytorch_lightning.loggers import WandbLogger


def _wandb_logged_in() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None  # where `wandb login` stores the key
    except (OSError, netrc.NetrcParseError):
        return False


def wandb_logger(**kwargs) -> WandbLogger:
    """A WandbLogger that runs offline unless the user is logged in or has set WANDB_MODE.

    Multirun jobs each get their own run: `facezoo.train` calls `wandb.finish()` when a job ends."""
    if "WANDB_MODE" not in os.environ and not kwargs.get("offline"):
        kwargs["offline"] = not _wandb_logged_in()
    return WandbLogger(**kwargs)
