"""StyleGANEX's training module (src/models/styleganex.py): tiny overfits of both tasks with the decoder
frozen, the D step before the encoder's and R1 every 16 batches, the pretrained files (prior, encoder start,
LPIPS, IR-SE50) and the refusals, the coach's augmentation and super-resolution pairs, and restore() on
non-square and unaligned faces. Networks have random weights on purpose (tests only). The contract every
method keeps: tests/test_zoo_contract.py; the networks: tests/models/components/; official files:
tests/weights/."""

import pytest
import torch
import torch.nn.functional as F

from facezoo.datamodules.geometric import sample_affine, warp
from facezoo.models.components.arcface import IRSE50
from facezoo.models.components.stylegan2 import Generator
from facezoo.utils.compose import compose_config
from facezoo.utils.errors import ConfigError, FacezooError, WeightsNotFoundError
from facezoo.utils.instantiate import instantiate
from helpers import TINY, first_batch, fit_repeated, random_irse50, save_encoder_checkpoint

DATA = ["datamodule=synthetic_restore"]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _cfg(tmp_path, data_dir, task, *overrides):
    overrides = [*TINY, *DATA, f"model=styleganex_{task}", *overrides]
    return compose_config(overrides=overrides, output_dir=tmp_path, data_dir=data_dir)


def _build(tmp_path, data_dir, task="inversion", *overrides):
    return instantiate(_cfg(tmp_path, data_dir, task, *overrides).model, "model")


@pytest.fixture(scope="module")
def faces(tmp_path_factory, data_dir):
    """Four synthetic HQ faces at 32 px (the tiny decoder keeps the size: size/256 = 1)."""
    cfg = _cfg(tmp_path_factory.mktemp("faces"), data_dir, "inversion")
    hq = first_batch(instantiate(cfg.datamodule, "datamodule"))["hq"]
    return F.interpolate(hq, size=32, mode="area")


def _steps(model, calls):
    """Spy on model.step: appends the optimizer classes of each call (and the loss) to `calls`."""
    step = model.step

    def spy(optimizers, loss, clip=None):
        group = optimizers if isinstance(optimizers, list | tuple) else [optimizers]
        calls.append(([type(o.optimizer).__name__ for o in group], float(loss)))
        step(optimizers, loss, clip)

    model.step = spy


# --- training ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("task", ["inversion", "sr"])
def test_tiny_model_overfits_with_its_decoder_frozen(tmp_path, data_dir, faces, task):
    # Adam, not the recipe's Ranger, whose rectified warm-up (~2/(1 − β2) = 2000 steps) barely moves in 20
    adam = ["model.optimizers.encoder._target_=torch.optim.Adam",
            "~model.optimizers.encoder.degenerated_to_sgd"]
    model = _build(tmp_path, data_dir, task, *adam, "model.optimizers.encoder.lr=1e-3",
                   "model.affine_augment=false", "model.discriminator.size=32")
    lq = faces if task == "inversion" else model.super_resolution_pair(faces)[0]  # x↑: the same size (r = 1)
    fit_repeated(model, {"hq": faces}, 1)  # fit start: the (random) decoder and its latent_avg
    decoder = {k: v.clone() for k, v in model.decoder.state_dict().items()}
    latent_avg = model.latent_avg.clone()
    before = F.mse_loss(model.restore(lq)["image"], faces).item()
    fit_repeated(model, {"hq": faces}, 20)
    after = F.mse_loss(model.restore(lq)["image"], faces).item()
    assert after < 0.85 * before, (before, after)
    for key, value in model.decoder.state_dict().items():  # bit-identical, never trained
        assert torch.equal(value, decoder[key]), key
    assert torch.equal(model.latent_avg, latent_avg) and latent_avg.abs().sum() > 0  # the decoder's mean w
    assert not any(p.requires_grad for p in model.decoder.parameters())
    model.train()
    assert model.encoder.training and not model.decoder.training


