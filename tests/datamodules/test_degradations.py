"""Batched blind degradation (src/datamodules/degradations/) against its OpenCV reference and its spec."""

import math

import cv2
import numpy as np
import pytest
import torch
from kornia.filters import filter2d

from facezoo.datamodules.degradations.blur import blur, gaussian_kernels, reflect101_pad
from facezoo.datamodules.degradations.color import (
    TORCHVISION_GRAY,
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
)
from facezoo.datamodules.degradations.jpeg import JPEG_LUMA, jpeg_tables
from facezoo.datamodules.degradations.pipeline import BlindDegradation
from facezoo.datamodules.degradations.resize import replicate_outside
from reference_degradations import benchmark, bivariate_gaussian, degrade_cv2

OFF = dict(blur_prob=0.0, downsample_prob=0.0, noise_prob=0.0, jpeg_prob=0.0, color_jitter_prob=0.0,
           gray_prob=0.0, color_jitter_pt_prob=0.0)  # fmt: skip


@pytest.fixture(scope="module")
def face() -> np.ndarray:
    """A natural RGB image (72 x 80) with faces, edges and flat areas."""
    import skimage.data

    return cv2.resize(skimage.data.astronaut(), (80, 72), interpolation=cv2.INTER_AREA)


def to_tensor(img: np.ndarray, batch: int = 1) -> torch.Tensor:
    return (torch.from_numpy(img).permute(2, 0, 1)[None].float() / 127.5 - 1).repeat(batch, 1, 1, 1)


