"""StyleGANEX's video tasks (src/models/styleganex.py `edit`, `toonify`): tiny overfits, the coach's editing
pairs drawn from G, the flicker-suppression loss L_tmp (its start at half of the run, its ramp, the same
augmentation on y0_hat), the editing vector v, the cartoon filter of the toon domain (datamodules/toon.py)
and G′ loaded as the decoder; the toon fine-tuning recipe. Networks have random weights on purpose (tests
only)."""

import pytest
import torch
import torch.nn.functional as F

from facezoo.datamodules.toon import cartoon
from facezoo.models.components.stylegan2 import Generator
from facezoo.models.gan import resize_to
from facezoo.utils.compose import compose_config
from facezoo.utils.errors import ConfigError, DataError
from facezoo.utils.instantiate import instantiate
from helpers import TINY, first_batch, fit_repeated

DATA = ["datamodule=synthetic_restore"]
ADAM = ["model.optimizers.encoder._target_=torch.optim.Adam", "~model.optimizers.encoder.degenerated_to_sgd"]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _build(tmp_path, data_dir, task, *overrides):
    overrides = [*TINY, *DATA, f"model=styleganex_{task}", *overrides]
    cfg = compose_config(overrides=overrides, output_dir=tmp_path, data_dir=data_dir)
    return instantiate(cfg.model, "model")


def _faces(n=4, size=64):
    smooth = F.interpolate(torch.rand(n, 3, 6, 6), size=size, mode="bicubic", align_corners=False)
    return smooth.clamp(0, 1) * 2 - 1


def _recording(model):
    """model.train_step records what it returns."""
    logs, step = [], model.train_step
    model.train_step = lambda batch: logs.append(step(batch)) or logs[-1]
    return logs


# --- training ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("task", ["edit", "toonify"])
def test_tiny_video_model_overfits(tmp_path, data_dir, task):
    model = _build(tmp_path, data_dir, task, *ADAM, "model.optimizers.encoder.lr=1e-3",
                   "model.loss_weights.adv=0", "model.affine_augment=false")
    faces = _faces(2)
    fit_repeated(model, {"hq": faces}, 1)  # fit start: the decoder, latent_avg, v
    model.editing["scales"] = [1.0]
    torch.manual_seed(1)
    x, y, v = model.training_pair({"hq": faces})  # one pair, held (edit: drawn from G, v at scale 1)
    model.training_pair = lambda batch: (x, y, v)

    def error():
        with torch.no_grad():
            y_hat = model.generate(x, model.face_of(x), randomize_noise=False, editing_w=v)[0]
        return F.mse_loss(*(resize_to(i, 64) for i in (y_hat, y))).item()

    before = error()
    fit_repeated(model, {"hq": faces}, 12)
    assert error() < 0.8 * before, (before, error())


def test_editing_pairs_are_drawn_from_g_as_the_coach_does(tmp_path, data_dir, monkeypatch):
    model = _build(tmp_path, data_dir, "edit")
    model.editing_w.copy_(torch.randn_like(model.editing_w))
    model.augment_directions = torch.randn(3, *model.editing_w.shape)
    hq = torch.zeros(2, 3, 64, 64)
    g, n, dim = model.decoder, model.decoder.n_latent, model.decoder.style_dim
    scales = set()
    for seed in range(12):
        torch.manual_seed(seed)
        x, y, v = model.editing_pair(hq)
        torch.manual_seed(seed)  # the same draws, in the coach's order: z, the augmentation, the scale
        ws = g.get_latent(torch.randn(2, dim))[:, None].expand(-1, n, -1)
        ws = ws + model.augment_directions[torch.randint(3, (2,))]
        scale = model.editing["scales"][int(torch.randint(6, ()))]
        torch.testing.assert_close(v, scale * model.editing_w[None])
        with torch.no_grad():
            full = g([0.75 * ws], input_is_latent=True, randomize_noise=False)[0]  # truncation 0.75 towards 0
            edited = g([0.75 * ws + v], input_is_latent=True, randomize_noise=False)[0]
        assert y.shape[-1] == g.size and x.shape[-2:] == hq.shape[-2:]
        torch.testing.assert_close(y, edited)  # y = G(ws + v) at G's size
        torch.testing.assert_close(x, F.adaptive_avg_pool2d(full, 64))  # x = G(ws) pooled to the face size
        if scale == 0:
            torch.testing.assert_close(y, full)  # v = 0: no edit
        scales.add(scale)
    assert scales <= {0.0, 0.25, 0.5, 0.75, 1.0, 1.25} and len(scales) >= 4