def test_discriminator_steps_first_and_r1_every_16_batches(tmp_path, data_dir, faces):
    model = _build(tmp_path, data_dir, "sr", "model.discriminator.size=32")
    assert model.hparams.r1_every == 16 and model.loss_weights["r1"] == 1.0
    calls = []
    _steps(model, calls)
    model.batch_counter.fill_(15)  # batches 15, 16, 17: R1 on 16 only
    trainer = fit_repeated(model, {"hq": faces}, 3)
    order = [names[0] for names, _ in calls]
    assert order == ["Adam", "Ranger", "Adam", "Adam", "Ranger", "Adam", "Ranger"]
    r1 = trainer.callback_metrics["train/r1"].item()  # logged at batch 16, its own D step: r1/2 · R1 · 16
    assert calls[3][1] == pytest.approx(0.5 * r1 * 16, rel=1e-4)
    inversion = _build(tmp_path, data_dir, "inversion")  # adv 0: no discriminator, one optimizer
    assert inversion.discriminator is None and set(inversion.optimizer_groups()) == {"encoder"}


def test_encoder_optimizer_is_the_official_ranger(tmp_path, data_dir):
    model = _build(tmp_path, data_dir, "sr")
    (ranger, adam), _ = model.configure_optimizers()
    group = ranger.param_groups[0]
    assert type(ranger).__name__ == "Ranger" and ranger.degenerated_to_sgd and ranger.use_gc
    assert type(group["betas"]) is tuple  # not the config's ListConfig: checkpoints load with weights_only
    assert (group["lr"], group["betas"], group["alpha"], group["k"], group["eps"]) == (
        1e-4, (0.95, 0.999), 0.5, 6, 1e-5)
    assert isinstance(adam, torch.optim.Adam) and adam.param_groups[0]["lr"] == 1e-4
    assert {id(p) for p in ranger.param_groups[0]["params"]} == {id(p) for p in model.encoder.parameters()}


def test_lpips_and_identity_terms_with_their_files(tmp_path, data_dir, faces):
    import torchvision

    alexnet = torchvision.models.alexnet(weights=None).features.state_dict()  # random weights (tests only)
    torch.save({f"features.{k}": v for k, v in alexnet.items()}, tmp_path / "alexnet-owt-7be5be79.pth")
    torch.save(IRSE50().state_dict(), tmp_path / "model_ir_se50.pth")
    model = _build(tmp_path, data_dir, "inversion", "model.lpips_net=alex", f"model.lpips_weights={tmp_path}",
                   "model.loss_weights.lpips=0.8", f"model.identity.weights={tmp_path}",
                   "model.loss_weights.id=0.1")
    assert model.identity_loss is None  # read at the first step that uses it
    trainer = fit_repeated(model, {"hq": faces}, 1)
    assert {"train/lpips", "train/id", "train/w_norm", "train/l2"} <= set(trainer.callback_metrics)
    assert not any(k.startswith(("identity_loss.", "lpips.")) for k in model.state_dict())


# --- pretrained files and refusals -------------------------------------------------------------------------


def test_prior_loads_the_decoder_and_latent_avg(tmp_path, data_dir):
    model = _build(tmp_path, data_dir)
    stylegan = Generator(256, 32, 2, narrow=0.0625)  # add-noise, the tiny decoder's shape
    latent = torch.randn(32)
    torch.save({"g_ema": stylegan.state_dict(), "latent_avg": latent}, tmp_path / "rosinality.pt")
    model.prior["checkpoint"] = str(tmp_path / "rosinality.pt")
    model.load_prior()
    for key, value in stylegan.state_dict().items():
        assert torch.equal(model.decoder.state_dict()[key], value), key
    assert torch.equal(model.latent_avg, latent.expand(model.decoder.n_latent, -1))
    # our model=stylegan2 checkpoint (its EMA generator): no latent_avg, the mean w of 10^5 seeded codes
    ours = {f"generator_ema.module.{k}": v for k, v in stylegan.state_dict().items()}
    torch.save({"state_dict": ours}, tmp_path / "stylegan2.ckpt")
    model.prior["checkpoint"] = str(tmp_path / "stylegan2.ckpt")
    model.load_prior()
    first = model.latent_avg.clone()
    model.load_prior()
    assert torch.equal(model.latent_avg, first) and not torch.equal(first, latent.expand_as(first))
    gpen = Generator(256, 32, 2, narrow=0.0625, isconcat=True)
    torch.save({"g_ema": gpen.state_dict()}, tmp_path / "gpen.pt")
    model.prior["checkpoint"] = str(tmp_path / "gpen.pt")  # a GPEN (concat-noise) prior does not fit
    with pytest.raises(FacezooError, match="StyleGANEX prior"):
        model.load_prior()


