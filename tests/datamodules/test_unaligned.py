"""Unaligned evaluation faces (src/datamodules/unaligned.py) through RestoreDataModule and `facezoo.eval`:
one transform per face index whatever the run or batch size, faces and boxes really moved (and moved alike),
the LQ made from the moved HQ, off by default, bad options named. Tiny synthetic faces (64 px)."""

import math

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from omegaconf import open_dict

from facezoo.checkpoints import build_model, config_entries, save_checkpoint
from facezoo.datamodules.base import convert_images
from facezoo.datamodules.batch import BOXES, HQ, LQ
from facezoo.datamodules.degradations.pipeline import BlindDegradation
from facezoo.datamodules.restore import RestoreDataModule
from facezoo.datamodules.unaligned import Unaligned, uniforms
from facezoo.eval import evaluate
from facezoo.utils.compose import compose_config
from facezoo.utils.errors import ConfigError
from helpers import TINY, SeenDegradation

S = 64
ON = {"prob": 1.0, "shift": 0.1, "rotate": 30.0, "zoom_out": [1.0, 1.25], "seed": 3}
# x4 bicubic, nothing random: experiment=styleganex_sr_synthetic's degradation
SR = dict(blur_prob=0.0, downsample_range=[4.0, 4.0], interpolation="bicubic", noise_prob=0.0, jpeg_prob=0.0,
          color_jitter_prob=0.0, gray_prob=0.0, color_jitter_pt_prob=0.0)


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    """Synthetic faces: train 4, val 6, test 2 at 64 px (boxes.json beside them)."""
    root = tmp_path_factory.mktemp("faces")
    synthetic = {"size": S, "train": 4, "val": 6, "test": 2}
    RestoreDataModule(root, SeenDegradation(), synthetic=synthetic).prepare_data()
    return root


@pytest.fixture(scope="module")
def trainer():
    return pl.Trainer(logger=False, enable_progress_bar=False, enable_checkpointing=False,
                      enable_model_summary=False)


def datamodule(root, trainer=None, degradation=None, **kwargs) -> RestoreDataModule:
    dm = RestoreDataModule(root, degradation or SeenDegradation(), component_boxes="auto", **kwargs)
    dm.trainer = trainer
    dm.setup()
    return dm


def eval_batches(dm, trainer=None) -> dict[int, dict]:
    """Every validation face after `on_after_batch_transfer`, by its index: {index: {hq, lq, boxes}}."""
    if trainer is not None:
        trainer.training, trainer.validating = False, True
    out = {}
    for batch in dm.val_dataloader():
        batch = dm.on_after_batch_transfer(batch, 0)
        for i, index in enumerate(batch["index"].tolist()):
            out[index] = {key: batch[key][i] for key in (HQ, LQ, BOXES)}
    return out


def blob(x: float, y: float, sigma: float = 2.0) -> torch.Tensor:
    """(3, S, S) a Gaussian spot centred at pixel index (x, y) on black."""
    grid = torch.arange(S, dtype=torch.float32)
    return torch.exp(-((grid[None] - x) ** 2 + (grid[:, None] - y) ** 2) / (2 * sigma**2)).expand(3, S, S)


def centre_of_mass(images: torch.Tensor) -> torch.Tensor:
    """(B, 2) (x, y) in pixel indices of (B, C, S, S) non-negative images."""
    mass = images.sum(1)
    grid = torch.arange(S, dtype=torch.float32)
    total = mass.sum((1, 2))
    return torch.stack(((mass.sum(1) * grid).sum(1) / total, (mass.sum(2) * grid).sum(1) / total), 1)


def moved_point(matrices: torch.Tensor, point: torch.Tensor) -> torch.Tensor:
    """(B, 2) pixel positions of `point` (2,) under the forward transforms (frame: shorter side spans 2)."""
    frame = (2 * point + 1 - S) / S
    moved = matrices[:, :2, :2] @ frame + matrices[:, :2, 2]
    return (moved * S + S - 1) / 2


# ------------------------------------------------------------------------------------------- the transforms
def test_uniforms_are_exact_splitmix64_counters():
    """The int64 tensor ops give what 64-bit unsigned arithmetic gives (so any device draws the same)."""
    mask = 2**64 - 1

    def splitmix(x: int) -> int:
        z = (x + 0x9E3779B97F4A7C15) & mask
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        return z ^ (z >> 31)

    seed, indices = 2**63 + 12345, [0, 7, 123456789]
    index = torch.tensor(indices)
    u = uniforms(seed, index, 3)
    key = splitmix(seed)
    expected = [[(splitmix(key ^ splitmix(i * 3 + k)) >> 40) / 2**24 for k in range(3)] for i in indices]
    assert u.dtype == torch.float32 and u.tolist() == expected
    assert not torch.equal(uniforms(0, index, 3), uniforms(1, index, 3))


