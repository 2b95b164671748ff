"""StyleGANEX's releases as facezoo networks (src/weights/styleganex.py): a checkpoint in the official layout
(what training/coach.py saves: `state_dict` with the `encoder.` / `decoder.` prefixes, `opts` = vars(opts),
`latent_avg`, the `discriminator` when adv_lambda > 0) imports every tensor unchanged for the tasks facezoo
has (inversion, sr) and rebuilds the config from the opts; the translation tasks' networks (T included) are
read but refused by the importer until their module lands; the video tasks, a wrong / missing / unknown key
and a pickled opts Namespace are refused in one line; the full-size releases have the reference's tensor
counts; rosinality's StyleGAN2 file loads as the decoder prior. (The networks: tests/models/components/.)"""

import argparse
import importlib.util

import pytest
import torch

from facezoo.checkpoints import load_model, open_model_file
from facezoo.models.components.stylegan2 import Discriminator, Generator
from facezoo.models.components.styleganex import StyleGANEXGenerator
from facezoo.models.components.styleganex_encoder import StyleGANEXEncoder
from facezoo.utils.errors import FacezooError
from facezoo.weights.releases import import_release, recognise
from facezoo.weights.styleganex import (
    fusion_levels,
    import_styleganex_release,
    load_styleganex_prior,
)

TINY = dict(size=64, style_dim=32, n_mlp=2, channel_multiplier=2, narrow=0.25)  # 16-channel IR-SE50 stem
N_STYLES = 10  # 2·log2(64) − 2

# vars(opts) of options/train_options.py at its defaults, plus what the coach sets (device) and pSp adds
# (n_styles): the dict an official checkpoint holds
DEFAULT_OPTS = dict(
    exp_dir="/path/to/experiment", dataset_type="ffhq_encode", encoder_type="GradualStyleEncoder", input_nc=3,
    label_nc=0, output_size=1024, feat_ind=0, max_pooling=False, use_skip=False, use_skip_torgb=False,
    skip_max_layer=7, crop_face=False, affine_augment=False, random_crop=False, resize_factors=None,
    blind_sr=False, use_latent_mask=False, latent_mask="8,9,10,11,12,13,14,15,16,17", res_num=2,
    toonify_weights=None, generate_training_data=False, use_att=0, editing_w_path=None, zero_noise=False,
    direction_path=None, batch_size=4, test_batch_size=8, workers=4, test_workers=8, learning_rate=0.0001,
    optim_name="ranger", train_decoder=False, start_from_latent_avg=False, learn_in_w=False, lpips_lambda=0.8,
    id_lambda=0, l2_lambda=1.0, w_norm_lambda=0, lpips_lambda_crop=0, l2_lambda_crop=0, moco_lambda=0,
    adv_lambda=0, d_reg_every=16, r1=1, tmp_lambda=0,
    stylegan_weights="pretrained_models/stylegan2-ffhq-config-f.pt", checkpoint_path=None, max_steps=500000,
    image_interval=100, board_interval=50, val_interval=1000, save_interval=None, use_wandb=False,
    device="cuda:0", n_styles=18,
)
# the README recipes
RECIPES = {
    "inversion": dict(dataset_type="ffhq_encode", max_steps=100000, batch_size=8,
                      start_from_latent_avg=True, id_lambda=0.1, w_norm_lambda=0.001, affine_augment=True,
                      random_crop=True, crop_face=True),
    "sr": dict(dataset_type="ffhq_super_resolution", max_steps=100000, start_from_latent_avg=True,
               adv_lambda=0.1, affine_augment=True, random_crop=True, crop_face=True, use_skip=True,
               skip_max_layer=4, resize_factors="8"),
    "sketch2face": dict(dataset_type="ffhq_sketch_to_face", use_skip=True, skip_max_layer=1, label_nc=1,
                        input_nc=1, use_latent_mask=True, w_norm_lambda=0.005),
    "mask2face": dict(dataset_type="ffhq_seg_to_face", use_skip=True, skip_max_layer=2, label_nc=19,
                      input_nc=19, use_latent_mask=True, w_norm_lambda=0.005),
    "edit": dict(dataset_type="ffhq_edit", use_skip=True, skip_max_layer=7, use_att=1, adv_lambda=0.1,
                 tmp_lambda=30, editing_w_path="/path/to/editing_vector"),
    "toonify": dict(dataset_type="toonify", use_skip=True, skip_max_layer=7, adv_lambda=0.1, tmp_lambda=30),
}


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def official_opts(task: str, **changes) -> dict:
    return {**DEFAULT_OPTS, "output_size": TINY["size"], "n_styles": N_STYLES, **RECIPES[task], **changes}