def test_encoder_starts_from_ir_se50_or_a_styleganex_checkpoint(tmp_path, data_dir):
    irse_file = tmp_path / "model_ir_se50.pth"
    model = _build(tmp_path, data_dir, "sr", f"model.encoder_init.checkpoint={irse_file}")
    own = model.encoder.state_dict()
    irse = random_irse50(own)  # with an output layer, which E does not take
    torch.save({**irse, "output_layer.0.weight": torch.ones(3)}, irse_file)
    fusion = {k: v.clone() for k, v in own.items() if k.startswith("fusion.")}
    model.load_encoder_init()
    state = model.encoder.state_dict()
    assert all(torch.equal(state[k], v) for k, v in irse.items())
    inversion = _build(tmp_path, data_dir, "inversion")  # an inversion run's encoder starts sr: fusion fresh
    model.encoder_init["checkpoint"] = str(save_encoder_checkpoint(inversion.encoder, tmp_path / "inv.ckpt"))
    model.load_encoder_init()
    state = model.encoder.state_dict()
    assert all(torch.equal(state[k], v) for k, v in inversion.encoder.state_dict().items())
    assert all(torch.equal(state[k], v) for k, v in fusion.items())
    torch.save({"state_dict": {"encoder.body.0.nothing": torch.zeros(1)}}, tmp_path / "bad.ckpt")
    model.encoder_init["checkpoint"] = str(tmp_path / "bad.ckpt")
    with pytest.raises(FacezooError, match="missing .*unexpected 1"):
        model.load_encoder_init()


def test_required_files_refuse_to_start(tmp_path, data_dir):
    with pytest.raises(ConfigError, match=r"model.prior.required=true but no model.prior.checkpoint"):
        _build(tmp_path, data_dir, "inversion", "model.prior.required=true")
    with pytest.raises(WeightsNotFoundError, match=r"model.prior.checkpoint=.*nowhere.pt: file not found"):
        _build(tmp_path, data_dir, "inversion", "model.prior.required=true",
               f"model.prior.checkpoint={tmp_path / 'nowhere.pt'}")
    with pytest.raises(WeightsNotFoundError, match="model.lpips_weights"):
        _build(tmp_path, data_dir, "inversion", "model.lpips_net=alex", "model.loss_weights.lpips=0.8",
               "model.lpips_required=true")
    with pytest.raises(WeightsNotFoundError, match="model.identity.weights"):
        _build(tmp_path, data_dir, "inversion", "model.loss_weights.id=0.1", "model.identity.required=true")


