"""Face alignment (src/faces/align.py): the FFHQ crop and the 5-point template as image-to-crop matrices,
checked against the official recipes (NVlabs ffhq-dataset's quad through PIL, facexlib's template with
OpenCV's estimator) and for the round trip crop -> image."""

import math

import cv2
import numpy as np
import PIL.Image
import pytest
import torch
from kornia.geometry.transform import warp_affine

from facezoo.faces.align import face_template, ffhq_transform, invert_affine, template_transform, warp_faces


def official_ffhq_quad(lm: np.ndarray) -> np.ndarray:
    """The quad of NVlabs/ffhq-dataset download_ffhq.py `recreate_aligned_images` , line by line."""
    eye_left, eye_right = lm[36:42].mean(axis=0), lm[42:48].mean(axis=0)
    eye_avg = (eye_left + eye_right) * 0.5
    eye_to_eye = eye_right - eye_left
    mouth_avg = (lm[48] + lm[54]) * 0.5
    eye_to_mouth = mouth_avg - eye_avg
    x = eye_to_eye - np.flipud(eye_to_mouth) * [-1, 1]
    x /= np.hypot(*x)
    x *= max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)
    y = np.flipud(x) * [-1, 1]
    c = eye_avg + eye_to_mouth * 0.1
    return np.stack([c - x - y, c - x + y, c + x + y, c + x - y])


def apply(matrix: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    return points @ matrix[:, :2].T + matrix[:, 2]


@pytest.mark.parametrize("long_face", [1.0, 1.4])  # the quad's size from the eyes, or from eyes to mouth
def test_ffhq_crop_is_the_official_quad_transformed_as_pil_does(face, photo, long_face):
    landmarks = face(24.0, 0.2, (0.0, 0.0)) * torch.tensor([1.0, long_face]) + torch.tensor([100.0, 90.0])
    quad = official_ffhq_quad(landmarks.double().numpy())
    size = 32
    matrix = ffhq_transform(landmarks[None], size)
    assert matrix.shape == (1, 2, 3)
    corners = apply(matrix[0].double(), torch.from_numpy(quad))
    expected = torch.tensor([[-0.5, -0.5], [-0.5, size - 0.5], [size - 0.5, size - 0.5], [size - 0.5, -0.5]])
    torch.testing.assert_close(corners, expected.double(), atol=1e-4, rtol=0)

    image = photo(200, 200)
    uint8 = image.add(1).mul(127.5).round().byte()
    pil = PIL.Image.fromarray(uint8.permute(1, 2, 0).numpy())
    official = pil.transform((size, size), PIL.Image.QUAD, (quad + 0.5).flatten(), PIL.Image.BILINEAR)
    official = torch.from_numpy(np.array(official)).permute(2, 0, 1).float()
    ours = warp_faces(uint8[None].float(), matrix, size)[0]
    difference = (ours - official).abs()  # PIL stores 8 bits, truncated; a half-pixel shift costs ~4 levels
    assert difference.max() < 1.01 and difference.mean() < 0.6


@pytest.mark.parametrize("angle", [0.0, 0.4, -1.1, 2.5])
def test_ffhq_transform_is_a_similarity_with_level_eyes_whatever_the_pose(face, angle):
    upright = ffhq_transform(face(30.0, 0.0, (50.0, 60.0))[None], 64)[0]
    landmarks = face(45.0, angle, (120.0, 80.0))
    matrix = ffhq_transform(landmarks[None], 64)[0]
    linear = matrix[:, :2]
    scale = linear.det().sqrt()
    torch.testing.assert_close(linear @ linear.T / scale**2, torch.eye(2), atol=1e-5, rtol=0)
    crop = apply(matrix, landmarks)
    eyes = torch.stack([crop[36:42].mean(dim=0), crop[42:48].mean(dim=0)])
    assert eyes[0, 0] < eyes[1, 0] and abs(eyes[0, 1] - eyes[1, 1]) < 1e-3
    # the same face in another pose lands on the same crop pixels
    torch.testing.assert_close(crop, apply(upright, face(30.0, 0.0, (50.0, 60.0))), atol=2e-3, rtol=0)


def test_template_transform_puts_five_points_exactly_on_the_template():
    template = face_template(256)
    angles = torch.tensor([0.0, 0.7, -2.0])
    scales = torch.tensor([0.3, 1.7, 0.9])
    rotation = torch.stack(
        [torch.stack([angles.cos(), -angles.sin()], -1), torch.stack([angles.sin(), angles.cos()], -1)], 1
    )
    points = template @ (rotation * scales[:, None, None]).transpose(1, 2) + torch.tensor([[40.0, -7.0]])
    matrices = template_transform(points, 256)
    assert matrices.shape == (3, 2, 3)
    for matrix, five in zip(matrices, points, strict=True):
        torch.testing.assert_close(apply(matrix, five), template, atol=2e-3, rtol=0)
    torch.testing.assert_close(face_template(512)[0], torch.tensor([192.98138, 239.94708]))


def test_template_transform_agrees_with_facexlibs_opencv_estimate_on_noisy_points():
    rng = np.random.default_rng(0)
    template = face_template(512).double().numpy()
    angle, scale = 0.3, 0.4
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]]) * scale
    points = template @ rotation.T + [100.0, 50.0] + rng.normal(0.0, 1.0, (5, 2))
    ours = template_transform(torch.tensor(points, dtype=torch.float32)[None], 512)[0].double().numpy()
    opencv = cv2.estimateAffinePartial2D(
        points.astype(np.float32), template.astype(np.float32), method=cv2.LMEDS
    )[0]
    np.testing.assert_allclose(
        points @ ours[:, :2].T + ours[:, 2], points @ opencv[:, :2].T + opencv[:, 2], atol=0.05
    )


