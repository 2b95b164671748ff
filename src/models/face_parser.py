"""A small face parser for measuring parsing agreement on the synthetic faces (StyleGANEX mask-to-face's
mIoU: the translated face parsed again and compared with the input map; metrics/parsing_iou.py).
StyleGANEX's own BiSeNet (faceparsing.pth) is not available here, so this one is trained, in a minute or two
on a CPU, on the renderer's (image, parsing) pairs in the 19 CelebAMask-HQ classes, from render seeds no data
set uses (`PARSER_SEED`); its mIoU on held-out rendered faces is the ceiling of what it can measure.

The network is the zoo's U-Net (components/unet.py) with 19 logit outputs, cross-entropy, Adam 2e-3. Faces
are rendered at `render_size` and area-pooled to `size` (as a 64 px StyleGANEX output is compared with its
256 px target pooled), labels taken by nearest neighbour.
"""

import torch
import torch.nn.functional as F

from facezoo.datamodules.face_labels import CELEBAMASK_LABELS, NOT_RENDERED, to_celebamask
from facezoo.datamodules.synthetic.renderer import render_faces
from facezoo.models.components.unet import UNetGenerator

PARSER_SEED = 977  # render seeds 977, 978: faces of no synthetic data set (those use seeds 0, 1, 2 + offsets)
RENDERED = [i for i, name in enumerate(CELEBAMASK_LABELS) if name not in NOT_RENDERED]  # what mIoU averages


def rendered_pairs(indices: list[int], size: int, render_size: int,
                   seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(images (B, 3, size, size) in [-1, 1], CelebAMask labels (B, size, size) int64) of rendered faces."""
    faces = render_faces(indices, render_size, seed)
    images = F.adaptive_avg_pool2d(faces["image"], size)
    labels = to_celebamask(faces["parsing"])
    labels = F.interpolate(labels[:, None].float(), size=size, mode="nearest")[:, 0].long()
    return images, labels


def train_face_parser(size: int = 64, render_size: int = 256, steps: int = 300, batch: int = 16,
                      pool: int = 512, seed: int = PARSER_SEED) -> UNetGenerator:
    """A U-Net parser of `size` px faces, trained for `steps` batches drawn from `pool` rendered faces."""
    generator = torch.Generator().manual_seed(seed)
    pool = min(pool, steps * batch)  # no more faces than the steps can use
    images, labels = rendered_pairs(list(range(pool)), size, render_size, seed)
    depth = max(2, size.bit_length() - 3)  # down to 4 px
    parser = UNetGenerator(3, len(CELEBAMASK_LABELS), base_channels=16, depth=depth, max_channels=128,
                           tanh=False)
    optimizer = torch.optim.Adam(parser.parameters(), lr=2e-3)
    for _ in range(steps):
        pick = torch.randint(pool, (batch,), generator=generator)
        loss = F.cross_entropy(parser(images[pick]), labels[pick])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return parser.eval()


@torch.no_grad()
def parse(parser: UNetGenerator, images: torch.Tensor) -> torch.Tensor:
    """Faces (B, 3, H, W) in [-1, 1] → CelebAMask labels (B, H, W) int64."""
    return parser(images).argmax(1)