@pytest.mark.parametrize("recipe", ["inversion", "sr"])
def test_paper_recipes_pin_the_official_numbers_and_refuse_without_their_files(tmp_path, monkeypatch, recipe):
    monkeypatch.setenv("FACEZOO_PRETRAINED", str(tmp_path))  # empty
    cfg = compose_config(overrides=[f"experiment=styleganex_ffhq_{recipe}"], output_dir=tmp_path)
    m, data = cfg.model, cfg.datamodule
    assert (m.size, m.optimizers.encoder.lr, cfg.iterations, m.prior.checkpoint) == (
        1024, 1e-4, 100_000, "stylegan2_1024_ffhq")
    assert m.prior.required and m.lpips_required and m.encoder_init.required
    if recipe == "inversion":
        assert (data.batch_size, data.image_size, m.encoder.skip_max_layer) == (8, 320, 0)
        weights = {"l2": 1.0, "lpips": 0.8, "id": 0.1, "w_norm": 0.001, "adv": 0.0, "r1": 1.0}
        assert dict(m.loss_weights) == weights
    else:
        assert (data.batch_size, data.image_size, m.encoder.skip_max_layer, list(m.resize_factors)) == (
            4, 1280, 4, [8])
        weights = {"l2": 1.0, "lpips": 0.8, "id": 0.0, "w_norm": 0.0, "adv": 0.1, "r1": 1.0}
        assert dict(m.loss_weights) == weights
    with pytest.raises(WeightsNotFoundError, match="stylegan2-ffhq-config-f.pt"):
        instantiate(m, "model")


# --- data and augmentation ---------------------------------------------------------------------------------


