"""Paste-back (src/faces/paste.py): an unchanged crop leaves the photo unchanged, the feathered mask leaves
no seam, colour matching moves the Lab statistics, faces stack in the given order, upscaling keeps places."""

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from kornia.color import rgb_to_lab

from facezoo.faces.align import ffhq_transform, template_transform, warp_faces
from facezoo.faces.paste import match_colour, paste_back, polygon_mask
from facezoo.utils.errors import ConfigError


def largest_step(image: torch.Tensor) -> float:
    """The largest difference between two neighbouring pixels (across rows or columns, any channel)."""
    return max(image.diff(dim=-1).abs().max().item(), image.diff(dim=-2).abs().max().item())


def constant_faces(colours: list, size: int) -> torch.Tensor:
    return torch.tensor(colours, dtype=torch.float32)[:, :, None, None].expand(-1, -1, size, size).clone()


def test_pasting_the_unchanged_crops_back_leaves_the_photo_unchanged(face, photo):
    image = photo(120, 140)
    landmarks = torch.stack([face(24.0, 0.3, (45.0, 50.0)), face(20.0, -0.2, (100.0, 60.0))])
    for size in (32, 128):  # crops smaller (low-pass filtered on the way back) and larger than the faces
        matrices = ffhq_transform(landmarks, size)
        out = paste_back(image, warp_faces(image[None], matrices, size), matrices, landmarks)
        assert out.shape == image.shape
        assert (out - image).abs().max() < 0.02, size


def test_crops_shrunk_on_the_way_back_are_low_pass_filtered_first(face):
    landmarks = face(12.0, 0.0, (40.0, 40.0))[None]
    matrices = ffhq_transform(landmarks, 128)  # about 5 crop pixels per photo pixel
    stripes = torch.arange(128).remainder(2).float().mul(2).sub(1).expand(1, 3, 128, 128)  # +-1 columns
    out = paste_back(torch.zeros(3, 80, 80), stripes, matrices, landmarks)
    assert out.abs().max() < 0.1  # the stripes average out instead of aliasing


def test_a_constant_face_blends_in_without_a_seam(face):
    background, colour = -0.5, 0.5
    image = torch.full((3, 160, 160), background)
    landmarks = face(60.0, 0.1, (80.0, 60.0))[None]
    matrices = ffhq_transform(landmarks, 64)
    restored = constant_faces([[colour] * 3], 64)
    soft = paste_back(image, restored, matrices, landmarks)
    hard = paste_back(image, restored, matrices, landmarks, feather=0.0)
    nose = landmarks[0, 30].round().long().tolist()
    assert soft[:, nose[1], nose[0]].allclose(torch.tensor(colour))  # the face is pasted in full ...
    assert largest_step(soft) < 0.1 * (colour - background)  # ... with a gradual edge
    assert largest_step(hard) > 0.5 * (colour - background)
    whole_crop = paste_back(image, restored, matrices, landmarks, region="crop")
    assert (whole_crop != background).sum() > (soft != background).sum()
    assert largest_step(whole_crop) < 0.1 * (colour - background)


def test_the_mask_is_one_inside_the_face_and_zero_outside_its_hull(face):
    landmarks = face(40.0, -0.3, (60.0, 50.0))
    hull = cv2.convexHull(np.round(landmarks[:27].numpy() * 256).astype(np.int32))
    inside = cv2.fillConvexPoly(np.zeros((110, 120), np.uint8), hull, 1, lineType=cv2.LINE_8, shift=8)
    inside = torch.from_numpy(inside).bool()
    soft = polygon_mask(landmarks[None, :27], torch.tensor([12.0]), 110, 120)[0, 0]
    hard = polygon_mask(landmarks[None, :27], torch.tensor([0.0]), 110, 120)[0, 0]
    assert soft.min() >= 0 and soft.max() <= 1
    nose = landmarks[30].round().long().tolist()
    assert soft[nose[1], nose[0]] == 1.0
    assert soft[~inside].max() < 1e-3
    kernel = np.ones((3, 3), np.uint8)  # as OpenCV rasterises the hull, give or take a pixel on its edge
    assert (
        hard.bool() & ~torch.from_numpy(cv2.dilate(inside.numpy().astype(np.uint8), kernel)).bool()
    ).sum() == 0
    assert (
        ~hard.bool() & torch.from_numpy(cv2.erode(inside.numpy().astype(np.uint8), kernel)).bool()
    ).sum() == 0
    assert soft.sum() < inside.sum() - 20 * 12  # eroded: the soft edge lies inside the hull
    shifted = polygon_mask(
        landmarks[None, :27] + 10, torch.tensor([12.0]), 50, 60, origins=torch.tensor([[10.0, 10.0]])
    )
    torch.testing.assert_close(shifted[0, 0], soft[:50, :60])
    for degenerate in (torch.full((1, 27, 2), 30.0), torch.rand(1, 1, 2) * torch.arange(27.0)[:, None]):
        assert polygon_mask(degenerate, torch.tensor([0.0]), 60, 60).max() == 0  # a point, a line


