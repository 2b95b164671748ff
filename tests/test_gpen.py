"""GPEN: the U-shaped generator, the import of official weights (names and shapes written out below from the
reference, independently of our modules), the GAN prior, the recipes, a tiny overfit and an exact resume.

Networks are built with random weights on purpose; release-size ones on the meta device (nothing allocated).
"""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from facezoo.losses.identity import IdentityLoss
from facezoo.models.components.arcface import IRSE50, gpen_identity_crop
from facezoo.models.components.gpen import GPENGenerator, count_parameters
from facezoo.models.components.stylegan2 import Discriminator, Generator
from facezoo.utils.compose import compose_config
from facezoo.utils.errors import FacezooError, WeightsNotFoundError
from facezoo.utils.instantiate import instantiate
from facezoo.weights.cli import main as import_main
from facezoo.weights.gpen import import_gpen_discriminator, import_gpen_generator, infer_gpen_config
from facezoo.weights.stylegan2 import import_stylegan2_prior
from helpers import TINY, first_batch, fit_repeated

GP = ["model=gpen", "datamodule=synthetic_restore"]
TINY_ARCH = dict(size=64, style_dim=32, n_mlp=2, channel_multiplier=2, narrow=1 / 16)  # = tiny_gpen.yaml


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# --- the official layout, written out from reference/official-implementations.md §2 ------------------------


def _widths(cm: int, narrow: float) -> dict[int, int]:
    base = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256 * cm, 128: 128 * cm, 256: 64 * cm, 512: 32 * cm}
    return {r: int(c * narrow) for r, c in base.items()}


