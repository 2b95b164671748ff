"""StyleGANEX sketch-to-face and mask-to-face (src/models/styleganex.py, tasks sketch2face / mask2face): tiny
overfits on the synthetic label data, the latent mask taking exactly its codes from ỹ (or a random style),
w_norm on the mixed codes, where the encoder starts (T fresh), the configs' official numbers and their
refusals. Networks have random weights on purpose (tests only). The data:
tests/datamodules/test_translation.py; the command: tests/test_translate.py; the contract every method keeps:
tests/test_zoo_contract.py."""

import pytest
import torch
import torch.nn.functional as F

from facezoo.models.styleganex import per_sample_statistics
from facezoo.utils.compose import compose_config
from facezoo.utils.errors import ConfigError, WeightsNotFoundError
from facezoo.utils.instantiate import instantiate
from helpers import TINY, first_batch, fit_repeated, random_irse50, save_encoder_checkpoint

ADAM = ["model.optimizers.encoder._target_=torch.optim.Adam", "~model.optimizers.encoder.degenerated_to_sgd",
        "model.optimizers.encoder.lr=1e-3"]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _cfg(tmp_path, data_dir, task, *overrides):
    labels = "sketch" if task == "sketch2face" else "parsing"
    overrides = [*TINY, "datamodule=synthetic_translation", f"datamodule.labels={labels}",
                 f"model=styleganex_{task}", *overrides]
    return compose_config(overrides=overrides, output_dir=tmp_path, data_dir=data_dir)


def _build(tmp_path, data_dir, task, *overrides):
    return instantiate(_cfg(tmp_path, data_dir, task, *overrides).model, "model")


@pytest.fixture(scope="module")
def batches(tmp_path_factory, data_dir):
    """A training batch of each task: 64 px faces and their label maps' pictures (the tiny decoder: r = 1)."""
    out = {}
    for task in ("sketch2face", "mask2face"):
        cfg = _cfg(tmp_path_factory.mktemp(task), data_dir, task)
        out[task] = first_batch(instantiate(cfg.datamodule, "datamodule"))
    return out


@pytest.mark.parametrize("task", ["sketch2face", "mask2face"])
def test_tiny_model_overfits_its_label_maps_with_the_decoder_frozen(tmp_path, data_dir, batches, task):
    model = _build(tmp_path, data_dir, task, *ADAM, "model.affine_augment=false")
    batch = batches[task]
    lq, hq = batch["lq"], batch["hq"]
    fit_repeated(model, batch, 1)  # fit start: the (random) decoder and its latent_avg
    decoder = {k: v.clone() for k, v in model.decoder.state_dict().items()}
    before = F.mse_loss(model.restore(lq, style=hq)["image"], hq).item()
    fit_repeated(model, batch, 12)
    after = F.mse_loss(model.restore(lq, style=hq)["image"], hq).item()
    assert after < 0.85 * before, (before, after)
    assert all(torch.equal(v, decoder[k]) for k, v in model.decoder.state_dict().items())
    assert model.encoder.input_label_layer.model[0].weight.shape[1] == (1 if task == "sketch2face" else 19)


def _decoder_codes(model):
    """Spy on the decoder: the w+ codes of each call."""
    seen, forward = [], model.decoder.forward

    def spy(styles, *args, **kwargs):
        seen.append(styles[0].detach().clone())
        return forward(styles, *args, **kwargs)

    model.decoder.forward = spy
    return seen