def _randomised(state: dict) -> dict:
    """Every tensor perturbed at random, so that one imported under another key shows (the initial values
    repeat: ones, zeros, identity taps); the constants (FIR kernels, blur_weight) and counters kept."""
    keep = ("kernel", "blur_weight", "num_batches_tracked")
    return {k: v if k.endswith(keep) else v + 0.01 * torch.randn(v.shape) for k, v in state.items()}


def official_release(opts: dict) -> dict:
    """A checkpoint in the official layout, written from our modules (our names are the official ones:
    tests/models/components/) with the prefixes pSp.state_dict() gives them."""
    encoder = StyleGANEXEncoder(
        TINY["size"], TINY["style_dim"], TINY["narrow"], skip_max_layer=fusion_levels(opts),
        use_skip_torgb=opts["use_skip_torgb"], use_att=opts["use_att"],
        label_nc=0 if opts["input_nc"] == 3 else opts["input_nc"],
    )
    decoder = StyleGANEXGenerator(**TINY)
    state = {f"encoder.{k}": v for k, v in encoder.state_dict().items()}
    state |= {f"decoder.{k}": v for k, v in decoder.state_dict().items()}
    latent_avg = torch.randn(N_STYLES, TINY["style_dim"])
    file = {"state_dict": _randomised(state), "opts": opts, "latent_avg": latent_avg}
    if opts["adv_lambda"] > 0:
        file["discriminator"] = _randomised(Discriminator(TINY["size"], narrow=TINY["narrow"]).state_dict())
    if opts["editing_w_path"]:  # the coach's torch.load(editing_w_path): (N, n_styles, 512) vectors
        file["editing_w"] = torch.randn(2, N_STYLES, TINY["style_dim"])
    return file


@pytest.mark.parametrize("task", ["inversion", "sr"])
def test_every_official_tensor_is_imported_and_the_config_rebuilt_from_the_opts(tmp_path, task):
    file = official_release(official_opts(task))
    path = tmp_path / f"styleganex_{task}.pt"
    torch.save(file, path)
    assert recognise(str(path)) == "styleganex"
    imported = import_release(str(path))
    assert imported.method == "styleganex"
    got = imported.state_dict()
    want = {**file["state_dict"], "latent_avg": file["latent_avg"]}
    want |= {f"discriminator.{k}": v for k, v in file.get("discriminator", {}).items()}
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)
    assert set(imported.networks) == ({"encoder", "decoder", "discriminator"} if task == "sr" else
                                      {"encoder", "decoder"})
    fusion = sum(k.startswith("encoder.fusion.") and k.endswith("fusion_out.weight") for k in want)
    assert fusion == (4 if task == "sr" else 0)
    assert imported.overrides[0] == f"model=styleganex_{task}"
    expected = ["model.size=64", f"model.encoder.skip_max_layer={fusion}", "model.decoder.style_dim=32",
                "model.decoder.narrow=0.25", "model.encoder.narrow=0.25", "model.crop_face=True",
                "model.feat_ind=0", "model.prior.required=false"]
    if task == "sr":
        expected += ["model.resize_factors=[8]", "model.blind_sr=False", "model.loss_weights.adv=0.1",
                     "model.discriminator.size=64"]
    else:
        expected += ["model.loss_weights.id=0.1", "model.loss_weights.w_norm=0.001"]
    assert set(expected) <= set(imported.overrides)
    # restore / eval work at the official aligned face: E reads 256 px (sr: the 64 px decoder draws 64)
    assert load_model(open_model_file(str(path))).native_size == (256 if task == "inversion" else 64)


def test_a_translation_network_and_task_that_disagree_are_refused():
    # the translation network T in a file that says it is an inversion model, and the other way round
    file = official_release(official_opts("inversion"))
    file["state_dict"]["encoder.input_label_layer.model.0.weight"] = torch.zeros(16, 19, 3, 3)
    with pytest.raises(FacezooError, match=r"holds the translation network T .* but opts input_nc=3"):
        import_release(file)
    file = official_release(official_opts("inversion", input_nc=19))
    with pytest.raises(FacezooError, match="dataset_type=ffhq_encode with input_nc=19; the translation"):
        import_release(file)
    file = official_release(official_opts("mask2face"))
    file["state_dict"] = {k: v for k, v in file["state_dict"].items() if "input_label_layer" not in k}
    with pytest.raises(FacezooError, match=r"lacks the translation network T .* but opts input_nc=19"):
        import_styleganex_release(file)
    with pytest.raises(FacezooError, match="dataset_type=ffhq_seg_to_face with input_nc=3; the translation"):
        import_styleganex_release({**file, "opts": {**file["opts"], "input_nc": 3}})
    with pytest.raises(FacezooError, match="dataset_type=ffhq_cars; expected one of ffhq_encode"):
        import_release(official_release(official_opts("inversion", dataset_type="ffhq_cars")))


