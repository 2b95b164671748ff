"""GFP-GAN's training module (src/models/gfpgan.py): the recipes, which network each optimizer moves, the
frozen prior and its initialisation from our clean StyleGAN2, the pyramid switch-off, the component crops in
training, ArcFace for the identity loss and metric, a tiny overfit and the release recipe's refusals.
(The architectures: tests/models/components/; the import of official weights: tests/weights/test_gfpgan.py.)
"""

import pytest
import torch
import torch.nn.functional as F

from facezoo.utils.compose import compose_config
from facezoo.utils.errors import DataError, WeightsNotFoundError
from facezoo.utils.instantiate import instantiate
from helpers import TINY, LossRecorder, first_batch, fit_repeated

GF = ["model=gfpgan", "datamodule=synthetic_restore", "datamodule.component_boxes=auto"]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _cfg(tmp_path, data_dir, *overrides):
    return compose_config(overrides=[*TINY, *GF, *overrides], output_dir=tmp_path, data_dir=data_dir)


def _build(tmp_path, data_dir, *overrides):
    return instantiate(_cfg(tmp_path, data_dir, *overrides).model, "model")


def _batch(tmp_path, data_dir, *overrides):
    return first_batch(instantiate(_cfg(tmp_path, data_dir, *overrides).datamodule, "datamodule"))


