"""StyleGANEX's generator (Yang et al., "StyleGANEX: StyleGAN-Based Manipulation Beyond Cropped Aligned
Faces", ICCV 2023, Sec. 3.2): the StyleGAN2 core `Generator` with `dilation=8`, fed a first-layer feature f
of any size in place of the 4×4 constant. Its parameters are StyleGAN2's; the only extra state is six fixed
[1,2,1]⊗[1,2,1]/16 `blur_weight` buffers (`convs.{0,2,4}.conv`, `to_rgbs.{0,1,2}`), persistent because the
official checkpoints hold them (`decoder.convs.0.conv.blur_weight` …).

What the official forward (williamyang1991/StyleGANEX, models/stylegan2/model.py, `Generator.forward`) does,
and this class with it:
- no f: the constant is average-pooled to 32×32 (every bin is one pixel: the constant blown up ×8), and the
  dilated levels 4…32 then compute, at 32×32, exactly the StyleGAN2 feature maps blown up ×8, ×4, ×2: the
  output is the StyleGAN2 image (`size`×`size`) of the same weights, w+ and noise;
- f (B, channels[4], H_f, W_f), any H_f × W_f: `conv1` and `to_rgb1` run on f, the levels 4…32 stay at
  H_f × W_f, and the output is (size/32)·H_f × (size/32)·W_f (32·|f| at size 1024);
- `first_layer_feature_ind ≠ 0` (pSp always passes 0): f is taken as `conv1`'s output and the encoder's
  `skiplayer` RGB as `to_rgb1`'s, both layers skipped. Here: pass that RGB as `first_layer_rgb`;
- the encoder skips: `fusion_block[k](encoder feature k, out, skip) → (out, skip)` for the first
  min(#features, #fusion layers) levels, before each level's upsampling conv (see `forward`);
- noise: a stored or supplied map of another size is average-pooled to the feature's size (`NoiseInjection`;
  the stored maps keep StyleGAN2's nominal sizes 4, 8, 8, 16, …), random noise is drawn at the feature's size.
"""

from collections.abc import Callable, Mapping, Sequence

import torch

from facezoo.models.components.stylegan2 import BLUR_KERNEL, Generator

DILATION = 8  # the levels 4…32 share one resolution: 32×32, or that of f (1/32 of the output at size 1024)