@pytest.mark.parametrize("task, label_nc, skips", [("sketch2face", 1, 1), ("mask2face", 19, 2)])
def test_translation_releases_are_imported_with_t_and_label_nc(task, label_nc, skips):
    file = official_release(official_opts(task))
    assert file["state_dict"]["encoder.input_label_layer.model.0.weight"].shape == (16, label_nc, 3, 3)
    imported = import_styleganex_release(file)
    got = imported.state_dict()
    want = {**file["state_dict"], "latent_avg": file["latent_avg"]}
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)
    assert imported.overrides[0] == f"model=styleganex_{task}"
    assert {f"model.encoder.label_nc={label_nc}", f"model.encoder.skip_max_layer={skips}",
            "model.loss_weights.w_norm=0.005"} <= set(imported.overrides)
    assert not any(o.startswith("model.latent_mask") for o in imported.overrides)  # official inference: 8..17
    file["state_dict"]["encoder.input_label_layer.model.10.weight"] = torch.zeros(8, 16, 3, 3)
    with pytest.raises(FacezooError, match=r"encoder: .*model.10.weight \(8, 16, 3, 3\) vs \(16, 16, 3, 3\)"):
        import_styleganex_release(file)


def test_a_wrong_missing_or_unknown_key_is_named():
    file = official_release(official_opts("sr"))
    state = file["state_dict"]
    del state["encoder.styles.3.linear.weight"]
    state["encoder.fusion.0.fusion_out.weight"] = torch.zeros(128, 100, 3, 3)
    state["decoder.extra.weight"] = torch.zeros(1)
    with pytest.raises(FacezooError) as err:
        import_release(file)
    message = str(err.value)
    assert message.startswith("StyleGANEX encoder: the weights do not match") and "\n" not in message
    assert "missing 1 (styles.3.linear.weight)" in message
    assert "fusion.0.fusion_out.weight (128, 100, 3, 3) vs (128, 256, 3, 3)" in message
    del state["encoder.fusion.0.fusion_out.weight"]  # the check goes on to the decoder
    state["encoder.styles.3.linear.weight"] = torch.zeros(32, 32)
    state["encoder.fusion.0.fusion_out.weight"] = torch.zeros(128, 256, 3, 3)
    with pytest.raises(FacezooError, match=r"StyleGANEX decoder: .*unexpected 1 \(extra.weight\)"):
        import_release(file)
    del state["decoder.extra.weight"]
    del state["decoder.convs.2.conv.blur_weight"]
    with pytest.raises(FacezooError, match=r"StyleGANEX decoder: .*missing 1 \(convs.2.conv.blur_weight\)"):
        import_release(file)


def test_the_file_and_its_opts_are_checked():
    def refused(file, match):
        with pytest.raises(FacezooError, match=match):
            import_styleganex_release(file)

    file = official_release(official_opts("inversion"))
    refused({**file, "optimizer": {}}, r"unexpected entries optimizer; a release holds state_dict, opts")
    refused({**file, "latent_avg": torch.zeros(18, 32)}, r"latent_avg is \(18, 32\); expected \(10, 32\)")
    refused({k: v for k, v in file.items() if k != "latent_avg"}, "start_from_latent_avg but the file has no")
    bigger = {**file["opts"], "output_size": 1024}
    refused({**file, "opts": bigger}, "output_size=1024 but the decoder .* 64 px")
    refused({**file, "opts": "--dataset_type=ffhq_encode"}, "'opts' is a str; expected the dict")
    refused({**file, "opts": {"output_size": 64}}, "opts without dataset_type")
    refused({**file, "opts": {**file["opts"], "encoder_type": "BackboneEncoderUsingLastLayerIntoW"}},
            "encoder_type=BackboneEncoderUsingLastLayerIntoW; expected GradualStyleEncoder")
    stray = {**file, "state_dict": {**file["state_dict"], "face_pool.weight": torch.zeros(1)}}
    refused(stray, r"keys outside encoder.\* and decoder.\*: face_pool.weight")
    # trained without start_from_latent_avg: the codes get no offset
    plain = official_release(official_opts("inversion", start_from_latent_avg=False))
    del plain["latent_avg"]
    assert torch.equal(import_styleganex_release(plain).buffers["latent_avg"], torch.zeros(N_STYLES, 32))
    # an option added to the code after a file was saved takes its default (no use_att: 0)
    older = official_release(official_opts("sr"))
    del older["opts"]["use_att"], older["opts"]["feat_ind"]
    assert "model.encoder.use_att=0" in import_styleganex_release(older).overrides