def test_temporal_loss_starts_at_half_and_ramps_as_the_coach(tmp_path, data_dir):
    model = _build(tmp_path, data_dir, "edit", "iterations=100")
    weights = []
    for step in (0, 49, 50, 60, 62, 75, 99):
        model.batch_counter.fill_(step)
        weights.append(model.temporal_weight())
    assert weights[:2] == [None, None]  # not computed before half of the run
    assert weights[2:] == pytest.approx([0.0, 30 * 0.4, 30 * 0.48, 30.0, 30.0])  # 30·min(1, 4(t/T − 0.5))
    model.loss_weights["tmp"] = 0.0
    assert model.temporal_weight() is None


def test_temporal_loss_is_zero_for_an_equivariant_network_and_follows_the_augmentation(tmp_path, data_dir):
    # untrained decoder: its noise strengths are 0, so fresh noise changes nothing and only the moves count
    model = _build(tmp_path, data_dir, "toonify", "model.loss_weights.adv=0", "model.affine_augment=false",
                   "iterations=2")
    logs = _recording(model)
    fit_repeated(model, {"hq": _faces()}, 2)
    assert "tmp" not in logs[0] and logs[1]["tmp"] == 0  # no move: ŷ = y0_hat exactly
    moved = _build(tmp_path, data_dir, "toonify", "model.loss_weights.adv=0", "iterations=2")
    logs = _recording(moved)
    fit_repeated(moved, {"hq": _faces()}, 2)
    assert logs[1]["tmp"] > 0  # moved inputs: G(E(T x)) ≠ T G(E(x)) for a random encoder


