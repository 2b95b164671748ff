"""Face alignment as batched similarity transforms: (N, 2, 3) matrices mapping image pixels to crop pixels.

Pixel coordinates follow the landmarks': x right, y down, the centre of pixel (row i, column j) at (j, i).
kornia's `warp_affine` with `align_corners=True` uses the same convention, so one matrix serves the crop
(`warp_faces`) and, inverted, the paste-back (`invert_affine`).

Two alignments, one per family of models:
- `ffhq_transform`: the FFHQ crop (NVlabs ffhq-dataset, download_ffhq.py `recreate_aligned_images`), from
  dlib's 68 landmarks; what FFHQ-trained models (DFDNet, StyleGANEX, ...) expect.
- `template_transform`: the 5-point template of GFP-GAN/GPEN inference (facexlib `FaceRestoreHelper`).
"""

import torch
from kornia.geometry.transform import invert_affine_transform, warp_affine
from torch import Tensor

# facexlib/utils/face_restoration_helper.py, FaceRestoreHelper.__init__ (xinntao/facexlib 260620a):
# "standard 5 landmarks for FFHQ faces with 512 x 512", in five_points' order (left eye, right eye, nose tip,
# left mouth corner, right mouth corner); facexlib scales it by face_size / 512.
FACE_TEMPLATE_512 = (
    (192.98138, 239.94708),
    (318.90277, 240.1936),
    (256.63416, 314.01935),
    (201.26117, 371.41043),
    (313.08905, 371.15118),
)


def _check_points(points: Tensor, count: int, name: str) -> Tensor:
    points = torch.as_tensor(points)
    if points.ndim != 3 or points.shape[1:] != (count, 2):
        raise ValueError(f"{name}: expected (N, {count}, 2) (x, y) points, got {tuple(points.shape)}")
    return points.float() if not points.is_floating_point() else points


def _similarity(scale_cos: Tensor, scale_sin: Tensor, translation: Tensor) -> Tensor:
    """(N,) s·cos θ, (N,) s·sin θ, (N, 2) t -> (N, 2, 3) [[s·cos, -s·sin, tx], [s·sin, s·cos, ty]]."""
    rows = torch.stack([scale_cos, -scale_sin, scale_sin, scale_cos], dim=-1).view(-1, 2, 2)
    return torch.cat([rows, translation.unsqueeze(-1)], dim=-1)


def ffhq_transform(landmarks68: Tensor, size: int) -> Tensor:
    """(N, 68, 2) dlib/iBUG landmarks in image pixels -> (N, 2, 3) image-to-crop matrices of the FFHQ crop.

    The oriented square of `recreate_aligned_images` (NVlabs/ffhq-dataset download_ffhq.py, rotate_level on):
    eye_left / eye_right = mean of landmarks 36-41 / 42-47, mouth corners 48 and 54;
    x = eye_to_eye - flipud(eye_to_mouth) * [-1, 1], x /= hypot(x),
    x *= max(hypot(eye_to_eye) * 2.0, hypot(eye_to_mouth) * 1.8); y = flipud(x) * [-1, 1];
    c = eye_avg + eye_to_mouth * 0.1; quad = [c - x - y, c - x + y, c + x + y, c + x - y].
    The script hands `quad + 0.5` to PIL's QUAD transform, which maps it onto the edges of the output square,
    so in pixel-centre coordinates the corner c - x - y goes to (-0.5, -0.5) and c + x + y to
    (size - 0.5, size - 0.5). The script's resampling (shrink, crop, pad, 4096 px then downsize) changes the
    pixels, not this geometry; its blur-padding of the area outside the photo is not reproduced (see
    `warp_faces`).
    """
    lm = _check_points(landmarks68, 68, "ffhq_transform landmarks68")
    eye_left = lm[:, 36:42].mean(dim=1)
    eye_right = lm[:, 42:48].mean(dim=1)
    eye_avg = (eye_left + eye_right) * 0.5
    eye_to_eye = eye_right - eye_left
    mouth_avg = (lm[:, 48] + lm[:, 54]) * 0.5
    eye_to_mouth = mouth_avg - eye_avg

    def perpendicular(v: Tensor) -> Tensor:  # flipud(v) * [-1, 1]
        return torch.stack([-v[:, 1], v[:, 0]], dim=-1)

    x = eye_to_eye - perpendicular(eye_to_mouth)
    half = torch.maximum(eye_to_eye.norm(dim=-1) * 2.0, eye_to_mouth.norm(dim=-1) * 1.8)  # |x| = |y|
    x_dir = x / x.norm(dim=-1, keepdim=True)
    centre = eye_avg + eye_to_mouth * 0.1
    # crop = a·R·(p - c) + (size - 1) / 2, R's rows x_dir and perpendicular(x_dir), a = size / (2|x|).
    a = size / (2.0 * half)
    scale_cos, scale_sin = a * x_dir[:, 0], -a * x_dir[:, 1]
    rotation = _similarity(scale_cos, scale_sin, torch.zeros_like(centre))[:, :, :2]
    translation = (size - 1) / 2.0 - (rotation @ centre.unsqueeze(-1)).squeeze(-1)
    return torch.cat([rotation, translation.unsqueeze(-1)], dim=-1)