class StyleGANEXGenerator(Generator):
    """The StyleGANEX decoder: `Generator(size, ..., dilation=8)` (rosinality names, add-noise) with a
    first-layer feature, the first-layer RGB skip and the encoder's skip fusion in `forward`."""

    def __init__(
        self,
        size: int,
        style_dim: int = 512,
        n_mlp: int = 8,
        channel_multiplier: int = 2,
        narrow: float = 1.0,
        blur_kernel=BLUR_KERNEL,
        lr_mlp: float = 0.01,
    ) -> None:
        if size < 4 * DILATION:
            raise ValueError(f"StyleGANEX size {size}: expected a power of two from {4 * DILATION} to 2048")
        super().__init__(
            size,
            style_dim,
            n_mlp,
            channel_multiplier,
            narrow,
            blur_kernel=blur_kernel,
            lr_mlp=lr_mlp,
            dilation=DILATION,
        )

    def load_stylegan2_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        """Load a StyleGAN2 generator's state_dict (the core `Generator` with add-noise, e.g. a zoo
        `model=stylegan2` generator with isconcat=false, or a rosinality `g_ema`: the same keys) without
        retraining: the `blur_weight` constants it lacks keep their values. An official StyleGANEX decoder
        state (which holds them) loads as well. Any other missing, unexpected or mis-shaped key raises
        (a strict `load_state_dict`)."""
        constants = {k: v for k, v in self.state_dict().items() if k.endswith(".blur_weight")}
        self.load_state_dict(constants | dict(state))

    def forward(
        self,
        styles: list[torch.Tensor],
        return_latents: bool = False,
        inject_index: int | None = None,
        truncation: float = 1.0,
        truncation_latent: torch.Tensor | None = None,
        input_is_latent: bool = False,
        noise: list[torch.Tensor | None] | None = None,
        randomize_noise: bool = True,
        first_layer_feature: torch.Tensor | None = None,
        first_layer_rgb: torch.Tensor | None = None,
        skip_features: Sequence[torch.Tensor] | None = None,
        fusion: Sequence[Callable] | None = None,
        editing_w: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """→ (image (B, 3, H, W), unclamped; w+ latent if `return_latents` else None).

        `styles` … `randomize_noise` as the core generator (z codes, or one w+ (B, n_latent, style_dim) with
        `input_is_latent`). Noise maps of any size are pooled to each layer's size.

        `first_layer_feature` f (B, channels[4], H_f, W_f): replaces the constant; (H, W) = (size/32)·(H_f,
        W_f). Without it (H, W) = (size, size).
        `first_layer_rgb` (B, 3, H_f, W_f), with f (official first_layer_feature_ind ≠ 0): f is the output of
        `conv1` and this RGB that of `to_rgb1`; both layers are skipped.

        `skip_features` and `fusion` (official `skip_layer_feature`, `fusion_block`), given together: for
        k < len(fusion) (at most the number of levels, log2(size) − 2), before the upsampling conv
        `convs[2k]` of level 8·2^k,
            decoder_feature, rgb = fusion[k](decoder_feature, skip_features[k], rgb)
        where decoder_feature (B, channels[4·2^k], h_k, w_k) is the output of `conv1` (k = 0) or of
        `convs[2k−1]` (the second conv of level 4·2^k), rgb (B, 3, h_k, w_k) the RGB skip summed so far
        (`to_rgb1` / `to_rgbs[k−1]`), and h_k × w_k = H_f·m × W_f·m with m = max(1, 2^k/8) (levels 4…32
        share f's size; 32×32 in place of H_f × W_f without f). skip_features[k] must have that spatial
        size; features past len(fusion) are not used (the official encoder returns all seven). A fusion
        layer without a toRGB fusion returns rgb unchanged.

        `editing_w` v (B or 1, n_latent, style_dim), video face editing: w+ + v drives the layers, and
        fusion[k] gets v's code 2k + 1 as its attention condition (official `editing_w`)."""
        latent = self.w_plus(styles, inject_index, truncation, truncation_latent, input_is_latent)
        if editing_w is not None:
            latent = latent + editing_w
        if noise is None:
            noise = self.noise_inputs(randomize_noise)
        if first_layer_feature is None:
            if first_layer_rgb is not None:
                raise ValueError("StyleGANEX: first_layer_rgb needs the first_layer_feature it goes with")
            feature = self.first_feature(latent)
        else:
            feature = self._checked_feature(first_layer_feature, first_layer_rgb, latent.shape[0])
        if feature.device.type == "cpu" and (feature.shape[0] == 1 or not torch.is_grad_enabled()):
            # channels-last, which every layer keeps: oneDNN runs the high-resolution layers 1.5-2.5x faster
            # in it (not for per-sample grouped convs, a batch with autograd: they would copy in and out)
            feature = feature.contiguous(memory_format=torch.channels_last)
            if skip_features is not None:  # the fusion layers keep it too (cat of two channels-last maps)
                skip_features = [f.contiguous(memory_format=torch.channels_last) for f in skip_features]
        hooks = None
        if fusion is not None or skip_features is not None:
            hooks = _fusion_hooks(skip_features, fusion, editing_w)
        image = self.synthesize(latent, feature, noise, fusion=hooks, first_rgb=first_layer_rgb)
        return image.contiguous(), (latent if return_latents else None)

    def _checked_feature(self, feature: torch.Tensor, rgb: torch.Tensor | None, batch: int) -> torch.Tensor:
        c4 = self.channels[4]
        if feature.ndim != 4 or feature.shape[:2] != (batch, c4):
            raise ValueError(
                f"StyleGANEX first_layer_feature {tuple(feature.shape)}: expected ({batch}, {c4}, H_f, W_f)"
            )
        if rgb is not None and rgb.shape != (batch, 3, *feature.shape[-2:]):
            raise ValueError(
                f"StyleGANEX first_layer_rgb {tuple(rgb.shape)}: expected {(batch, 3, *feature.shape[-2:])}"
            )
        return feature


def _fusion_hooks(
    features: Sequence[torch.Tensor] | None,
    fusion: Sequence[Callable] | None,
    editing_w: torch.Tensor | None = None,
) -> list:
    """The synthesis hooks (feature, rgb) → (feature, rgb) that apply fusion[k] with skip_features[k] (and
    editing_w's code 2k + 1, the official `editing_w[:, i]` at that level's first code i)."""
    if features is None or fusion is None:
        raise ValueError("StyleGANEX: skip_features and fusion go together (give both or neither)")
    if len(features) < len(fusion):
        raise ValueError(f"StyleGANEX: {len(fusion)} fusion layers but only {len(features)} skip_features")

    def hook(k: int) -> Callable:
        def fuse(out: torch.Tensor, rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            if features[k].shape[-2:] != out.shape[-2:]:
                raise ValueError(
                    f"StyleGANEX skip_features[{k}] is {tuple(features[k].shape[-2:])}, the decoder feature "
                    f"it is fused with {tuple(out.shape[-2:])}"
                )
            if editing_w is None:
                return fusion[k](out, features[k], rgb)
            return fusion[k](out, features[k], rgb, editing_w[:, 2 * k + 1])

        return fuse

    return [hook(k) for k in range(len(fusion))]