def test_a_file_whose_opts_need_pickle_is_refused_saying_what_to_do(tmp_path):
    from facezoo.checkpoints import open_model_file

    file = official_release(official_opts("inversion"))
    file["opts"] = argparse.Namespace(**file["opts"])
    path = tmp_path / "styleganex_inversion.pt"
    torch.save(file, path)
    for load in (import_release, open_model_file):
        with pytest.raises(FacezooError) as err:
            load(str(path))
        message = str(err.value)
        assert "opts are an argparse.Namespace" in message and "ckpt['opts'] = vars(ckpt['opts'])" in message
        assert str(path) in message and "\n" not in message


def test_full_size_releases_have_the_reference_tensor_counts():
    """Fact sheet §4: inversion 802 tensors (300.7M), SR with skip 4 818 (324.3M), D 64 (29.0M); built and
    imported on the meta device."""
    for task, tensors, millions in (("inversion", 802, 300.7), ("sr", 818, 324.3)):
        opts = {**official_opts(task), "output_size": 1024, "n_styles": 18}
        with torch.device("meta"):
            encoder = StyleGANEXEncoder(1024, skip_max_layer=fusion_levels(opts))
            decoder, d = StyleGANEXGenerator(1024), Discriminator(1024)
            latent_avg = torch.zeros(18, 512)
        state = {f"encoder.{k}": v for k, v in encoder.state_dict().items()}
        state |= {f"decoder.{k}": v for k, v in decoder.state_dict().items()}
        file = {"state_dict": state, "opts": opts, "latent_avg": latent_avg}
        if task == "sr":
            file["discriminator"] = d.state_dict()
        imported = import_styleganex_release(file)
        pSp = {**imported.networks["encoder"], **imported.networks["decoder"]}
        assert len(pSp) == tensors and round(sum(v.numel() for v in pSp.values()) / 1e6, 1) == millions
        assert {"model.decoder.narrow=1.0", "model.encoder.narrow=1.0"} <= set(imported.overrides)
    d_state = imported.networks["discriminator"]
    assert len(d_state) == 64 and round(sum(v.numel() for v in d_state.values()) / 1e6, 1) == 29.0
    assert "model.discriminator.size=1024" in imported.overrides


def test_rosinality_stylegan2_loads_as_the_decoder_prior(tmp_path):
    g = Generator(**TINY)
    path = tmp_path / "stylegan2-ffhq-config-f.pt"
    torch.save({"g_ema": _randomised(g.state_dict()), "latent_avg": torch.randn(32)}, path)
    assert recognise(str(path)) == "stylegan2"  # on its own, the file is a model=stylegan2 release
    decoder = StyleGANEXGenerator(**TINY)
    blur = {k: v.clone() for k, v in decoder.state_dict().items() if k.endswith("blur_weight")}
    latent_avg, d = load_styleganex_prior(str(path), decoder)
    saved = torch.load(path, weights_only=True)
    assert all(torch.equal(decoder.state_dict()[k], v) for k, v in saved["g_ema"].items())
    assert len(blur) == 6 and all(torch.equal(decoder.state_dict()[k], v) for k, v in blur.items())
    assert d is None and latent_avg.shape == (N_STYLES, 32)
    assert torch.equal(latent_avg[3], saved["latent_avg"])
    assert load_styleganex_prior({"g_ema": g.state_dict()}, decoder) == (None, None)  # coach: mean_latent
    with pytest.raises(FacezooError, match="a 128 px StyleGAN2 generator cannot be the decoder of a 64 px"):
        load_styleganex_prior({"g_ema": Generator(128, 32, 2, narrow=0.25).state_dict()}, decoder)
    with pytest.raises(FacezooError, match=r"latent_avg is \(7, 32\)"):
        load_styleganex_prior({"g_ema": g.state_dict(), "latent_avg": torch.zeros(7, 32)}, decoder)