def to_levels(x: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) in [-1, 1] -> (B, H, W, 3) float uint8 levels."""
    return ((x + 1) * 127.5).round().permute(0, 2, 3, 1).numpy().astype(np.float64)


def high_freq_energy(x: np.ndarray) -> float:
    return float(np.mean(np.diff(x, axis=-2) ** 2) + np.mean(np.diff(x, axis=-3) ** 2))


# -------------------------------------------------------------------------------------------- whole module


def test_same_seed_same_output_and_different_seed_differs(face):
    deg = BlindDegradation(color_jitter_prob=0.5, gray_prob=0.5, color_jitter_pt_prob=0.5)
    hq = to_tensor(face, 4)
    a, b, c = deg(hq, 7), deg(hq, 7), deg(hq, 8)
    assert torch.equal(a["lq"], b["lq"]) and torch.equal(a["hq"], b["hq"])
    assert all(torch.equal(a["params"][k], b["params"][k]) for k in a["params"])
    assert not torch.equal(a["lq"], c["lq"])
    assert not torch.equal(a["params"]["scale"], c["params"]["scale"])


def test_output_shape_dtype_range_and_uint8_levels(face):
    hq = to_tensor(face, 6)
    out = BlindDegradation()(hq, 0)
    lq = out["lq"]
    assert lq.shape == hq.shape and lq.dtype == torch.float32
    assert lq.min() >= -1 and lq.max() <= 1
    levels = (lq + 1) * 127.5
    assert torch.allclose(levels, levels.round(), atol=1e-4)
    assert torch.equal(out["hq"], hq)  # GFP-GAN defaults leave the HQ alone (gt_gray off)
    assert not torch.equal(lq, hq)


def test_odd_small_sizes_work():
    hq = torch.rand(3, 3, 16, 21) * 2 - 1
    out = BlindDegradation(color_jitter_pt_prob=1.0, downsample_range=(6.0, 8.0))(hq, 3)
    assert out["lq"].shape == hq.shape and torch.isfinite(out["lq"]).all()
    assert (out["params"]["lr_h"] == 2).all()  # int(16 // s) for s in [6, 8)


def test_sampled_parameters_inside_ranges():
    hq = torch.zeros(64, 3, 16, 16)
    p = BlindDegradation()(hq, 1)["params"]
    iso = p["kernel_iso"]
    assert 10 < iso.sum() < 54  # iso / aniso 50:50
    ranges = [("sigma_x", (0.1, 10)), ("sigma_y", (0.1, 10)), ("theta", (-math.pi, math.pi)),
              ("scale", (0.8, 8)), ("noise_sigma", (0, 20)), ("quality", (60, 100))]  # fmt: skip
    for name, (low, high) in ranges:
        assert low <= p[name].min() and p[name].max() <= high, name
        values = p[name][~iso] if name == "theta" else p[name]
        assert values.unique().numel() > 20, name  # spread out, not one value
    assert torch.equal(p["sigma_y"][iso], p["sigma_x"][iso]) and (p["theta"][iso] == 0).all()
    assert p["quality"].dtype == torch.int64
    assert (p["kernel_size"] == 41).all()
    assert p["shift"].abs().max() <= 20 / 255 and p["shift"].shape == (64, 3)
    assert torch.equal(p["lr_h"], (16 / p["scale"].double()).floor().long())
    for name, prob in [("blur_applied", 1.0), ("noise_applied", 1.0), ("jpeg_applied", 1.0)]:
        assert p[name].float().mean() == prob
    assert 5 < p["shift_applied"].sum() < 35 and 5 < p["jitter_applied"].sum() < 35  # p = 0.3
    assert all(sorted(row.tolist()) == [0, 1, 2, 3] for row in p["jitter_order"])
    for name, (low, high) in [("brightness", (0.5, 1.5)), ("contrast", (0.5, 1.5)),
                              ("saturation", (0, 1.5)), ("hue", (-0.1, 0.1))]:  # fmt: skip
        assert low <= p[name].min() and p[name].max() <= high


def test_dfdnet_preset_ranges():
    p = BlindDegradation("dfdnet")(torch.zeros(64, 3, 16, 16), 2)["params"]
    sizes = p["kernel_size"]
    assert (sizes % 2 == 1).all() and sizes.min() >= 3 and sizes.max() <= 35 and sizes.unique().numel() > 8
    assert p["kernel_iso"].all()
    assert 0.3 <= p["sigma_x"].min() and p["sigma_x"].max() <= 2.0
    assert 2 <= p["scale"].min() and p["scale"].max() <= 10
    assert 40 <= p["quality"].min() and p["quality"].max() <= 80
    assert p["noise_sigma"].min() >= 1 and p["noise_sigma"].max() <= 10
    assert 0.3 < p["jpeg_applied"].float().mean() < 0.9
    assert BlindDegradation("dfdnet").config.interpolation == "bicubic"


def test_samples_in_one_batch_get_different_parameters(face):
    out = BlindDegradation()(to_tensor(face, 8), 0)
    for name in ("sigma_x", "scale", "noise_sigma"):
        assert out["params"][name].unique().numel() == 8
    lq = out["lq"].flatten(1)
    assert all(not torch.equal(lq[i], lq[j]) for i in range(8) for j in range(i + 1, 8))


def test_all_stages_off_is_exact_identity():
    hq = torch.randint(0, 256, (4, 3, 24, 40)).float() / 127.5 - 1
    out = BlindDegradation(**OFF)(hq, 0)
    assert torch.equal(out["lq"], hq) and torch.equal(out["hq"], hq)
    # the canvas resampling path at scale 1 is an identity too, up to float rounding below half a level
    out = BlindDegradation(**{**OFF, "downsample_prob": 1.0, "downsample_range": (1.0, 1.0)})(hq, 0)
    assert torch.equal(out["lq"], hq)


# --------------------------------------------------------------------------------------------------- blur


def test_blur_matches_cv2_filter2d_including_tiny_images():
    cases = [((40, 56), (2.0, 2.0, 0.0, 41)), ((40, 56), (6.0, 1.0, 0.7, 41)),
             ((16, 21), (8.0, 3.0, -2.0, 41)), ((40, 56), (0.7, 1.5, 1.0, 11))]  # fmt: skip
    for (h, w), (sx, sy, theta, k) in cases:
        x = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(k + h))
        kernels = gaussian_kernels(*(torch.tensor([v]) for v in (sx, sy, theta, k)), max_size=41)
        pad = (41 - k) // 2
        reference_kernel = bivariate_gaussian(k, sx, sy, theta)
        assert np.abs(kernels[0, pad : 41 - pad, pad : 41 - pad].numpy() - reference_kernel).max() < 1e-6
        assert kernels[0].sum().item() == pytest.approx(1.0, abs=1e-6)
        ours = blur(x, kernels)[0].permute(1, 2, 0).numpy()
        reference = cv2.filter2D(x[0].permute(1, 2, 0).numpy(), -1, reference_kernel)
        assert np.abs(ours - reference).max() < 1e-5


def test_fft_blur_equals_kornia_filter2d():
    x = torch.rand(3, 3, 48, 48)
    kernels = gaussian_kernels(torch.tensor([0.5, 3.0, 9.0]), torch.tensor([0.5, 1.0, 4.0]),
                               torch.tensor([0.0, 0.5, -1.0]), torch.tensor([41, 21, 41]), 41)  # fmt: skip
    expected = filter2d(reflect101_pad(x, 20), kernels, padding="valid")
    assert torch.allclose(blur(x, kernels), expected, atol=1e-5)


def test_blur_stage_small_sigma_is_identity_and_large_sigma_removes_detail(face):
    hq = to_tensor(face)
    only_blur = {**OFF, "blur_prob": 1.0}
    sharp = BlindDegradation(**only_blur, blur_sigma=(0.1, 0.1))(hq, 0)["lq"]
    assert (to_levels(sharp) - to_levels(hq)).__abs__().max() < 0.5
    blurry = BlindDegradation(**only_blur, blur_sigma=(10.0, 10.0))(hq, 0)["lq"]
    assert high_freq_energy(to_levels(blurry)) < 0.05 * high_freq_energy(to_levels(hq))


# ------------------------------------------------------------------------------------------------- resize


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
def test_downsample_only_matches_cv2_resize(face, interpolation):
    options = {**OFF, "downsample_prob": 1.0, "downsample_range": (4.0, 4.0), "interpolation": interpolation}
    ours = to_levels(BlindDegradation(**options)(to_tensor(face), 0)["lq"])[0]
    reference = degrade_cv2(face, np.random.default_rng(0), **options).astype(np.float64)
    assert np.abs(ours - reference).max() <= 1 and np.abs(ours - reference).mean() < 0.02
    assert high_freq_energy(ours) < 0.5 * high_freq_energy(face.astype(np.float64))  # detail is lost
    assert np.abs(ours - face).mean() > 3


def test_per_sample_scales_on_shared_canvas_match_cv2(face):
    """Each sample of a batch with different scales (and so LR sizes) equals its own cv2 down-up resize."""
    options = {**OFF, "downsample_prob": 1.0, "downsample_range": (0.8, 8.0)}
    out = BlindDegradation(**options)(to_tensor(face, 8), 5)
    assert out["params"]["lr_w"].unique().numel() > 4
    source = face.astype(np.float32) / 255
    for i, scale in enumerate(out["params"]["scale"].tolist()):
        size = (int(80 // scale), int(72 // scale))
        reference = cv2.resize(cv2.resize(source, size, interpolation=cv2.INTER_LINEAR), (80, 72))
        reference = np.clip(np.round(reference * 255), 0, 255)
        assert np.abs(to_levels(out["lq"])[i] - reference).max() <= 1, scale


def test_lq_grid_pads_replicate_each_sample_edge():
    canvas = torch.arange(2 * 1 * 4 * 5, dtype=torch.float32).view(2, 1, 4, 5)
    out = replicate_outside(canvas, torch.tensor([2, 4]), torch.tensor([3, 5]))
    assert torch.equal(out[1], canvas[1])
    assert torch.equal(out[0, 0, :, 3:], out[0, 0, :, 2:3].expand(4, 2))
    assert torch.equal(out[0, 0, 2:], out[0, 0, 1:2].expand(2, 5))


# --------------------------------------------------------------------------------------------- noise, JPEG


def test_noise_only_std_matches_sigma():
    hq = torch.zeros(8, 3, 64, 64)  # mid gray: no clipping at sigma <= 20
    out = BlindDegradation(**{**OFF, "noise_prob": 1.0, "noise_range": (2.0, 20.0)})(hq, 4)
    std = ((out["lq"] - hq) * 127.5).flatten(1).std(dim=1)
    sigma = out["params"]["noise_sigma"]
    expected = torch.sqrt(sigma**2 + 1 / 12)  # plus the rounding to uint8 levels
    assert torch.allclose(std, expected, rtol=0.04)
    assert ((out["lq"] - hq) * 127.5).mean().abs() < 0.1


def test_gray_noise_is_equal_across_channels():
    hq = torch.zeros(2, 3, 32, 32)
    options = {**OFF, "noise_prob": 1.0, "noise_range": (10, 10), "noise_gray_prob": 1.0}
    out = BlindDegradation(**options)(hq, 0)
    lq = out["lq"]
    assert torch.equal(lq[:, 0], lq[:, 1]) and torch.equal(lq[:, 0], lq[:, 2]) and lq.std() > 0.05


def test_jpeg_stage_stronger_at_low_quality_and_close_to_libjpeg(face):
    hq = to_tensor(face)
    errors = {}
    for quality in (60, 100):
        options = {**OFF, "jpeg_prob": 1.0, "jpeg_range": (quality, quality)}
        ours = to_levels(BlindDegradation(**options)(hq, 0)["lq"])[0]
        reference = degrade_cv2(face, np.random.default_rng(0), **options).astype(np.float64)
        errors[quality] = np.abs(ours - face).mean()
        libjpeg_error = np.abs(reference - face).mean()
        assert errors[quality] == pytest.approx(libjpeg_error, rel=0.1)
        assert np.abs(ours - reference).mean() < 1.2
    assert errors[60] > 2 * errors[100] and errors[100] > 0


def test_jpeg_tables_follow_libjpeg_scaling():
    tables = jpeg_tables(torch.tensor([50, 10, 100, 75]), JPEG_LUMA)
    base = torch.tensor(JPEG_LUMA, dtype=torch.float32)
    assert torch.equal(tables[0], base)  # quality 50 = the standard table
    assert torch.equal(tables[1], torch.floor((base * 500 + 50) / 100).clamp(1, 255))
    assert (tables[2] == 1).all()
    assert torch.equal(tables[3], torch.floor((base * 50 + 50) / 100).clamp(1, 255))


# -------------------------------------------------------------------------------------------- colour stages


def test_gray_stage_gives_equal_channels_and_leaves_hq(face):
    hq = to_tensor(face, 2)
    out = BlindDegradation(**{**OFF, "gray_prob": 1.0})(hq, 0)
    assert torch.equal(out["lq"][:, 0], out["lq"][:, 1]) and torch.equal(out["lq"][:, 1], out["lq"][:, 2])
    assert torch.equal(out["hq"], hq)
    gray = cv2.cvtColor(face, cv2.COLOR_RGB2GRAY).astype(np.float64)  # cv2's own rounding
    assert np.abs(to_levels(out["lq"])[0, ..., 0] - gray).max() <= 1
    both = BlindDegradation(**{**OFF, "gray_prob": 1.0, "gt_gray": True})(hq, 0)
    assert torch.equal(both["hq"][:, 0], both["hq"][:, 2]) and not torch.equal(both["hq"], hq)


def test_gpen_hq_gray_makes_hq_and_lq_gray(face):
    hq = to_tensor(face, 4)
    color = BlindDegradation("gpen", gt_gray_prob=0.0)(hq, 0)
    gray = BlindDegradation("gpen", gt_gray_prob=1.0)(hq, 0)
    assert gray["params"]["gt_gray_applied"].all()
    assert torch.equal(gray["hq"][:, 0], gray["hq"][:, 1]) and torch.equal(gray["hq"][:, 1], gray["hq"][:, 2])
    assert not torch.allclose(gray["hq"], hq, atol=0.05)
    assert torch.equal(color["hq"], hq)

    def chroma(x):
        return (x[:, 0] - x[:, 1]).abs().mean() + (x[:, 2] - x[:, 1]).abs().mean()

    # the LQ is made from the gray HQ: only per-channel noise and JPEG chroma error remain
    assert chroma(gray["lq"]) < 0.25 * chroma(color["lq"])


def test_color_shift_stage_adds_per_channel_offset():
    hq = torch.zeros(6, 3, 16, 16)  # mid gray: a +-20 shift never clips
    out = BlindDegradation(**{**OFF, "color_jitter_prob": 1.0})(hq, 0)
    measured = ((out["lq"] - hq) * 127.5).mean(dim=(2, 3))
    assert torch.allclose(measured, out["params"]["shift"] * 255, atol=0.51)
    assert measured.abs().max() > 5


def test_jitter_ops_follow_torchvision_semantics():
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    f = torch.tensor([0.6, 1.4])
    w = torch.tensor(TORCHVISION_GRAY)[:, None, None]
    gray = (x * w).sum(1, keepdim=True)
    assert torch.allclose(adjust_brightness(x, f), (x * f[:, None, None, None]).clamp(0, 1))
    mean = gray.mean(dim=(1, 2, 3), keepdim=True)
    assert torch.allclose(adjust_contrast(x, f), (f[:, None, None, None] * (x - mean) + mean).clamp(0, 1))
    assert torch.allclose(adjust_saturation(x, f), (f[:, None, None, None] * (x - gray) + gray).clamp(0, 1))
    hue = adjust_hue(x, torch.tensor([0.07, -0.1]))
    for i, h in enumerate((0.07, -0.1)):
        hsv = cv2.cvtColor(x[i].permute(1, 2, 0).numpy(), cv2.COLOR_RGB2HSV)
        hsv[..., 0] = np.mod(hsv[..., 0] + 360 * h, 360)
        assert np.abs(cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB) - hue[i].permute(1, 2, 0).numpy()).max() < 1e-4


def test_jitter_order_changes_the_result(face):
    hq = to_tensor(face, 24)
    options = {**OFF, "color_jitter_pt_prob": 1.0, "brightness": (1.5, 1.5), "contrast": (0.5, 0.5),
               "saturation": None, "hue": None}  # fmt: skip
    out = BlindDegradation(**options)(hq, 0)
    order = out["params"]["jitter_order"]
    brightness_first = (order == 0).nonzero()[:, 1] < (order == 1).nonzero()[:, 1]
    assert 0 < brightness_first.sum() < 24
    lq = out["lq"]
    first = lq[brightness_first]
    second = lq[~brightness_first]
    assert torch.equal(first, first[:1].expand_as(first))
    assert torch.equal(second, second[:1].expand_as(second))
    assert not torch.equal(first[0], second[0])  # clipping makes the two orders differ


# ------------------------------------------------------------------------------------ reference, config


def test_statistics_match_the_opencv_reference(face):
    """Same distributions: mean PSNR of LQ vs HQ over 48 draws agrees with the per-image OpenCV pipeline."""
    for preset in (None, "dfdnet"):
        out = BlindDegradation(preset)(to_tensor(face, 48), 0)
        ours = ((to_levels(out["lq"]) - to_levels(out["hq"])) ** 2).mean(axis=(1, 2, 3))
        rng = np.random.default_rng(0)
        theirs = []
        for _ in range(48):
            lq, hq = degrade_cv2(face, rng, preset=preset, return_hq=True)
            theirs.append(((lq - hq * 255.0) ** 2).mean())

        def psnr(mse):
            return np.mean(10 * np.log10(255**2 / np.maximum(np.asarray(mse), 1e-3)))

        assert psnr(ours) == pytest.approx(psnr(theirs), abs=1.5), preset


def test_config_validation():
    with pytest.raises(ValueError):
        BlindDegradation(blur_prob=1.5)
    with pytest.raises(ValueError):
        BlindDegradation(blur_kernel_size=40)
    with pytest.raises(ValueError):
        BlindDegradation(noise_range=(5, 1))
    with pytest.raises(ValueError):
        BlindDegradation(kernel_list=("iso", "plateau"), kernel_prob=(0.5, 0.5))
    with pytest.raises(ValueError):
        BlindDegradation("real-esrgan")
    with pytest.raises(TypeError):
        BlindDegradation(sigma=3)
    with pytest.raises(ValueError):
        BlindDegradation()(torch.zeros(1, 1, 16, 16), 0)
    # YAML gives lists
    cfg = BlindDegradation(blur_sigma=[1, 2], jpeg_range=[30, 40], blur_kernel_size=[3, 9]).config
    assert cfg.blur_sigma == (1.0, 2.0) and cfg.jpeg_range == (30, 40) and cfg.blur_kernel_size == (3, 9)


def test_benchmark_reports_rates():
    result = benchmark(size=32, batch=2, repeats=1)
    assert set(result) == {"batched_img_per_s", "cv2_img_per_s", "ratio"}
    assert all(v > 0 for v in result.values())
    assert result["ratio"] == pytest.approx(result["batched_img_per_s"] / result["cv2_img_per_s"])