def test_warp_then_inverse_warp_gives_back_the_face(face, photo):
    image = photo(96, 112)
    landmarks = torch.stack([face(20.0, 0.3, (40.0, 40.0)), face(16.0, -0.2, (80.0, 55.0))])
    matrices = ffhq_transform(landmarks, 80)  # about 1.3 crop pixels per image pixel
    crops = warp_faces(image[None], matrices, 80)
    back = warp_affine(crops, invert_affine(matrices), (96, 112), align_corners=True)
    for k, lm in enumerate(landmarks):
        x0, y0 = lm[:27].amin(dim=0).long().tolist()
        x1, y1 = lm[:27].amax(dim=0).long().tolist()
        error = (back[k, :, y0:y1, x0:x1] - image[:, y0:y1, x0:x1]).abs().max()
        assert error < 0.02, f"face {k}: {error}"
    assert (back[0] - image).abs().amax() > 0.1  # outside the crop it is not the photo


def test_invert_affine_maps_crop_pixels_to_the_upscaled_photos_pixel_centres(face):
    matrices = template_transform(torch.rand(3, 5, 2) * 50 + 20, 64)
    points = torch.rand(3, 7, 2) * 80
    crop = points @ matrices[:, :, :2].transpose(1, 2) + matrices[:, None, :, 2]
    for upscale in (1, 2, 4):
        inverse = invert_affine(matrices, upscale)
        output = crop @ inverse[:, :, :2].transpose(1, 2) + inverse[:, None, :, 2]
        torch.testing.assert_close(output, points * upscale + (upscale - 1) / 2, atol=1e-3, rtol=0)


def test_warp_faces_takes_one_photo_for_all_faces_or_one_per_face(face, photo):
    image = photo(64, 64)
    matrices = template_transform(torch.stack([face(10.0)[[36, 45, 30, 48, 54]] + 32] * 2), 16)
    one = warp_faces(image[None], matrices, 16)
    each = warp_faces(torch.stack([image, image.flip(0)]), matrices, 16)
    assert one.shape == each.shape == (2, 3, 16, 16)
    torch.testing.assert_close(one[0], each[0])
    torch.testing.assert_close(one[1].flip(0), each[1])
    with pytest.raises(ValueError, match="warp_faces"):
        warp_faces(torch.stack([image] * 3), matrices, 16)
    with pytest.raises(ValueError, match=r"\(N, 68, 2\)"):
        ffhq_transform(torch.zeros(68, 2), 16)
    with pytest.raises(ValueError, match=r"\(N, 5, 2\)"):
        template_transform(torch.zeros(2, 4, 2), 16)