def test_super_resolution_pairs(tmp_path, data_dir, faces):
    model = _build(tmp_path, data_dir, "sr", "model.resize_factors=[2,8]")
    x, y = model.super_resolution_pair(faces)
    assert x.shape == faces.shape and torch.equal(y, faces)
    for i in range(len(faces)):  # each sample shrunk by its own factor and enlarged back
        face = faces[i : i + 1]
        low = {f: F.interpolate(face, size=32 // f, mode="bicubic", antialias=True) for f in (2, 8)}
        up = {f: F.interpolate(v.clamp(-1, 1), size=32, mode="bilinear") for f, v in low.items()}
        assert any(torch.allclose(x[i : i + 1], u, atol=1e-5) for u in up.values())
    # a 64 px decoder draws a quarter of its input: E sees x↑ at 4x the HQ size
    small = _build(tmp_path, data_dir, "sr", "model.size=64", "model.discriminator.size=32")
    assert small.scale == 0.25 and small.size_multiple == 2
    assert small.super_resolution_pair(faces)[0].shape[-2:] == (128, 128)
    blind = _build(tmp_path, data_dir, "sr", "model.blind_sr=true")
    assert blind.degradation.config.downsample_range == (0.75 * 8, 1.5 * 8)  # x r = 1
    x, y = blind.super_resolution_pair(faces)
    assert x.shape == faces.shape and not torch.equal(x, faces)
    with pytest.raises(ConfigError, match="multiples of 8"):
        model.super_resolution_pair(faces[..., :28, :])


def test_affine_moves_input_and_target_alike():
    torch.manual_seed(1)
    smooth = F.interpolate(torch.rand(6, 3, 4, 4), size=128, mode="bicubic", align_corners=False)
    small = F.avg_pool2d(smooth, 4)  # the same picture at a quarter of the size
    matrices = sample_affine(6, 1.0, pixels=32)
    assert not torch.allclose(matrices, torch.eye(3).expand(6, 3, 3))
    moved, moved_small = warp(smooth, matrices), warp(small, matrices)
    assert (F.avg_pool2d(moved, 4) - moved_small).abs().mean() < 0.1 * (moved_small - small).abs().mean()
    still = torch.eye(3).repeat(6, 1, 1)
    assert torch.equal(warp(smooth, still), smooth)  # untouched samples are not resampled
    chosen = (sample_affine(4000, 0.2) - torch.eye(3)).abs().flatten(1).amax(1) > 1e-6
    assert 0.6 < chosen.float().mean() < 0.75  # 1 − 0.8^4 · (1 − p_rot) ... ≈ 0.67 of the samples move


def test_random_crop_keeps_input_and_target_together(tmp_path, data_dir):
    model = _build(tmp_path, data_dir, "inversion", "model.affine_augment=false")
    x = torch.rand(2, 3, 320, 320)
    sides = set()
    for _ in range(20):
        big = F.interpolate(x, scale_factor=4, mode="nearest")  # sr: the target 4x the input
        cx, cy = model.augment(x, big)
        sides |= set(cx.shape[-2:])
        assert torch.equal(cy, F.interpolate(cx, scale_factor=4, mode="nearest"))
        small = F.avg_pool2d(x, 4)  # a 64 px decoder's sr: the target a quarter of the input
        cx, cy = model.augment(x, small)
        assert torch.equal(cy, F.avg_pool2d(cx, 4))
    assert sides <= set(range(256, 321, 8)) and len(sides) > 3
    small = x[..., :200, :240]
    assert model.augment(small, small)[0].shape[-2:] == (200, 240)  # under 256 px: not cropped


def test_w_plus_come_from_the_aligned_face_before_the_augmentation(tmp_path, data_dir, faces):
    model = _build(tmp_path, data_dir, "inversion")
    hq = F.interpolate(faces[:2], size=320, mode="bilinear")  # the official 320 px field of view
    seen, forward = [], model.encoder.forward
    model.encoder.forward = lambda x, x2=None, l=None: seen.append((x, x2)) or forward(x, x2, l)  # noqa: E741
    fit_repeated(model, {"hq": hq}, 1)
    x, face = seen[0]
    assert torch.equal(face, hq[..., 32:288, 32:288])  # the centred 256 px, unmoved and uncropped
    assert {x.shape[-2], x.shape[-1]} <= set(range(256, 321, 8))


# --- restore -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("task", ["inversion", "sr"])
def test_restore_takes_non_square_and_unaligned_faces(tmp_path, data_dir, faces, task):
    model = _build(tmp_path, data_dir, task)
    canvas = torch.full((3, 3, 64, 96), -0.5)  # a wider field of view, the face moved and zoomed in it
    canvas[0, :, 8:40, 8:40] = faces[0]
    canvas[1, :, 24:56, 48:80] = faces[0]
    canvas[2, :, :, 16:80] = F.interpolate(faces[:1], size=64, mode="bilinear")[0]
    out = model.restore(canvas)["image"]
    assert out.shape == canvas.shape and torch.isfinite(out).all() and model.training
    assert torch.equal(model.restore(canvas)["image"], out)  # the decoder's stored noise: deterministic
    with pytest.raises(ConfigError, match="divisible by 8"):
        model.restore(canvas[..., :60])


# --- end to end (slow) -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_cpu_recipes_start_from_a_stylegan2_synthetic_prior(tmp_path, data_dir):
    """The two-command flow of experiment=styleganex_{inversion,sr}_synthetic, each run cut to 2 batches (the
    whole recipes: ~12 min each on 2 idle cores)."""
    from facezoo.train import train
    from helpers import QUIET

    short = [*QUIET, "trainer.limit_val_batches=1", "trainer.limit_test_batches=1"]
    prior = compose_config(overrides=["experiment=stylegan2_synthetic", "model.generator.isconcat=false",
                                      "trainer.max_epochs=1", "trainer.limit_train_batches=2", *short],
                           output_dir=tmp_path / "prior", data_dir=data_dir)
    train(prior)
    checkpoint = tmp_path / "prior" / "checkpoints" / "last.ckpt"
    for task in ("inversion", "sr"):
        overrides = [f"experiment=styleganex_{task}_synthetic", f"model.prior.checkpoint={checkpoint}",
                     "iterations=2", *short]
        cfg = compose_config(overrides=overrides, output_dir=tmp_path / task, data_dir=data_dir)
        metrics = train(cfg)
        assert metrics["test/psnr"] > 5, metrics


@pytest.mark.slow
def test_ddp_cpu_trains_super_resolution_with_two_processes(tmp_path, data_dir):
    from helpers import run_module

    args = [*TINY, *DATA, "model=styleganex_sr", "strategy=ddp_cpu", f"paths.data_dir={data_dir}",
            f"paths.log_dir={tmp_path / 'logs'}", f"hydra.run.dir={tmp_path / 'run'}", "test=false"]
    proc = run_module("facezoo.train", *args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()
