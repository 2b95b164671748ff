"""GAN objectives on discriminator logits.

- `vanilla`: binary cross-entropy (Goodfellow et al.; Pix2Pix), generator uses the non-saturating form.
- `lsgan`: least squares (Mao et al.), real → 1, fake → 0.
- `hinge`: discriminator max(0, 1 − D(real)) + max(0, 1 + D(fake)); generator −D(fake).
- `softplus`: StyleGAN2's non-saturating logistic loss, softplus(−D(real)) + softplus(D(fake)); generator
  softplus(−D(fake)) (BasicSR calls it `wgan_softplus`). Mathematically the same as `vanilla`.
"""

import torch
import torch.nn.functional as F

KINDS = ("vanilla", "lsgan", "hinge", "softplus")


def _check(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"gan loss {kind!r}: expected one of {KINDS}")


def generator_loss(fake_logits: torch.Tensor, kind: str = "vanilla") -> torch.Tensor:
    """Loss for the generator: make the discriminator call its output real."""
    _check(kind)
    if kind == "lsgan":
        return (fake_logits - 1).pow(2).mean()
    if kind == "hinge":
        return -fake_logits.mean()
    return F.softplus(-fake_logits).mean()  # = BCE(fake, real label)


def discriminator_loss(
    real_logits: torch.Tensor, fake_logits: torch.Tensor, kind: str = "vanilla"
) -> torch.Tensor:
    """Loss for the discriminator: real → real, fake → fake (the two terms are averaged for vanilla/lsgan)."""
    _check(kind)
    if kind == "lsgan":
        return 0.5 * ((real_logits - 1).pow(2).mean() + fake_logits.pow(2).mean())
    if kind == "hinge":
        return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()
    loss = F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
    return 0.5 * loss if kind == "vanilla" else loss
