"""GPEN's training module (src/models/gpen.py): the GAN prior from our StyleGAN2 checkpoint, the
recipes (paper learning rates, the simple recipe's identity loss, the release recipe's refusal), retouching
pairs and a tiny overfit. Networks are built with random weights on purpose. (The networks:
tests/models/components/test_gpen.py; the import of official weights: tests/weights/test_gpen.py.)"""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from facezoo.losses.identity import IdentityLoss
from facezoo.models.components.arcface import IRSE50, gpen_identity_crop
from facezoo.utils.compose import compose_config
from facezoo.utils.errors import WeightsNotFoundError
from facezoo.utils.instantiate import instantiate
from helpers import TINY, first_batch, fit_repeated

GP = ["model=gpen", "datamodule=synthetic_restore"]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _build(tmp_path, data_dir, *overrides, model="model=gpen"):
    cfg = compose_config(overrides=[*TINY, *GP, model, *overrides], output_dir=tmp_path, data_dir=data_dir)
    return instantiate(cfg.model, "model")


def _batch(tmp_path, data_dir, *overrides):
    cfg = compose_config(overrides=[*TINY, *GP, *overrides], output_dir=tmp_path, data_dir=data_dir)
    return first_batch(instantiate(cfg.datamodule, "datamodule"))


def test_prior_from_our_stylegan2_checkpoint_starts_the_fit(tmp_path, data_dir):
    prior = _build(tmp_path, data_dir, model="model=stylegan2")  # same widths: tiny_stylegan2 = tiny_gpen
    path = tmp_path / "prior.ckpt"
    torch.save({"state_dict": prior.state_dict()}, path)
    model = _build(tmp_path, data_dir, f"model.prior.checkpoint={path}", "model.optimizers.encoder.lr=0",
                   "model.optimizers.decoder.lr=0", "model.optimizers.discriminator.lr=0")
    fit_repeated(model, _batch(tmp_path, data_dir), 1)  # loads the prior at fit start; lr 0 keeps the weights
    for k, v in prior.generator_ema.module.state_dict().items():
        torch.testing.assert_close(model.generator.generator.state_dict()[k], v)
        torch.testing.assert_close(model.generator_ema.module.generator.state_dict()[k], v)
    for k, v in prior.discriminator.state_dict().items():
        torch.testing.assert_close(model.discriminator.state_dict()[k], v)
    with pytest.raises(WeightsNotFoundError, match="model.prior.checkpoint=.*nowhere.ckpt: file not found"):
        model.load_prior(str(tmp_path / "nowhere.ckpt"))


# --- recipes ------------------------------------------------------------------------------------------------


def test_ffhq512_recipe_refuses_to_start_without_its_prior(tmp_path):
    cfg = compose_config(overrides=["experiment=gpen_ffhq512"], output_dir=tmp_path)
    assert cfg.model.size == 512 and cfg.datamodule.batch_size == 1 and cfg.model.prior.required
    with pytest.raises(WeightsNotFoundError, match=r"model.prior.checkpoint=.*model.prior.from_scratch=true"):
        instantiate(cfg.model, "model")


def test_gpen_trains_on_retouching_pairs(tmp_path, data_dir):
    model = _build(tmp_path, data_dir, "model.size=32")
    batch = _batch(tmp_path, data_dir, "datamodule=synthetic_retouch", "split.gamma=0.5")
    assert "paired" in batch and "lq" not in batch
    trainer = fit_repeated(model, batch, 1)  # raw → retouched as lq → hq
    assert int(model.batch_counter) == 1 and "train/content" in trainer.callback_metrics


def test_paper_learning_rates_and_simple_recipe_identity(tmp_path, data_dir):
    model = _build(tmp_path, data_dir)
    (opt_encoder, opt_decoder, opt_d), _ = model.configure_optimizers()
    lrs = [o.param_groups[0]["lr"] for o in (opt_encoder, opt_decoder)]
    assert lrs == pytest.approx([2e-3, 2e-4])  # encoder : decoder = 10 : 1
    assert opt_d.param_groups[0]["lr"] == pytest.approx(2e-5 * 16 / 17)  # 1, with R1's lazy correction
    encoder = {id(p) for p in opt_encoder.param_groups[0]["params"]}
    assert encoder == {id(p) for n, p in model.generator.named_parameters() if not n.startswith("generator.")}
    simple = _build(tmp_path, data_dir, "model/recipe=gpen_simple")  # no IR-SE50: see test_gan_prior.py
    (opt_encoder, opt_decoder, opt_d), _ = simple.configure_optimizers()
    assert [o.param_groups[0]["lr"] for o in (opt_encoder, opt_decoder)] == pytest.approx([2e-3 * 4 / 5] * 2)
    assert opt_encoder.param_groups[0]["betas"] == pytest.approx((0.0, 0.99 ** 0.8))
    with pytest.raises(WeightsNotFoundError, match="model_ir_se50.pth"):
        _build(tmp_path, data_dir, "model/recipe=gpen_simple", "model.identity.required=true")

    class Embed(nn.Module):  # stands in for IR-SE50 (112 px crops → unit vectors)
        def forward(self, x):
            return F.normalize(F.adaptive_avg_pool2d(x, 4).flatten(1), dim=1)

    simple.identity_loss = IdentityLoss(Embed(), gpen_identity_crop, "cosine")
    trainer = fit_repeated(simple, _batch(tmp_path, data_dir), 1)
    assert {"train/identity", "train/path", "train/r1"} <= set(trainer.callback_metrics)
    crop = gpen_identity_crop(torch.zeros(1, 3, 512, 512))
    assert crop.shape == (1, 3, 112, 112)



def test_identity_network_is_read_at_the_first_step_that_uses_it(tmp_path, data_dir):
    torch.save(IRSE50().state_dict(), tmp_path / "model_ir_se50.pth")  # random weights (tests only)
    simple = _build(tmp_path, data_dir, "model/recipe=gpen_simple", f"model.identity.weights={tmp_path}")
    assert simple.identity_file == tmp_path / "model_ir_se50.pth" and simple.identity_loss is None
    trainer = fit_repeated(simple, _batch(tmp_path, data_dir), 1)
    assert "train/identity" in trainer.callback_metrics
    assert isinstance(simple.identity_loss.net.net, IRSE50)  # built once, frozen, out of the state_dict
    assert not any(k.startswith("identity_loss.") for k in simple.state_dict())

def test_tiny_gpen_overfits_a_few_pairs(tmp_path, data_dir):
    # a 32 px GPEN on 64 px pairs (resized in and out, as the paper's input contract), decoder lr raised
    model = _build(tmp_path, data_dir, "model.size=32", "model.ema_half_life_images=0",
                   "model.prior.from_scratch=true", "model.optimizers.decoder.lr=2e-3",
                   "model.optimizers.discriminator.lr=2e-4")
    batch = _batch(tmp_path, data_dir)
    before = F.l1_loss(model.restore(batch["lq"])["image"], batch["hq"]).item()
    fit_repeated(model, batch, 30)
    after = F.l1_loss(model.restore(batch["lq"])["image"], batch["hq"]).item()
    assert after < 0.6 * before, (before, after)
