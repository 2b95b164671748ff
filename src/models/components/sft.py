"""Channel-Split Spatial Feature Transform (CS-SFT), GFP-GAN (Wang et al., CVPR 2021, Sec. 3.4).

The U-Net of GFP-GAN predicts a spatial (scale, shift) pair per decoder resolution. With `sft_half` (the
released models) only half of the decoder channels are modulated, to balance the realness of the prior (the
untouched half) and fidelity to the input (the modulated half). The modulation is `out·scale + shift`, not
`out·(1 + scale)` (gfpgan/archs/gfpganv1_clean_arch.py `StyleGAN2GeneratorCSFT.forward`, `sft_half`).
"""

import torch


def channel_split_sft(
    out: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor, sft_half: bool = True
) -> torch.Tensor:
    """(B, C, H, W) features → the first C/2 channels unchanged and the last C/2 ones `·scale + shift`
    (`sft_half`), or all C channels `·scale + shift`. `scale` and `shift` match the modulated channels."""
    if not sft_half:
        return out * scale + shift
    c = out.shape[1]
    if c % 2:
        raise ValueError(f"channel_split_sft: {c} channels cannot be split in half")
    same, modulated = out.split(c // 2, dim=1)
    return torch.cat([same, modulated * scale + shift], 1)