def test_the_latent_mask_takes_its_codes_and_only_them_from_the_style(tmp_path, data_dir, batches):
    model = _build(tmp_path, data_dir, "mask2face", "model.latent_mask=[9,10,11,12,13]").eval()
    model.latent_avg.normal_()
    fit_repeated(model, batches["mask2face"], 1)  # BatchNorm running statistics away from their init
    model.eval()
    lq, hq = batches["mask2face"]["lq"][:2], batches["mask2face"]["hq"][:2]
    seen = _decoder_codes(model)
    x = model.encoder_input(lq)
    with torch.no_grad(), per_sample_statistics(model.encoder):  # each input normalised by its own statistics
        own = torch.cat([model.encoder(x[i : i + 1]).w_plus for i in range(2)]) + model.latent_avg
        target = torch.cat([model.encoder.w_plus(model.encoder.body_features(hq[i : i + 1]))
                            for i in range(2)])
    running = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    batched = model.restore(lq, style=hq)["image"]
    styles = model.random_styles(2, torch.Generator().manual_seed(1))
    first = model.restore(lq, inject=styles)["image"]
    second = model.restore(lq, inject=model.random_styles(2, torch.Generator().manual_seed(2)))["image"]
    model.restore(lq)  # no style: latent_avg
    masked, kept = [9, 10, 11, 12, 13], list(range(9))
    from_style, random1, random2, mean = seen[:4]  # one decoder call per restore, the batch of 2 in it
    singles = [model.restore(lq[i : i + 1], style=hq[i : i + 1])["image"] for i in range(2)]
    torch.testing.assert_close(batched, torch.cat(singles), atol=1e-5, rtol=0)  # each by its own statistics
    torch.testing.assert_close(from_style[:, kept], own[:, kept])
    torch.testing.assert_close(from_style[:, masked], target[:, masked])
    assert torch.equal(random1[:, kept], random2[:, kept])
    assert torch.equal(random1[:, masked], styles[:, masked])
    assert not torch.allclose(random1[:, masked], random2[:, masked])
    assert (first - second).abs().mean() > 1e-3  # different styles, different faces
    assert torch.equal(mean[:, masked], model.latent_avg[masked].expand(2, -1, -1))
    assert all(torch.equal(v, running[k]) for k, v in model.encoder.state_dict().items())  # stats untouched
    assert not model.training and not model.encoder.input_label_layer.model[-2].training
    # official multi-modal inference: 0.7 · mapping(z), one w over every code
    z = torch.randn(2, 32, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(styles, 0.7 * model.decoder.style(z)[:, None].expand(-1, 14, -1))


def test_training_injects_the_aligned_target_and_weighs_the_mixed_codes(tmp_path, data_dir, batches):
    model = _build(tmp_path, data_dir, "sketch2face", "model.affine_augment=false", "model.random_crop=false")
    batch = batches["sketch2face"]
    seen, style_of = [], model.style_of
    model.style_of = lambda y, x: seen.append((y, x)) or style_of(y, x)
    codes = _decoder_codes(model)
    trainer = fit_repeated(model, batch, 1)
    (y, x), = seen
    assert torch.equal(y, batch["hq"]) and x.shape == (4, 1, 64, 64)  # the label map: 1 channel in [0, 1]
    mixed = codes[0] - model.latent_avg
    w_norm = mixed.flatten(1).norm(dim=1).mean()  # official: on the codes G drew from, minus latent_avg
    assert trainer.callback_metrics["train/w_norm"].item() == pytest.approx(w_norm.item(), rel=1e-4)


def test_encoder_starts_with_a_fresh_translation_network(tmp_path, data_dir):
    irse_file = tmp_path / "model_ir_se50.pth"
    model = _build(tmp_path, data_dir, "mask2face", f"model.encoder_init.checkpoint={irse_file}")
    own = model.encoder.state_dict()
    irse = random_irse50(own)
    torch.save(irse, irse_file)
    start = {k: v.clone() for k, v in own.items()}
    model.load_encoder_init()
    state = model.encoder.state_dict()
    # official pSp: an encoder of label maps takes IR-SE50's body, not its input layer
    assert all(torch.equal(state[k], v) for k, v in irse.items() if k.startswith("body."))
    assert all(torch.equal(state[k], start[k]) for k in irse if k.startswith("input_layer."))
    # a StyleGANEX checkpoint without T (an inversion encoder): everything it has; T and fusion start fresh
    inversion = _build(tmp_path, data_dir, "mask2face", "model.task=inversion", "~model.encoder.label_nc",
                       "model.encoder.skip_max_layer=0")
    model.encoder_init["checkpoint"] = str(save_encoder_checkpoint(inversion.encoder, tmp_path / "inv.ckpt"))
    model.load_encoder_init()
    state = model.encoder.state_dict()
    assert all(torch.equal(state[k], v) for k, v in inversion.encoder.state_dict().items())
    fresh = [k for k in state if k.startswith(("input_label_layer.", "fusion."))]
    assert fresh and all(torch.equal(state[k], start[k]) for k in fresh)


def test_label_channels_must_match_the_task(tmp_path, data_dir):
    with pytest.raises(ConfigError, match="label_nc=1: mask2face reads 19-channel label maps"):
        _build(tmp_path, data_dir, "mask2face", "model.encoder.label_nc=1")


@pytest.mark.parametrize("task, labels, skips", [("sketch2face", "sketch", 1), ("mask2face", "parsing", 2)])
def test_paper_recipes_pin_the_official_numbers_and_refuse_without_their_files(tmp_path, monkeypatch, task,
                                                                                labels, skips):
    monkeypatch.setenv("FACEZOO_PRETRAINED", str(tmp_path))  # empty
    cfg = compose_config(overrides=[f"experiment=styleganex_ffhq_{task}"], output_dir=tmp_path)
    m, data = cfg.model, cfg.datamodule
    assert (m.task, m.size, m.optimizers.encoder.lr, cfg.iterations, m.prior.checkpoint) == (
        task, 1024, 1e-4, 100_000, "stylegan2_1024_ffhq")
    assert (m.encoder_init.checkpoint, m.prior.required, m.encoder_init.required, m.lpips_required) == (
        "ir_se50", True, True, True)
    assert (data.batch_size, data.image_size, data.labels) == (8, 320, labels)
    assert (m.encoder.skip_max_layer, m.encoder.label_nc, m.latent_mask, m.inject_latent_avg) == (
        skips, 1 if task == "sketch2face" else 19, None, False)
    assert m.crop_face and m.affine_augment and m.random_crop
    weights = {"l2": 1.0, "lpips": 0.8, "id": 0.0, "w_norm": 0.005, "adv": 0.0, "r1": 1.0}
    assert {k: v for k, v in m.loss_weights.items() if k in weights} == weights
    with pytest.raises(WeightsNotFoundError, match="stylegan2-ffhq-config-f.pt"):
        instantiate(m, "model")


def test_cpu_recipes_compose(tmp_path):
    for task in ("sketch2face", "mask2face"):
        cfg = compose_config(overrides=[f"experiment=styleganex_{task}_synthetic"], output_dir=tmp_path)
        m = cfg.model
        assert (m.size, cfg.datamodule.image_size, list(m.latent_mask)) == (64, 256, [4, 5, 6, 7, 8, 9])
        assert cfg.model.prior.required and cfg.model.encoder_init.required and cfg.model.inject_latent_avg


# --- end to end (slow) -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_cpu_recipes_start_from_the_prior_and_the_inversion_encoder(tmp_path, data_dir):
    """experiment=styleganex_{sketch2face,mask2face}_synthetic after its two earlier commands, each run cut to
    2 batches (the whole recipes: ~8 min each on 2 idle cores)."""
    from facezoo.train import train
    from helpers import QUIET

    short = [*QUIET, "trainer.limit_val_batches=1", "trainer.limit_test_batches=1"]
    prior = compose_config(overrides=["experiment=stylegan2_synthetic", "model.generator.isconcat=false",
                                      "trainer.max_epochs=1", "trainer.limit_train_batches=2", *short],
                           output_dir=tmp_path / "prior", data_dir=data_dir)
    train(prior)
    prior_ckpt = tmp_path / "prior" / "checkpoints" / "last.ckpt"
    inversion = compose_config(overrides=["experiment=styleganex_inversion_synthetic", "iterations=2",
                                          f"model.prior.checkpoint={prior_ckpt}", *short],
                               output_dir=tmp_path / "inversion", data_dir=data_dir)
    train(inversion)
    encoder = tmp_path / "inversion" / "checkpoints" / "last.ckpt"
    for task in ("sketch2face", "mask2face"):
        overrides = [f"experiment=styleganex_{task}_synthetic", f"model.prior.checkpoint={prior_ckpt}",
                     f"model.encoder_init.checkpoint={encoder}", "iterations=2", *short]
        metrics = train(compose_config(overrides=overrides, output_dir=tmp_path / task, data_dir=data_dir))
        assert metrics["test/psnr"] > 5, metrics