def test_transform_ranges_and_probability():
    un = Unaligned.from_config({**ON, "prob": 0.3})
    m = un.matrices(torch.arange(2000), S, S)
    identity = torch.eye(3).expand_as(m)
    moved = ~(m == identity).flatten(1).all(1)
    assert 0.25 < moved.float().mean() < 0.35
    m = m[moved]
    scale = m[:, 0, :2].norm(dim=1)  # a similarity: scale · rotation
    angle = torch.rad2deg(torch.atan2(m[:, 1, 0], m[:, 0, 0]))
    shift = m[:, :2, 2] / 2  # frame units → fractions of the side
    assert (1 / scale).min() >= 1 - 1e-6 and (1 / scale).max() <= 1.25 + 1e-6 and (1 / scale).max() > 1.2
    assert angle.abs().max() <= 30 + 1e-4 and angle.min() < -25 and angle.max() > 25
    assert shift.abs().max() <= 0.1 + 1e-6 and shift.min() < -0.08 and shift.max() > 0.08


def test_one_transform_per_index_whatever_the_batch():
    un = Unaligned.from_config(ON)
    every = un.matrices(torch.arange(10), S, S)
    assert torch.equal(un.matrices(torch.tensor([7, 2]), S, S), every[[7, 2]])
    assert torch.equal(Unaligned.from_config(ON).matrices(torch.tensor([5]), S, S), every[[5]])  # a new "run"
    assert not torch.equal(Unaligned.from_config({**ON, "seed": 4}).matrices(torch.arange(10), S, S), every)


@pytest.mark.parametrize("options", [
    {"shift": 0.1, "rotate": 0.0, "zoom_out": [1.0, 1.0]},
    {"shift": 0.0, "rotate": 30.0, "zoom_out": [1.0, 1.0]},
    {"shift": 0.0, "rotate": 0.0, "zoom_out": [1.1, 1.25]},
    ON,
])
def test_images_and_boxes_move_together(options):
    """A spot off the centre lands where the matrix sends it, and its box moves to the same place."""
    un = Unaligned.from_config({**options, "prob": 1.0})
    spot = torch.tensor([31.5 + 12.0, 31.5 - 5.0])
    hq = blob(*spot.tolist()).expand(6, 3, S, S).contiguous()
    box = torch.cat((spot - 3, spot + 3)).expand(6, 4, 4)
    out = un({HQ: hq, LQ: hq.clone(), "index": torch.arange(6), BOXES: box})
    assert torch.equal(out[LQ], out[HQ])  # a paired test set's LQ moves with its HQ
    expected = moved_point(un.matrices(torch.arange(6), S, S), spot)
    found = centre_of_mass(out[HQ])
    assert torch.allclose(found, expected, atol=0.2)
    distance = (found - spot).norm(dim=1)
    assert distance.min() > 0.1 and distance.max() > 2.0  # every spot moved, some far
    boxes = out[BOXES]
    assert torch.allclose((boxes[..., :2] + boxes[..., 2:]) / 2, expected[:, None].expand(6, 4, 2), atol=1e-4)
    sides = boxes[..., 2:] - boxes[..., :2]
    assert (sides <= 6 * math.sqrt(2) + 1e-4).all() and (sides >= 6 / 1.25 - 1e-4).all()
    if options["rotate"]:  # the spot turned about the centre by the matrix's angle
        m = un.matrices(torch.arange(6), S, S)
        before = torch.atan2(spot[1] - 31.5, spot[0] - 31.5)
        turned = torch.atan2(found[:, 1] - 31.5 - m[:, 1, 2] * S / 2, found[:, 0] - 31.5 - m[:, 0, 2] * S / 2)
        assert torch.allclose(turned - before, torch.atan2(m[:, 1, 0], m[:, 0, 0]), atol=0.02)


# ------------------------------------------------------------------------------------------- the datamodule
def test_eval_faces_move_the_same_in_every_run_and_batch_size(faces, trainer):
    aligned = eval_batches(datamodule(faces, trainer, eval_batch_size=6))
    runs = [eval_batches(datamodule(faces, trainer, eval_batch_size=n, unaligned=ON)) for n in (6, 4, 1)]
    assert sorted(runs[0]) == list(range(6))
    for run in runs[1:]:
        for index, face in run.items():
            torch.testing.assert_close(face[HQ], runs[0][index][HQ], rtol=0, atol=1e-6)
            torch.testing.assert_close(face[BOXES], runs[0][index][BOXES], rtol=0, atol=1e-5)
    matrices = Unaligned.from_config(ON).matrices(torch.arange(6), S, S)
    for index, face in runs[0].items():
        before, after = aligned[index], face
        assert (after[HQ] - before[HQ]).abs().mean() > 0.02  # the face moved
        centres = lambda b: (b[:, :2] + b[:, 2:]) / 2  # noqa: E731
        # the boxes' centres move as the matrix moves the points
        for c, moved in zip(centres(before[BOXES]), centres(after[BOXES]), strict=True):
            torch.testing.assert_close(moved_point(matrices[[index]], c)[0], moved, rtol=0, atol=1e-3)