def face_template(size: int) -> Tensor:
    """(5, 2) facexlib's 512-px template scaled to a `size` crop (facexlib multiplies by face_size / 512)."""
    return torch.tensor(FACE_TEMPLATE_512) * (size / 512.0)


def template_transform(points5: Tensor, size: int) -> Tensor:
    """(N, 5, 2) five points (left eye, right eye, nose tip, mouth corners) in image pixels -> (N, 2, 3)
    image-to-crop matrices: the least-squares similarity onto facexlib's template scaled to `size`.

    The closed form is Umeyama's (rotation, uniform scale, translation; no reflection), as skimage's
    SimilarityTransform. facexlib uses cv2.estimateAffinePartial2D(..., method=cv2.LMEDS) "for the
    equivalence to skimage transform": LMEDS fits 2-point samples, keeps the one with the least median
    residual and refines it on its inliers. With consistent points both give the same matrix; with one
    outlying point LMEDS may ignore it, where least squares spreads its error over all five.
    """
    src = _check_points(points5, 5, "template_transform points5")
    dst = face_template(size).to(src)
    src_mean, dst_mean = src.mean(dim=1), dst.mean(dim=0)
    p, q = src - src_mean.unsqueeze(1), dst - dst_mean
    norm = p.square().sum(dim=(1, 2)).clamp_min(torch.finfo(p.dtype).tiny)
    # q ≈ z·p with z = s·e^{iθ} as a complex number: z = Σ conj(p)·q / Σ|p|².
    scale_cos = (p[..., 0] * q[..., 0] + p[..., 1] * q[..., 1]).sum(dim=1) / norm
    scale_sin = (p[..., 0] * q[..., 1] - p[..., 1] * q[..., 0]).sum(dim=1) / norm
    linear = _similarity(scale_cos, scale_sin, torch.zeros_like(src_mean))[:, :, :2]
    translation = dst_mean - (linear @ src_mean.unsqueeze(-1)).squeeze(-1)
    return torch.cat([linear, translation.unsqueeze(-1)], dim=-1)


def warp_faces(images: Tensor, matrices: Tensor, size: int) -> Tensor:
    """Crop N faces: images (N or 1, C, H, W), image-to-crop matrices (N, 2, 3) -> (N, C, size, size).

    Bilinear, batched (kornia `warp_affine`). Where a crop reaches past the photo, it is filled by reflection
    about the border pixels. The official FFHQ script instead pads by reflection and then fades that area
    into a Gaussian-blurred copy and towards the photo's median colour (blur-padding); facexlib fills with
    constant gray (135, 133, 132) by default. A plain reflection keeps a sharp mirror image there, which the
    paste-back never shows (its mask lies inside the face).
    """
    if images.ndim != 4 or matrices.ndim != 3 or matrices.shape[1:] != (2, 3):
        raise ValueError(
            f"warp_faces: expected images (N or 1, C, H, W) and matrices (N, 2, 3), "
            f"got {tuple(images.shape)} and {tuple(matrices.shape)}"
        )
    if images.shape[0] not in (1, matrices.shape[0]):
        raise ValueError(
            f"warp_faces: {images.shape[0]} images for {matrices.shape[0]} matrices (expected 1 or N)"
        )
    images = images.expand(matrices.shape[0], -1, -1, -1)
    matrices = matrices.to(images.dtype)
    return warp_affine(
        images, matrices, (size, size), mode="bilinear", padding_mode="reflection", align_corners=True
    )


def apply_affine(matrices: Tensor, points: Tensor) -> Tensor:
    """(N, 2, 3) affine matrices applied to (N, P, 2) points (e.g. landmarks into their crops' pixels)."""
    return points @ matrices[:, :, :2].transpose(1, 2) + matrices[:, None, :, 2]


def invert_affine(matrices: Tensor, upscale: int = 1) -> Tensor:
    """(N, 2, 3) image-to-crop matrices -> crop-to-output matrices, the output being the image upscaled by the
    integer `upscale`: a pixel centre p of the image lies at upscale·p + (upscale - 1) / 2 in the output."""
    inverse = invert_affine_transform(matrices) * upscale
    return torch.cat([inverse[:, :, :2], inverse[:, :, 2:] + (upscale - 1) / 2.0], dim=-1)