MODULE = importlib.util.find_spec("facezoo.models.styleganex")


@pytest.mark.skipif(MODULE is None, reason="the StyleGANEX module (src/models/styleganex.py) has not landed")
@pytest.mark.parametrize("task", ["inversion", "sr", "sketch2face", "mask2face"])
def test_an_imported_release_builds_the_module_and_loads_strictly(tmp_path, task):
    from facezoo.checkpoints import initialise_from, load_model
    from facezoo.utils.compose import compose_config
    from facezoo.utils.instantiate import instantiate
    from facezoo.weights.cli import main as import_main

    file = official_release(official_opts(task))
    release, out = tmp_path / f"styleganex_{task}.pt", tmp_path / f"{task}.ckpt"
    torch.save(file, release)
    imported = import_release(str(release))
    cfg = compose_config(overrides=imported.overrides, output_dir=tmp_path / "built")
    model = instantiate(cfg.model, "model")  # the module the overrides build, loaded strictly
    for name, state in imported.networks.items():
        getattr(model, name).load_state_dict(state, strict=True)
    model.latent_avg.copy_(imported.buffers["latent_avg"])
    assert model.task == task and model.scale == 0.25  # a 64 px decoder: outputs are 1/4 of E's input

    assert import_main([str(release), "--out", str(out)]) == 0
    lq = torch.rand(1, 3, 64, 64) * 2 - 1  # a sketch's picture (its luminance) for sketch2face
    if task == "mask2face":  # a parsing map's picture: labels 0..18 as gray levels
        lq = torch.randint(19, (1, 1, 64, 64)).expand(-1, 3, -1, -1) / 127.5 - 1
    expected = model.restore(lq)["image"]
    for loaded in (load_model(out), load_model(release)):  # facezoo-import's checkpoint, the release itself
        state = loaded.state_dict()
        assert all(torch.equal(state[k], v) for k, v in file["state_dict"].items())
        assert torch.equal(loaded.latent_avg, file["latent_avg"])
        torch.testing.assert_close(loaded.restore(lq)["image"], expected, rtol=0, atol=0)
    fresh = instantiate(cfg.model, "model")  # a new run from the release: latent_avg comes with it
    assert "latent_avg" in initialise_from(fresh, out) and torch.equal(fresh.latent_avg, file["latent_avg"])


@pytest.mark.parametrize("task", ["edit", "toonify"])
def test_video_releases_import_with_their_editing_vector(tmp_path, task):
    from facezoo.weights.cli import main as import_main

    file = official_release(official_opts(task, skip_max_layer=4))  # 7 levels need a 512 px decoder
    release, out = tmp_path / f"styleganex_{task}.pt", tmp_path / f"{task}.ckpt"
    torch.save(file, release)
    imported = import_release(str(release))
    assert imported.overrides[0] == f"model=styleganex_{task}"
    assert {"model.encoder.skip_max_layer=4", f"model.encoder.use_att={int(task == 'edit')}",
            "++model.loss_weights.tmp=30.0", "model.loss_weights.adv=0.1",
            f"model.{'editing' if task == 'edit' else 'toonify'}.required=false"} <= set(imported.overrides)
    assert import_main([str(release), "--out", str(out)]) == 0
    loaded = load_model(out)
    state = loaded.state_dict()
    assert loaded.task == task and all(torch.equal(state[k], v) for k, v in file["state_dict"].items())
    if task == "edit":  # v: the first of the file's vectors (video_editing.py: editing_w[0:1])
        assert torch.equal(loaded.editing_w, file["editing_w"][0])
        assert torch.equal(loaded.editing_vector(2.0), 2 * file["editing_w"][:1])
        with pytest.raises(FacezooError, match=r"holds editing_w \(N, 10, 32\); got \(3, 32\)"):
            import_release({**file, "editing_w": torch.zeros(3, 32)})
    else:  # the file's decoder is G' already; an editing vector does not belong there
        assert not hasattr(loaded, "editing_w")
        with pytest.raises(FacezooError, match="an editing_w in a toonify file"):
            import_release({**file, "editing_w": torch.zeros(2, N_STYLES, 32)})
    lq = torch.rand(1, 3, 64, 64) * 2 - 1
    torch.testing.assert_close(load_model(release).restore(lq)["image"], loaded.restore(lq)["image"])
