"""StyleGAN2's lazy regularizers (Karras et al., CVPR 2020).

- R1 (Mescheder et al., ICML 2018): the squared gradient norm of D at real images. The caller scales it by
  γ/2 and by the lazy interval (e.g. 10/2 · R1 · 16 every 16 steps).
- Path length: the Jacobian of G w.r.t. w, probed with a random image-space direction, should have a
  constant norm; its running mean is tracked with an exponential moving average.

Both keep the graph (create_graph=True) so the penalty trains the network it was computed on.
"""

import math

import torch


def r1_penalty(real_logits: torch.Tensor, real_images: torch.Tensor) -> torch.Tensor:
    """E_x[‖∇_x D(x)‖²]: summed over C,H,W, averaged over the batch. `real_images` must require grad."""
    (grad,) = torch.autograd.grad(real_logits.sum(), real_images, create_graph=True)
    return grad.pow(2).flatten(1).sum(1).mean()


def path_length_penalty(
    fake_images: torch.Tensor,
    latents: torch.Tensor,
    mean_path_length: float | torch.Tensor,
    decay: float = 0.01,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """→ (penalty, new mean path length, path lengths (B,)).

    Per sample, the path length is ‖J_wᵀ y‖ for y ~ N(0, I)/√(H·W), with J_w the Jacobian of the image w.r.t.
    the latents (B, [n_latent,] style_dim): squared norms are summed over style_dim and averaged over layers.
    The mean moves toward the batch mean by `decay`; the penalty is the mean squared deviation from it.
    """
    h, w = fake_images.shape[-2:]
    noise = torch.randn_like(fake_images) / math.sqrt(h * w)
    (grad,) = torch.autograd.grad((fake_images * noise).sum(), latents, create_graph=True)
    path_lengths = grad.pow(2).sum(-1).reshape(len(grad), -1).mean(1).sqrt()
    mean = torch.as_tensor(mean_path_length, dtype=path_lengths.dtype, device=path_lengths.device)
    new_mean = (mean + decay * (path_lengths.detach().mean() - mean)).detach()
    return (path_lengths - new_mean).pow(2).mean(), new_mean, path_lengths
