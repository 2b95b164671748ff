"""The pretrained StyleGAN2 prior of GAN-prior restoration methods (GPEN, GFP-GAN): the `model.prior` options
and the loading, shared by the modules.

`model.prior`: `checkpoint` (a file, or a KNOWN_WEIGHTS key searched in the pretrained folders), `required`
(refuse to start without one), `from_scratch` (no prior, no warning), `discriminator` (also initialise D from
the prior's D when it has one of the same shape). The prior is loaded when fitting starts, never when a run
resumes (the checkpoint then holds every weight), and the generator EMA is synchronised with it; a new run
without one says so then (a model built for eval or `load_model` says nothing: its weights come from a file).
"""

import logging
from collections.abc import Callable, Mapping
from pathlib import Path

from torch import nn

from facezoo.utils.errors import FacezooError, WeightsNotFoundError
from facezoo.weights.resolver import KNOWN_WEIGHTS, resolve, warn_random_init
from facezoo.weights.state_dict import load_state_dict, match_state_dict

log = logging.getLogger("facezoo")

PRIOR_DEFAULTS = {"checkpoint": None, "required": False, "from_scratch": False, "discriminator": True}


class GANPriorMixin:
    """For a GANModule (src/models/gan.py: `generator`, `discriminator`, `generator_ema`). Subclasses set
    `METHOD` (a name for messages) and `PRIOR_FILES` (what `model.prior.checkpoint` accepts, for messages) and
    implement `prior_decoder()` and `import_prior(state, decoder) -> (decoder state, D state | None)`."""

    METHOD = "the model"
    PRIOR_FILES = "a model=stylegan2 .ckpt"

    def init_prior(self, prior: Mapping | None) -> None:
        self.prior = {**PRIOR_DEFAULTS, **(prior or {})}
        self._prior_loaded = False
        if self.prior["checkpoint"]:
            if self.prior["required"]:  # fail before any data is prepared, not when fitting starts
                self._prior_file(str(self.prior["checkpoint"]))
            return
        if self.prior["required"] and not self.prior["from_scratch"]:
            raise WeightsNotFoundError(
                f"{self.METHOD} needs its StyleGAN2 prior (model.prior.required=true): set "
                f"model.prior.checkpoint=<{self.PRIOR_FILES}> or model.prior.from_scratch=true"
            )

    def prior_decoder(self) -> nn.Module:
        raise NotImplementedError

    import_prior: Callable

    def _prior_file(self, value: str) -> Path:
        if value in KNOWN_WEIGHTS:
            return resolve(value, option="model.prior.checkpoint")
        path = Path(value).expanduser()
        if not path.is_file():
            raise WeightsNotFoundError(
                f"model.prior.checkpoint={value}: file not found ({self.METHOD}'s StyleGAN2 prior: "
                f"{self.PRIOR_FILES}; model.prior.from_scratch=true trains without it)"
            )
        return path

    def load_prior(self, checkpoint: str | None = None) -> bool:
        """Initialise the decoder (and D, when the prior has one of the same shape) from the prior; the EMA
        generator follows. → whether anything was loaded."""
        value = checkpoint or self.prior["checkpoint"]
        if not value:
            return False
        path = self._prior_file(str(value))
        decoder = self.prior_decoder()
        state, d_state = self.import_prior(load_state_dict(path), decoder)
        decoder.load_state_dict(state)
        what = "decoder"
        if d_state is not None and self.prior["discriminator"]:
            try:
                self.discriminator.load_state_dict(match_state_dict(d_state, self.discriminator, "prior D"))
                what += " and discriminator"
            except FacezooError as err:
                log.warning("%s: the prior's discriminator was not loaded: %s", self.METHOD, err)
        if self.generator_ema is not None:
            self.generator_ema.module.load_state_dict(self.generator.state_dict())
        self._prior_loaded = True
        log.info("%s: %s initialised from the prior %s", self.METHOD, what, path)
        return True

    def on_fit_start(self) -> None:
        super().on_fit_start()
        # a resumed run restores every weight from its checkpoint, a run started with `init_from` has its
        # networks from that file (checkpoints.initialise_from): the prior only starts a new run from scratch
        fresh = self.trainer.ckpt_path is None and not getattr(self, "initialised_from", None)
        if fresh and not self._prior_loaded and not self.load_prior():
            self._say_no_prior()

    def _say_no_prior(self) -> None:
        """A new run trains without a prior: say so when training starts, never when a model is only built
        (`load_model`, eval: its weights come from the file)."""
        if self.prior["from_scratch"]:
            log.info(
                "%s: decoder trained from scratch (model.prior.from_scratch=true), no GAN prior", self.METHOD
            )
        else:
            warn_random_init(f"{self.METHOD} decoder (the StyleGAN2 prior; set model.prior.checkpoint)")