def test_lq_is_the_degradation_of_the_moved_hq(faces, trainer):
    dm = datamodule(faces, trainer, BlindDegradation(**SR), eval_batch_size=6, unaligned=ON)
    trainer.training, trainer.validating = False, True
    batch = next(iter(dm.val_dataloader()))
    out = dm.on_after_batch_transfer(batch, 0)
    moved = Unaligned.from_config(ON)(convert_images(batch))[HQ]
    expected = dm.degradation(moved, seed=dm.batch_seed(batch))
    assert torch.equal(out[HQ], moved) and torch.equal(out[LQ], expected["lq"])
    # the pair stays a pair: the LQ is near its moved target, far from the face before the move
    original = convert_images(batch)[HQ]
    lq = F.interpolate(F.avg_pool2d(out[LQ], 4), scale_factor=4, mode="nearest")
    target = F.interpolate(F.avg_pool2d(out[HQ], 4), scale_factor=4, mode="nearest")
    before = F.interpolate(F.avg_pool2d(original, 4), scale_factor=4, mode="nearest")
    near, far = (lq - target).abs().mean((1, 2, 3)), (lq - before).abs().mean((1, 2, 3))
    assert (near * 3 < far).all()


def test_off_by_default_and_never_in_training(faces, trainer, monkeypatch):
    import facezoo.datamodules.unaligned as unaligned

    def refuse(*args):
        raise AssertionError("warped a batch")

    monkeypatch.setattr(unaligned, "warp", refuse)
    dm = datamodule(faces, trainer, BlindDegradation(**SR), eval_batch_size=6)
    assert not dm.unaligned.enabled
    trainer.training, trainer.validating = False, True
    batch = next(iter(dm.val_dataloader()))
    out = dm.on_after_batch_transfer(batch, 0)
    plain = convert_images(batch)
    assert torch.equal(out[HQ], plain[HQ]) and torch.equal(out[BOXES], plain[BOXES])
    assert torch.equal(out[LQ], dm.degradation(plain[HQ], seed=dm.batch_seed(batch))["lq"])
    # on, but a training batch: untouched too
    on = datamodule(faces, trainer, SeenDegradation(), batch_size=4, unaligned=ON)
    trainer.training, trainer.validating = True, False
    batch = next(iter(on.train_dataloader()))
    assert torch.equal(on.on_after_batch_transfer(batch, 0)[LQ], convert_images(batch)[HQ])


@pytest.mark.parametrize("options, named", [
    ({"prob": 1.5}, "datamodule.unaligned.prob=1.5"),
    ({"prob": "often"}, "datamodule.unaligned.prob='often'"),
    ({"shift": -0.1}, "datamodule.unaligned.shift=-0.1"),
    ({"rotate": 90}, "datamodule.unaligned.rotate=90"),
    ({"zoom_out": [0.5, 1.0]}, "datamodule.unaligned.zoom_out=[0.5, 1.0]"),
    ({"zoom_out": [1.3, 1.1]}, "datamodule.unaligned.zoom_out=[1.3, 1.1]"),
    ({"zoom_out": 1.2}, "datamodule.unaligned.zoom_out=1.2"),
    ({"seed": 0.5}, "datamodule.unaligned.seed=0.5"),
    ({"probability": 1}, "datamodule.unaligned.probability: unknown option"),
    ("yes", "datamodule.unaligned='yes'"),
])
def test_bad_options_are_named(options, named):
    with pytest.raises(ConfigError) as err:
        RestoreDataModule("unused", SeenDegradation(), unaligned=options)
    assert str(err.value).startswith(named) and "\n" not in str(err.value)


# ------------------------------------------------------------------------------------------- facezoo.eval
def test_eval_of_a_run_on_unaligned_faces(tmp_path):
    """`python -m facezoo.eval ckpt_path=RUN ++datamodule.unaligned.prob=1.0`: the run's own data config,
    with its faces moved."""
    data = ["model=baseline", "datamodule=synthetic_restore", "datamodule.synthetic.train=4",
            "datamodule.synthetic.val=2", "datamodule.synthetic.test=8"]
    cfg = compose_config(overrides=[*TINY, *data], output_dir=tmp_path / "run", data_dir=tmp_path / "data")
    with open_dict(cfg):
        del cfg["hydra"]
        cfg.datamodule.pop("unaligned")  # a run trained before the option existed
    torch.manual_seed(0)
    model = build_model(cfg.model)
    save_checkpoint({"state_dict": model.state_dict(), **config_entries(cfg)},
                    tmp_path / "run" / "checkpoints" / "last.ckpt")

    def psnr(*overrides):
        ecfg = compose_config("eval", [f"ckpt_path={tmp_path / 'run'}", *overrides],
                              output_dir=tmp_path / "eval" / "_".join(["aligned", *overrides]))
        return evaluate(ecfg)["test/psnr"]

    aligned, rotate = psnr(), "++datamodule.unaligned.rotate=20"
    assert psnr("++datamodule.unaligned.prob=1.0", rotate) != pytest.approx(aligned)
    assert psnr("++datamodule.unaligned.prob=0.0", rotate) == pytest.approx(aligned)