def test_augment_moves_y0_hat_with_x_and_y(tmp_path, data_dir, monkeypatch):
    model = _build(tmp_path, data_dir, "edit", "model.random_crop=true")
    x = _faces(8, 320)
    y = F.avg_pool2d(x, 4)  # a 64 px decoder's target
    y0 = y.flip(-1)
    for _ in range(5):
        cx, cy, cy0 = model.augment(x, y, y0)
        assert cx.shape[-1] < 320 and cy.shape == cy0.shape == (8, 3, cx.shape[-2] // 4, cx.shape[-1] // 4)
        torch.manual_seed(7)
        ax, ay = model.augment(x, y)
        torch.manual_seed(7)
        bx, by0 = model.augment(x, y0)
        torch.manual_seed(7)
        _, cy, cy0 = model.augment(x, y, y0)
        assert torch.equal(cy, ay) and torch.equal(cy0, by0)  # the same draws reach y0_hat


def test_editing_vector_conditions_the_decoder(tmp_path, data_dir):
    model = _build(tmp_path, data_dir, "edit", "model.encoder.use_att=0").eval()
    x = _faces(2)
    v = torch.randn(1, model.decoder.n_latent, model.decoder.style_dim)
    with torch.no_grad():
        plain = model.generate(x, x, randomize_noise=False)[0]
        assert torch.equal(model.generate(x, x, randomize_noise=False, editing_w=0 * v)[0], plain)
        assert not torch.allclose(model.generate(x, x, randomize_noise=False, editing_w=v)[0], plain)
    att = _build(tmp_path, data_dir, "edit").eval()  # use_att 1: v is the fusion layers' condition too
    assert all(layer.use_att for layer in att.encoder.fusion)
    att.decoder.load_state_dict(model.decoder.state_dict())
    with torch.no_grad():
        zero = att.generate(x, x, randomize_noise=False, editing_w=0 * v)[0]
        assert not torch.allclose(att.generate(x, x, randomize_noise=False, editing_w=v)[0], zero)
    att.editing_w.copy_(v[0])
    att.editing["scale"] = 0.5
    torch.testing.assert_close(att.editing_vector(), 0.5 * v)
    with torch.no_grad():  # restore edits with v × editing.scale
        expected = att.generate(x, x, randomize_noise=False, editing_w=0.5 * v)[0]
    torch.testing.assert_close(att.restore(x)["image"], expected)


def test_edit_and_toonify_refuse_to_start_without_their_files_when_required(tmp_path, data_dir):
    with pytest.raises(ConfigError, match="model.editing.direction / augment"):
        _build(tmp_path, data_dir, "edit", "model.editing.required=true")
    with pytest.raises(ConfigError, match="model.toonify.checkpoint"):
        _build(tmp_path, data_dir, "toonify", "model.toonify.required=true")
    with pytest.raises(ConfigError, match="model.toonify.pairs=toon: expected filter .* or folders"):
        _build(tmp_path, data_dir, "toonify", "model.toonify.pairs=toon")


def test_edit_reads_its_direction_files(tmp_path, data_dir):
    from facezoo.models.editing import save_direction

    model = _build(tmp_path, data_dir, "edit")
    n, dim = model.decoder.n_latent, model.decoder.style_dim
    direction, extra = torch.randn(dim), torch.randn(n, dim)
    save_direction(tmp_path / "v.npy", direction)
    save_direction(tmp_path / "a.pt", extra)
    model.editing.update(direction=str(tmp_path / "v.npy"), augment=[str(tmp_path / "a.pt")] * 2)
    fit_repeated(model, {"hq": _faces()}, 1)
    torch.testing.assert_close(model.editing_w, direction.expand(n, dim))
    assert model.augment_directions.shape == (2, n, dim) and torch.equal(model.augment_directions[1], extra)
    model.editing["direction"] = str(tmp_path / "missing.npy")
    with pytest.raises(DataError, match="missing.npy"):
        model.load_video_task_files()


# --- the toon domain and G′ --------------------------------------------------------------------------------


def test_cartoon_filter_is_batched_and_deterministic():
    faces = _faces(3, 48)
    toon = cartoon(faces)
    assert toon.shape == faces.shape and toon.min() >= -1 and toon.max() <= 1
    assert torch.equal(torch.cat([cartoon(f[None]) for f in faces]), toon)  # a batch = one at a time
    assert torch.equal(cartoon(faces), toon)
    assert (toon - faces).abs().mean() > 0.01
    sharp = torch.full((1, 3, 32, 32), 0.6)
    sharp[..., 16:] = -0.6
    edges = cartoon(sharp)[0].mean(0)
    assert edges[:, 15:17].min() < -0.6 and edges[:, 2:12].std() < 1e-6  # dark outline, flat areas flat
    with pytest.raises(DataError, match=r"\(B, 3, H, W\)"):
        cartoon(torch.zeros(1, 1, 8, 8))


def test_toon_faces_are_written_by_the_synthetic_writer(tmp_path):
    from facezoo.datamodules.synthetic.renderer import render_faces
    from facezoo.datamodules.synthetic.writers import write_faces
    from facezoo.utils.image_io import read_rgb_uint8, to_uint8

    root = write_faces(tmp_path / "toon", 2, size=32, toon=True)
    expected = to_uint8(cartoon(render_faces([0, 1], 32, 0)["image"]))[1].permute(1, 2, 0).numpy()
    assert (read_rgb_uint8(root / "00001.png") == expected).all()


def test_toonify_loads_g_prime_over_the_face_prior_and_targets_cartoons(tmp_path, data_dir):
    model = _build(tmp_path, data_dir, "toonify")
    face, toon = (Generator(256, 32, 2, narrow=0.0625) for _ in range(2))  # the tiny decoder's shape
    latent = torch.randn(32)
    torch.save({"g_ema": face.state_dict(), "latent_avg": latent}, tmp_path / "face.pt")
    torch.save({"g_ema": toon.state_dict(), "latent_avg": torch.zeros(32)}, tmp_path / "toon.pt")
    model.prior["checkpoint"] = str(tmp_path / "face.pt")
    model.toonify["checkpoint"] = str(tmp_path / "toon.pt")
    fit_repeated(model, {"hq": _faces()}, 1)
    for key, value in toon.state_dict().items():
        assert torch.equal(model.decoder.state_dict()[key], value), key
    assert torch.equal(model.latent_avg, latent.expand_as(model.latent_avg))  # the face prior's
    faces = _faces()
    x, y = model.toonify_pair(faces)
    assert torch.equal(x, faces) and torch.equal(y, cartoon(faces))  # the tiny decoder keeps the size (r = 1)


def test_toon_finetune_recipe_starts_from_the_face_prior(tmp_path, data_dir):
    synthetic = compose_config(overrides=["experiment=stylegan2_synthetic", "model.generator.isconcat=false"],
                               output_dir=tmp_path, data_dir=data_dir)
    cfg = compose_config(overrides=["experiment=stylegan2_toon_finetune", "init_from=/some/prior.ckpt"],
                         output_dir=tmp_path, data_dir=data_dir)
    assert cfg.init_from == "/some/prior.ckpt" and cfg.datamodule.synthetic.toon is True
    assert "toon" in cfg.datamodule.data_dir
    assert cfg.model.generator == synthetic.model.generator and cfg.model.size == synthetic.model.size
    assert cfg.model.generator.isconcat is False  # StyleGANEX's decoder: add-noise


# --- end to end (slow) -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_cpu_video_recipes_run_from_a_stylegan2_synthetic_prior(tmp_path, data_dir):
    """The command chains of experiment=styleganex_{edit,toonify}_synthetic (the prior, the inversion encoder,
    G' by experiment=stylegan2_toon_finetune, the direction files), each run cut to 2 batches with L_tmp on
    from the second (the whole recipes: ~6-8 min each on 2 idle cores)."""
    from facezoo.checkpoints import load_model
    from facezoo.models.editing import fit_direction, save_direction
    from facezoo.train import train
    from helpers import QUIET

    short = [*QUIET, "trainer.limit_val_batches=1", "trainer.limit_test_batches=1"]

    def run(name, *overrides):
        cfg = compose_config(overrides=[*overrides, *short], output_dir=tmp_path / name, data_dir=data_dir)
        return train(cfg), tmp_path / name / "checkpoints" / "last.ckpt"

    _, prior = run("prior", "experiment=stylegan2_synthetic", "model.generator.isconcat=false",
                   "trainer.max_epochs=1", "trainer.limit_train_batches=2")
    _, inversion = run("inversion", "experiment=styleganex_inversion_synthetic",
                       f"model.prior.checkpoint={prior}", "iterations=2")
    _, toon = run("toon", "experiment=stylegan2_toon_finetune", f"init_from={prior}", "iterations=2")
    generator = load_model(prior).generator_ema.module
    save_direction(tmp_path / "v.npy", 3 * fit_direction(generator, samples=200))
    save_direction(tmp_path / "aug.npy", torch.randn(256))
    files = [f"model.prior.checkpoint={prior}", f"model.encoder_init.checkpoint={inversion}", "iterations=2"]
    edit, edited = run("edit", "experiment=styleganex_edit_synthetic", *files,
                       f"model.editing.direction={tmp_path / 'v.npy'}",
                       f"model.editing.augment=[{tmp_path / 'aug.npy'}]")
    toonify, toonified = run("toonify", "experiment=styleganex_toonify_synthetic", *files,
                             f"model.toonify.checkpoint={toon}")
    assert edit["test/psnr"] > 5 and toonify["test/psnr"] > 5, (edit, toonify)
    v = load_model(edited).editing_w  # v kept in the checkpoint: 3 × the unit normal on each of the 10 codes
    assert v.shape == (10, 256) and v.norm(dim=1) == pytest.approx(torch.full((10,), 3.0), rel=1e-4)
    g_prime = load_model(toon).generator_ema.module.state_dict()
    decoder = load_model(toonified).decoder.state_dict()
    assert all(torch.equal(decoder[k], v) for k, v in g_prime.items())  # G' is the decoder


def test_toonify_trains_on_folder_pairs_and_evaluates_against_the_cartoon_filter(tmp_path, data_dir):
    from facezoo.utils.image_io import write_image

    for split in ("train", "val", "test"):  # renderings (data_dir) and the faces (label_dir), named alike
        for i, (face, toon) in enumerate(zip(_faces(2), cartoon(_faces(2)), strict=True)):
            write_image(tmp_path / "toons" / split / f"{i}.png", toon)
            write_image(tmp_path / "faces" / split / f"{i}.png", face)
    folder_data = ["datamodule=translation_folder", f"datamodule.data_dir={tmp_path / 'toons'}",
                   f"datamodule.label_dir={tmp_path / 'faces'}", "datamodule.labels=image",
                   "datamodule.image_size=64", "datamodule.batch_size=2", "datamodule.num_workers=0"]
    overrides = [*TINY[:-1], *folder_data, "model=styleganex_toonify", "model.toonify.pairs=folders"]
    cfg = compose_config(overrides=overrides, output_dir=tmp_path, data_dir=data_dir)
    model, data = instantiate(cfg.model, "model"), instantiate(cfg.datamodule, "datamodule")
    batch = first_batch(data)
    x, y, v = model.training_pair(batch)
    assert torch.equal(x, resize_to(batch["lq"], (64, 64))) and torch.equal(y, batch["hq"]) and v is None
    lq, target, _ = model.evaluation_pair(batch)  # the renderings themselves
    assert torch.equal(target, batch["hq"])
    filtered = _build(tmp_path, data_dir, "toonify")  # pairs: filter -> the cartoon of the face
    assert torch.equal(filtered.evaluation_pair(batch)[1], cartoon(batch["hq"]))
    with pytest.raises(ConfigError, match="datamodule.labels=image"):  # folders need the paired data
        fit_repeated(model, {"hq": _faces(2)}, 1)


@pytest.mark.parametrize("task", ["edit", "toonify"])
def test_paper_video_recipes_pin_the_official_numbers_and_refuse_without_their_files(tmp_path, monkeypatch,
                                                                                     task):
    monkeypatch.setenv("FACEZOO_PRETRAINED", str(tmp_path))  # empty
    cfg = compose_config(overrides=[f"experiment=styleganex_ffhq_{task}"], output_dir=tmp_path)
    m, data = cfg.model, cfg.datamodule
    assert (m.size, m.task, m.encoder.skip_max_layer, data.batch_size) == (1024, task, 7, 2)
    assert (m.loss_weights.adv, m.loss_weights.tmp, m.affine_augment, m.crop_face) == (0.1, 30.0, True, True)
    assert cfg.iterations == {"edit": 100_000, "toonify": 55_000}[task]
    if task == "edit":
        assert m.encoder.use_att == 1 and m.editing.required
    else:
        assert m.toonify.pairs == "folders" and m.toonify.required and data.labels == "image"
    with pytest.raises(ConfigError, match="model.editing.direction|model.toonify.checkpoint"):
        instantiate(m, "model")