def _snapshot(module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _changed(before: dict, module) -> set[str]:
    return {k for k, v in module.state_dict().items() if not torch.equal(before[k], v)}


@pytest.mark.parametrize("model", ["gfpgan", "gfpgan_v1"])
def test_each_optimizer_moves_only_its_network_and_the_prior_stays_frozen(tmp_path, data_dir, model):
    m = _build(tmp_path, data_dir, f"model={model}", "model.prior.from_scratch=true")
    batch = _batch(tmp_path, data_dir)
    assert batch["boxes"].shape == (batch["hq"].shape[0], 4, 4)
    nets = {
        "generator": m.generator,
        "discriminator": m.discriminator,
        **{c: d for c, d in m.component_discriminators.items()},
    }
    assert set(m.component_discriminators) == {"left_eye", "right_eye", "mouth"}
    before = {name: _snapshot(net) for name, net in nets.items()}
    optimizers = m.configure_optimizers()[0]
    assert len(optimizers) == 5
    owned = [{id(p) for g in opt.param_groups for p in g["params"]} for opt in optimizers]
    assert owned[0] == {id(p) for p in m.generator.parameters() if p.requires_grad}
    decoder = {id(p) for p in m.generator.stylegan_decoder.parameters()}
    assert not owned[0] & decoder and all(
        not p.requires_grad for p in m.generator.stylegan_decoder.parameters()
    )
    for ids, net in zip(owned[1:], list(nets.values())[1:], strict=True):
        assert ids == {id(p) for p in net.parameters()}

    trainer = fit_repeated(m, batch, 1)
    for name, net in nets.items():
        changed = _changed(before[name], net)
        assert changed, f"{name} did not move"
        if name == "generator":
            assert not any(k.startswith("stylegan_decoder.") for k in changed), "the frozen prior moved"
    logged = set(trainer.callback_metrics)
    assert {
        "train/pixel",
        "train/pyramid",
        "train/gan",
        "train/d",
        "train/r1",
        "train/mouth_gan",
        "train/mouth_style",
        "train/left_eye_d",
    } <= logged
    ema = m.generator_ema.module.state_dict()
    assert any(not torch.equal(v, ema[k]) for k, v in m.generator.state_dict().items())  # EMA lags


def test_learning_rates_betas_and_the_lazy_r1_correction(tmp_path, data_dir):
    m = _build(tmp_path, data_dir)
    opt_g, opt_d, *components = m.configure_optimizers()[0]
    assert opt_g.param_groups[0]["lr"] == pytest.approx(2e-3) and opt_g.param_groups[0]["betas"] == (
        0.0,
        0.99,
    )
    assert opt_d.param_groups[0]["lr"] == pytest.approx(2e-3 * 16 / 17)
    assert opt_d.param_groups[0]["betas"] == pytest.approx((0.0, 0.99 ** (16 / 17)))
    assert all(o.param_groups[0]["betas"] == (0.9, 0.99) for o in components)


def test_pyramid_loss_switches_off_at_the_configured_batch(tmp_path, data_dir, monkeypatch):
    m = _build(tmp_path, data_dir, "model.pyramid_until=2", "model.prior.from_scratch=true")
    calls = []
    forward = m.generator.forward

    def spy(x, return_rgb=True, randomize_noise=True):
        out = forward(x, return_rgb=return_rgb, randomize_noise=randomize_noise)
        calls.append(len(out[1]))
        return out

    monkeypatch.setattr(m.generator, "forward", spy)
    recorder = LossRecorder(("pixel",), extra=lambda mod: [int(mod.pyramid_on())])
    import pytorch_lightning as pl

    from facezoo.datamodules.repeated_batch import RepeatedBatchDataModule

    pl.Trainer(
        max_epochs=1,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        callbacks=[recorder],
        enable_progress_bar=False,
        num_sanity_val_steps=0,
        enable_model_summary=False,
    ).fit(m, datamodule=RepeatedBatchDataModule(_batch(tmp_path, data_dir), 4))
    levels = 4  # 8, 16, 32, 64 px
    assert calls == [levels, levels, 0, 0]  # RGB outputs asked for only while the loss is on
    assert [flag for _, flag in recorder.losses] == [1, 0, 0, 0]  # after batches 1…4


def test_missing_boxes_give_a_clear_error(tmp_path, data_dir):
    m = _build(tmp_path, data_dir, "model.prior.from_scratch=true")
    batch = _batch(tmp_path, data_dir)
    del batch["boxes"]
    with pytest.raises(DataError, match="datamodule.component_boxes"):
        fit_repeated(m, batch, 1)
    simple = _build(tmp_path, data_dir, "model/recipe=gfpgan_simple", "model.prior.from_scratch=true")
    assert not simple.component_discriminators and len(simple.configure_optimizers()[0]) == 2
    fit_repeated(simple, batch, 1)  # the simple recipe needs no boxes


def test_tiny_gfpgan_overfits_a_few_pairs(tmp_path, data_dir):
    m = _build(
        tmp_path,
        data_dir,
        "model.generator.fix_decoder=false",
        "model.prior.from_scratch=true",
        "model.ema_half_life_images=0",
        "model/recipe=gfpgan_simple",
    )
    batch = _batch(tmp_path, data_dir)
    before = F.l1_loss(m.restore(batch["lq"])["image"], batch["hq"]).item()
    fit_repeated(m, batch, 30)
    after = F.l1_loss(m.restore(batch["lq"])["image"], batch["hq"]).item()
    assert after < 0.6 * before, (before, after)


def test_prior_checkpoint_of_our_clean_stylegan2_initialises_the_frozen_decoder(tmp_path, data_dir):
    m = _build(tmp_path, data_dir, "model.prior.from_scratch=true")
    prior = instantiate(
        compose_config(
            overrides=[
                *TINY,
                "model=stylegan2",
                "datamodule=synthetic_restore",
                "model.generator._target_=facezoo.models.components.stylegan2_clean.CleanGenerator",
                "~model.generator.isconcat",
                "model.generator.style_dim=32",
                "model.generator.n_mlp=2",
                "model.generator.narrow=0.0625",
                "model.generator.channel_multiplier=2",
            ],
            output_dir=tmp_path,
            data_dir=data_dir,
        ).model,
        "model",
    )
    path = tmp_path / "prior.ckpt"
    torch.save({"state_dict": prior.state_dict()}, path)
    assert m.load_prior(str(path))
    for k, v in prior.generator_ema.module.state_dict().items():
        torch.testing.assert_close(m.generator.stylegan_decoder.state_dict()[k], v)
        torch.testing.assert_close(m.generator_ema.module.stylegan_decoder.state_dict()[k], v)


def test_release_recipe_refuses_to_start_without_its_weights(tmp_path, vgg19_folder):
    cfg = compose_config(overrides=["experiment=gfpgan_ffhq512"], output_dir=tmp_path)
    assert cfg.model.size == 512 and cfg.datamodule.batch_size == 3 and cfg.datamodule.use_hflip
    assert cfg.model.generator._target_.endswith("GFPGANv1") and cfg.model.generator.channel_multiplier == 1
    assert cfg.iterations == 800_000 and cfg.trainer.max_steps == -1  # batches, whatever the optimizer count
    with pytest.raises(WeightsNotFoundError, match="StyleGAN2_512_Cmul1_FFHQ_B12G4_scratch_800k.pth"):
        instantiate(cfg.model, "model")
    (tmp_path / "prior.pth").touch()
    cfg.model.prior.checkpoint = str(tmp_path / "prior.pth")
    with pytest.raises(WeightsNotFoundError, match="vgg19-dcbb9e9d.pth"):
        instantiate(cfg.model, "model")
    cfg.model.perceptual.weights = str(vgg19_folder)
    with pytest.raises(WeightsNotFoundError, match="arcface_resnet18.pth"):
        instantiate(cfg.model, "model")


def test_identity_loss_and_metric_use_arcface_when_its_file_is_given(tmp_path, data_dir):
    from facezoo.models.components.arcface import ResNetArcFace

    torch.save(ResNetArcFace().state_dict(), tmp_path / "arcface_resnet18.pth")
    m = _build(tmp_path, data_dir, "model.prior.from_scratch=true",
               f"model.identity.weights={tmp_path / 'arcface_resnet18.pth'}")
    batch = _batch(tmp_path, data_dir)
    arcface = m.identity_loss.net.net  # a Frozen helper: trained around, never trained
    before = {k: v.clone() for k, v in arcface.state_dict().items()}
    assert "train/identity" in fit_repeated(m, batch, 1).callback_metrics
    assert m.training and not arcface.training and all(p.grad is None for p in arcface.parameters())
    assert all(torch.equal(v, before[k]) for k, v in arcface.state_dict().items())  # BN statistics too
    metric = m.val_identity
    m.update_extra_metrics("val", batch["hq"], batch["hq"])
    assert metric.compute() == pytest.approx(1.0, abs=1e-5)  # a face is itself
    assert not any(k.startswith("identity") or "arcface" in k for k in m.state_dict())  # not checkpointed
    without = _build(tmp_path, data_dir, "model.prior.from_scratch=true")  # no ArcFace file: the same keys
    without.load_state_dict(m.state_dict())
    m.load_state_dict(without.state_dict())