def test_colour_matching_moves_the_lab_statistics_to_the_photos(face, photo):
    landmarks = face(24.0, 0.2, (60.0, 50.0))[None]
    matrices = ffhq_transform(landmarks, 64)
    reference = warp_faces(photo(100, 120)[None], matrices, 64)
    restored = (reference * 0.7 + torch.tensor([0.3, -0.1, 0.1])[:, None, None]).clamp(-1, 1)
    crop_landmarks = landmarks @ matrices[0, :, :2].T + matrices[0, :, 2]
    weights = polygon_mask(crop_landmarks[:, :27], torch.tensor([7.0]), 64, 64)

    def lab_stats(image):
        lab = rgb_to_lab(image.add(1).div(2))
        mean = (lab * weights).sum(dim=(2, 3)) / weights.sum()
        std = (((lab - mean[..., None, None]) ** 2 * weights).sum(dim=(2, 3)) / weights.sum()).sqrt()
        return mean, std

    matched = match_colour(restored, reference, weights)
    mean, std = lab_stats(matched)
    target_mean, target_std = lab_stats(reference)
    assert (lab_stats(restored)[0] - target_mean).abs().max() > 5
    torch.testing.assert_close(mean, target_mean, atol=0.5, rtol=0)
    torch.testing.assert_close(std, target_std, atol=0.5, rtol=0.05)

    flat = restored.mean(dim=(2, 3), keepdim=True) + 0.01 * torch.randn_like(restored)
    flat_std = lab_stats(flat)[1]
    assert torch.allclose(lab_stats(match_colour(flat, reference, weights))[1], 2 * flat_std, rtol=0.1)

    image = photo(100, 120)
    plain = paste_back(image, restored, matrices, landmarks)
    matched = paste_back(image, restored, matrices, landmarks, color_match=True)
    assert (matched - image).abs().mean() < 0.5 * (plain - image).abs().mean()


def test_overlapping_faces_are_stacked_in_the_given_order(face):
    image = torch.zeros(3, 140, 150)
    landmarks = torch.stack([face(30.0, 0.0, (60.0, 60.0)), face(30.0, 0.1, (80.0, 65.0))])
    matrices = ffhq_transform(landmarks, 48)
    colours = [[0.8, -0.8, 0.0], [-0.8, 0.8, 0.4]]
    first_then_second = paste_back(image, constant_faces(colours, 48), matrices, landmarks)
    second_then_first = paste_back(
        image, constant_faces(colours[::-1], 48), matrices.flip(0), landmarks.flip(0)
    )
    x, y = landmarks[:, 30].mean(dim=0).round().long().tolist()  # between the noses: inside both faces
    torch.testing.assert_close(first_then_second[:, y, x], torch.tensor(colours[1]))
    torch.testing.assert_close(second_then_first[:, y, x], torch.tensor(colours[0]))


def test_upscale_two_doubles_the_photo_and_keeps_the_faces_in_place(face, photo):
    image = photo(60, 70)
    landmarks = face(14.0, 0.2, (35.0, 25.0))[None]
    points5 = landmarks[:, [36, 45, 30, 48, 54]]  # any five points serve for the geometry
    matrices = template_transform(points5, 64)
    crops = warp_faces(image[None], matrices, 64)
    out = paste_back(image, crops, matrices, landmarks, upscale=2)
    assert out.shape == (3, 120, 140)
    bicubic = F.interpolate(image[None], scale_factor=2, mode="bicubic")[0].clamp(-1, 1)
    assert (out - bicubic).abs().max() < 0.01  # the face pasted where the photo's face is

    red = paste_back(image, constant_faces([[1.0, -1.0, -1.0]], 64), matrices, landmarks, upscale=2)
    nose = (landmarks[0, 30] * 2 + 0.5).round().long().tolist()
    torch.testing.assert_close(red[:, nose[1], nose[0]], torch.tensor([1.0, -1.0, -1.0]))


def test_faces_partly_or_wholly_outside_the_photo_and_no_faces(face, photo):
    image = photo(50, 60)
    landmarks = torch.stack([face(20.0, 0.0, (5.0, 10.0)), face(20.0, 0.0, (300.0, 300.0))])
    matrices = ffhq_transform(landmarks, 32)
    out = paste_back(image, constant_faces([[1.0, 1.0, 1.0]] * 2, 32), matrices, landmarks)
    assert out.shape == image.shape and (out != image).any()
    assert out[:, 40:, 40:].equal(image[:, 40:, 40:])
    nothing = paste_back(
        image, torch.zeros(0, 3, 32, 32), torch.zeros(0, 2, 3), torch.zeros(0, 68, 2), upscale=3
    )
    assert nothing.shape == (3, 150, 180)


@pytest.mark.parametrize(
    "option, error",
    [({"upscale": 0}, "upscale"), ({"upscale": 1.5}, "upscale"), ({"region": "oval"}, "region")]
    + [({"feather": -1.0}, "feather")],
)
def test_bad_options_are_refused_by_name(face, photo, option, error):
    landmarks = face(20.0)[None] + 30
    with pytest.raises(ConfigError, match=error):
        paste_back(
            photo(60, 60), torch.zeros(1, 3, 16, 16), ffhq_transform(landmarks, 16), landmarks, **option
        )
    with pytest.raises(ValueError, match="landmarks68"):
        paste_back(photo(60, 60), torch.zeros(1, 3, 16, 16), ffhq_transform(landmarks, 16), landmarks[:, :5])