def official_generator_shapes(size, style_dim=512, n_mlp=8, channel_multiplier=2, narrow=1.0) -> dict:
    """FullGenerator's state_dict keys → shapes (rosinality StyleGAN2 with concat noise + the ecd encoder)."""
    C, sd, log = _widths(channel_multiplier, narrow), style_dim, int(math.log2(size))
    s = {}
    for i in range(1, n_mlp + 1):
        s |= {f"generator.style.{i}.weight": (sd, sd), f"generator.style.{i}.bias": (sd,)}

    def styled(name, out, inp, blur=False):
        s.update({f"{name}.conv.weight": (1, out, inp, 3, 3), f"{name}.conv.modulation.weight": (inp, sd),
                  f"{name}.conv.modulation.bias": (inp,), f"{name}.noise.weight": (1,),
                  f"{name}.activate.bias": (2 * out,)})
        if blur:
            s[f"{name}.conv.blur.kernel"] = (4, 4)

    def to_rgb(name, inp, up=True):
        s.update({f"{name}.conv.weight": (1, 3, inp, 1, 1), f"{name}.conv.modulation.weight": (inp, sd),
                  f"{name}.conv.modulation.bias": (inp,), f"{name}.bias": (1, 3, 1, 1)})
        if up:
            s[f"{name}.upsample.kernel"] = (4, 4)

    s["generator.input.input"] = (1, C[4], 4, 4)
    styled("generator.conv1", C[4], C[4])
    to_rgb("generator.to_rgb1", 2 * C[4], up=False)
    for j, r in enumerate(2**k for k in range(3, log + 1)):
        styled(f"generator.convs.{2 * j}", C[r], 2 * C[r // 2], blur=True)
        styled(f"generator.convs.{2 * j + 1}", C[r], 2 * C[r])
        to_rgb(f"generator.to_rgbs.{j}", 2 * C[r])
    s |= {"ecd0.0.0.weight": (C[size], 3, 1, 1), "ecd0.0.1.bias": (C[size],)}
    for k in range(1, log - 1):
        cin, cout = C[size >> (k - 1)], C[size >> k]
        s |= {f"ecd{k}.0.0.kernel": (4, 4), f"ecd{k}.0.1.weight": (cout, cin, 3, 3),
              f"ecd{k}.0.2.bias": (cout,)}
    return s | {"final_linear.0.weight": (sd, C[4] * 16), "final_linear.0.bias": (sd,)}


def official_discriminator_shapes(size, channel_multiplier=2, narrow=1.0) -> dict:
    C, log = _widths(channel_multiplier, narrow), int(math.log2(size))
    s = {"convs.0.0.weight": (C[size], 3, 1, 1), "convs.0.1.bias": (C[size],)}
    for n, i in enumerate(range(log, 2, -1), start=1):
        cin, cout = C[2**i], C[2 ** (i - 1)]
        s |= {f"convs.{n}.conv1.0.weight": (cin, cin, 3, 3), f"convs.{n}.conv1.1.bias": (cin,),
              f"convs.{n}.conv2.0.kernel": (4, 4), f"convs.{n}.conv2.1.weight": (cout, cin, 3, 3),
              f"convs.{n}.conv2.2.bias": (cout,), f"convs.{n}.skip.0.kernel": (4, 4),
              f"convs.{n}.skip.1.weight": (cout, cin, 1, 1)}
    return s | {"final_conv.0.weight": (C[4], C[4] + 1, 3, 3), "final_conv.1.bias": (C[4],),
                "final_linear.0.weight": (C[4], C[4] * 16), "final_linear.0.bias": (C[4],),
                "final_linear.1.weight": (1, C[4]), "final_linear.1.bias": (1,)}


def _random_state(shapes: dict) -> dict:
    """An 'official' state_dict: random tensors, the real blur kernels (they are buffers in the files)."""
    kernel = torch.tensor([1.0, 3, 3, 1])
    kernel = torch.outer(kernel, kernel) / 64
    return {k: kernel * (4 if "upsample" in k or "conv.blur" in k else 1) if k.endswith("kernel")
            else torch.randn(v) for k, v in shapes.items()}


def _shapes(module: nn.Module) -> dict:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def _millions(shapes: dict) -> float:
    return round(sum(math.prod(s) for s in shapes.values()) / 1e6, 1)


@pytest.mark.parametrize(
    "arch, tensors, millions",
    [(dict(size=512), 163, 71.0), (dict(size=256, channel_multiplier=1, narrow=0.5), 144, 18.9)],
)
def test_release_generators_have_the_official_keys_and_counts(arch, tensors, millions):
    with torch.device("meta"):
        g = GPENGenerator(**arch)
    official = official_generator_shapes(**arch)
    assert _shapes(g) == official  # every key and shape of GPEN-BFR-512 / -256
    assert (len(official), _millions(official)) == (tensors, millions)
    n, elements = count_parameters(g)
    assert (n, round(elements / 1e6, 1)) == (tensors, millions)


def test_release_discriminator_and_identity_network_counts():
    with torch.device("meta"):
        d, arcface = Discriminator(512, channel_multiplier=2, stddev_group=None), IRSE50()
    official = official_discriminator_shapes(512)
    assert _shapes(d) == official and (len(official), _millions(official)) == (57, 29.0)  # GPEN-BFR-512-D
    assert len(arcface.state_dict()) == 397  # model_ir_se50.pth
    assert {"input_layer.2.weight", "body.3.shortcut_layer.0.weight", "body.23.res_layer.5.fc2.weight",
            "output_layer.3.weight", "output_layer.4.running_var"} <= arcface.state_dict().keys()


def test_encoder_features_feed_both_layers_of_their_level():
    g = GPENGenerator(**TINY_ARCH)
    x = torch.randn(2, 3, 64, 64)
    code, features = g.encode(x)
    assert code.shape == (2, 32) and [f.shape[-1] for f in features] == [64, 32, 16, 8, 4]
    noise = g.decoder_noise(features)
    assert [n.shape[-1] for n in noise] == [4, 8, 8, 16, 16, 32, 32, 64, 64]
    assert noise[1] is noise[2] is features[3] and noise[0] is features[4]
    image, latent = g(x, return_latents=True)
    assert image.shape == (2, 3, 64, 64) and latent.shape == (2, g.generator.n_latent, 32)
    torch.testing.assert_close(image, g.generator([code], noise=noise)[0])  # z through the mapping
    for m in g.generator.modules():  # feature weights start at 0 (official init): make them count
        if hasattr(m, "mode"):
            nn.init.constant_(m.weight, 0.5)
    other = [f.clone() for f in features]
    other[1] = other[1] + 1  # the 32 px feature: changes the output through the 32 px layers only
    changed = g.generator([code], noise=g.decoder_noise(other))[0]
    assert not torch.allclose(changed, g.generator([code], noise=noise)[0])
    with pytest.raises(ValueError, match="got a"):
        g(torch.randn(1, 3, 32, 32))


# --- import -------------------------------------------------------------------------------------------------


def test_import_maps_every_official_tensor_then_restore_works(tmp_path, data_dir):
    g_state = _random_state(official_generator_shapes(**TINY_ARCH))
    d_state = _random_state(official_discriminator_shapes(64, narrow=1 / 16))
    g_file, d_file = tmp_path / "GPEN-BFR-64.pth", tmp_path / "GPEN-BFR-64-D.pth"
    torch.save(g_state, g_file)
    torch.save(d_state, d_file)
    model = _build(tmp_path, data_dir)
    weights = import_gpen_generator(str(g_file), model.generator)
    assert weights.keys() == g_state.keys() and all(torch.equal(weights[k], g_state[k]) for k in g_state)
    model.generator.load_state_dict(weights)
    model.generator_ema.module.load_state_dict(weights)
    model.discriminator.load_state_dict(import_gpen_discriminator(str(d_file), model.discriminator))
    lq = torch.rand(2, 3, 48, 48) * 2 - 1
    out = model.restore(lq)["image"]
    assert out.shape == (2, 3, 48, 48)  # resized to 64 px, restored, resized back
    expected = F.interpolate(model.generator(F.interpolate(lq, (64, 64), mode="bilinear"))[0], (48, 48),
                             mode="bilinear", antialias=True)
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-4)
    # a training checkpoint {'g', 'd', 'g_ema'} (DataParallel prefixes) gives the same weights
    ckpt = {"g_ema": {f"module.{k}": v for k, v in g_state.items()}, "d": d_state, "g": {}}
    assert import_gpen_generator(ckpt, model.generator).keys() == weights.keys()
    assert infer_gpen_config(g_state) == {**TINY_ARCH, "isconcat": True}


def test_import_cli_writes_a_checkpoint_that_eval_loads(tmp_path):
    from facezoo.checkpoints import load_model

    g_state = _random_state(official_generator_shapes(**TINY_ARCH))
    torch.save(g_state, tmp_path / "GPEN-BFR-64.pth")
    out = tmp_path / "gpen64.ckpt"
    assert import_main([str(tmp_path / "GPEN-BFR-64.pth"), "--out", str(out)]) == 0
    model = load_model(out)
    assert model.size == 64 and all(
        torch.equal(model.generator_ema.module.state_dict()[k], v) for k, v in g_state.items()
    )
    del g_state["final_linear.0.bias"]
    torch.save(g_state, tmp_path / "broken.pth")
    with pytest.raises(SystemExit) as exit_:
        import_main([str(tmp_path / "broken.pth"), "--out", str(tmp_path / "x.ckpt")])
    assert exit_.value.code == 2


def test_import_rejects_a_mismatched_state_dict_listing_the_keys():
    g = GPENGenerator(**TINY_ARCH)
    state = _random_state(official_generator_shapes(**TINY_ARCH))
    del state["ecd3.0.1.weight"]
    state["generator.noises.noise_0"] = torch.zeros(1, 1, 4, 4)
    state["final_linear.0.weight"] = torch.zeros(32, 100)
    with pytest.raises(FacezooError) as err:
        import_gpen_generator(state, g)
    message = str(err.value)
    assert "\n" not in message and message.startswith("GPEN generator: the weights do not match")
    assert "missing 1 (ecd3.0.1.weight)" in message and "unexpected 1 (generator.noises.noise_0)" in message
    assert "final_linear.0.weight (32, 100) vs (32, 512)" in message
    wide = _random_state(official_generator_shapes(**{**TINY_ARCH, "narrow": 1 / 8}))
    with pytest.raises(FacezooError, match=r"wrong shapes .*\(\d+ in all\)"):
        import_gpen_generator(wide, g)


# --- the GAN prior ------------------------------------------------------------------------------------------


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


def test_add_noise_stylegan2_embeds_into_the_concat_decoder(tmp_path):
    tiny = dict(style_dim=32, n_mlp=2, narrow=1 / 16)
    source = Generator(128, **tiny)  # rosinality layout: added noise, stored noise maps, 128 px
    for m in source.modules():
        if hasattr(m, "mode"):
            nn.init.constant_(m.weight, 0.3)
    torch.save({"g_ema": source.state_dict(), "latent_avg": torch.zeros(32)}, tmp_path / "sg2.pt")
    decoder = Generator(64, isconcat=True, **tiny)
    state, d_state = import_stylegan2_prior(str(tmp_path / "sg2.pt"), decoder)
    decoder.load_state_dict(state)
    assert d_state is None
    # the source's 64 px skip image with its noise switched off, whatever the decoder's "noise" features
    z = torch.randn(2, 32)
    latent = source.w_plus([z])
    zeros = [torch.zeros(2, 1, 2 ** ((i + 5) // 2), 2 ** ((i + 5) // 2)) for i in range(source.num_layers)]
    out = source.conv1(source.input(latent), latent[:, 0], zeros[0])
    skip = source.to_rgb1(out, latent[:, 1])
    for level in range(4):  # 8 … 64 px
        i = 2 * level + 1
        out = source.convs[i - 1](out, latent[:, i], zeros[i])
        out = source.convs[i](out, latent[:, i + 1], zeros[i + 1])
        skip = source.to_rgbs[level](out, latent[:, i + 2], skip)
    res = [2 ** ((i + 5) // 2) for i in range(decoder.num_layers)]
    features = [torch.randn(2, decoder.channels[r], r, r) for r in res]
    torch.testing.assert_close(decoder([z], noise=features)[0], skip, rtol=1e-4, atol=1e-5)
    with pytest.raises(FacezooError, match="a 64 px generator cannot initialise a 128 px decoder"):
        import_stylegan2_prior({"g_ema": decoder.state_dict()}, Generator(128, isconcat=True, **tiny))


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


def test_paper_learning_rates_and_simple_recipe_identity(tmp_path, data_dir, caplog):
    model = _build(tmp_path, data_dir)
    (opt_encoder, opt_decoder, opt_d), _ = model.configure_optimizers()
    lrs = [o.param_groups[0]["lr"] for o in (opt_encoder, opt_decoder)]
    assert lrs == pytest.approx([2e-3, 2e-4])  # encoder : decoder = 10 : 1
    assert opt_d.param_groups[0]["lr"] == pytest.approx(2e-5 * 16 / 17)  # 1, with R1's lazy correction
    encoder = {id(p) for p in opt_encoder.param_groups[0]["params"]}
    assert encoder == {id(p) for n, p in model.generator.named_parameters() if not n.startswith("generator.")}
    with caplog.at_level("WARNING", logger="facezoo"):
        simple = _build(tmp_path, data_dir, "model/recipe=gpen_simple")
    assert "identity loss SKIPPED: model_ir_se50.pth not found" in caplog.text
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

