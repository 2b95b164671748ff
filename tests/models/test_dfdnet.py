"""DFDNet's training module (src/models/dfdnet.py): the dictionaries built from the train split when a run
starts without them, the refusal without any, the part boxes in evaluation and inference, a tiny overfit,
the ablation switches and the recipes. (The network: tests/models/components/test_dfdnet.py; the
dictionaries: test_dfdnet_dictionary.py; the contract every method keeps: tests/test_zoo_contract.py.)"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from facezoo.models.components.dfdnet_dictionary import load_dictionary
from facezoo.models.components.dfdnet_parts import PARTS, SCALES, boxes_from_landmarks, template_boxes
from facezoo.utils.compose import compose_config
from facezoo.utils.errors import ConfigError, WeightsNotFoundError
from facezoo.utils.instantiate import instantiate
from helpers import TINY, first_batch, fit_repeated

DFD = ["model=dfdnet", "datamodule=synthetic_restore", "datamodule/degradation=dfdnet"]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _cfg(tmp_path, data_dir, *overrides):
    return compose_config(overrides=[*TINY, *DFD, *overrides], output_dir=tmp_path, data_dir=data_dir)


def _model_and_batch(tmp_path, data_dir, *overrides):
    """The tiny model (4 random atoms per part and scale, unless `overrides` name a dictionary file)."""
    cfg = _cfg(tmp_path, data_dir, *overrides)
    return instantiate(cfg.model, "model"), first_batch(instantiate(cfg.datamodule, "datamodule"))


def test_a_missing_dictionary_is_built_from_the_train_split_then_reused(tmp_path, data_dir):
    path = tmp_path / "atoms.safetensors"
    model, batch = _model_and_batch(tmp_path, data_dir, f"model.dictionary={path}")
    assert model.generator.dictionary.size == 0
    fit_repeated(model, batch, 1)
    built = load_dictionary(path, 64)
    assert built.metadata["faces"] == "24" and built.metadata["boxes"] == "data"
    assert built.width == model.generator.width == 0.125  # the generator's (narrow, tiny) VGG
    for part in PARTS:
        for scale in SCALES:
            atoms = model.generator.dictionary.atoms(part, scale)
            torch.testing.assert_close(atoms, built.atoms[part][scale])
    stamp = path.stat().st_mtime_ns
    again, _ = _model_and_batch(tmp_path, data_dir, f"model.dictionary={path}")
    fit_repeated(again, batch, 1)
    assert path.stat().st_mtime_ns == stamp and again.generator.dictionary.size == 4  # read, not rebuilt


def test_a_run_without_dictionaries_is_refused_with_how_to_build_them(tmp_path, data_dir):
    none = ["model.dictionary=null", "model.build_dictionary=null"]
    model, batch = _model_and_batch(tmp_path, data_dir, *none)
    with pytest.raises(ConfigError, match="model.dictionary: .*facezoo-dfdnet-dictionary data_dir="):
        fit_repeated(model, batch, 1)


def test_evaluation_takes_the_batch_boxes_and_restore_the_canonical_ones(tmp_path, data_dir):
    model, batch = _model_and_batch(tmp_path, data_dir)
    lq, boxes = batch["lq"][:2], batch["boxes"][:2]
    assert torch.equal(model.evaluation_inputs(batch)["boxes"], batch["boxes"])
    generator = model.eval().generator  # eval: spectral norm's power iteration stays put
    with torch.no_grad():
        torch.testing.assert_close(model.restore(lq, boxes=boxes)["image"], generator(lq, boxes))
        torch.testing.assert_close(model.restore(lq)["image"], generator(lq, template_boxes(2, 64)))


def test_facezoo_restore_gives_dfdnet_the_part_boxes_of_each_faces_landmarks(tmp_path, data_dir):
    from skimage import data

    from facezoo.faces.align import apply_affine
    from facezoo.faces.detector import DlibDetector
    from facezoo.faces.pipeline import FaceRestorer

    model, _ = _model_and_batch(tmp_path, data_dir)
    photo = data.astronaut()
    landmarks = np.stack([face.landmarks for face in DlibDetector().detect(photo)])
    seen, predict = [], model.predict
    model.predict = lambda lq, **inputs: seen.append(inputs) or predict(lq, **inputs)
    restorer = FaceRestorer(model, batch_size=2)
    restorer.restore([photo], [landmarks])
    points = torch.as_tensor(landmarks, dtype=torch.float32)
    expected = boxes_from_landmarks(apply_affine(restorer.matrices(points), points), 64)
    torch.testing.assert_close(seen[0]["boxes"], expected)
    assert not torch.equal(expected, template_boxes(1, 64))  # her own eyes, nose and mouth


def test_a_tiny_dfdnet_overfits_a_batch(tmp_path, data_dir):
    model, batch = _model_and_batch(tmp_path, data_dir, "model.optimizers.generator.lr=2e-3",
                                    "model.loss_weights.perceptual=1", "model.loss_weights.adversarial=0")
    batch = {key: value[:2] for key, value in batch.items() if key in ("lq", "hq", "boxes")}
    fit_repeated(model, batch, 1)  # builds and loads the dictionary
    def error() -> float:
        return F.mse_loss(model.restore(batch["lq"], boxes=batch["boxes"])["image"], batch["hq"]).item()

    before = error()
    fit_repeated(model, batch, 16)
    assert error() < 0.5 * before


@pytest.mark.parametrize("ablation", [
    "model.generator.use_dictionary=false", "model.generator.use_cadain=false",
    "model.generator.use_confidence=false", "model.generator.scales=[0]",
])
def test_each_ablation_trains(tmp_path, data_dir, ablation):
    model, batch = _model_and_batch(tmp_path, data_dir, ablation)
    before = [p.detach().clone() for p in model.generator.parameters() if p.requires_grad]
    fit_repeated(model, batch, 1)
    after = [p for p in model.generator.parameters() if p.requires_grad]
    assert any(not torch.equal(a, b) for a, b in zip(after, before, strict=True))
    assert torch.isfinite(model.restore(batch["lq"][:1], boxes=batch["boxes"][:1])["image"]).all()


def test_the_recipes_compose_and_the_paper_one_refuses_without_vgg19(tmp_path, monkeypatch):
    cfg = compose_config(overrides=["experiment=dfdnet_synthetic"], output_dir=tmp_path)
    assert cfg.model.size == cfg.datamodule.image_size == 64 and cfg.model.build_dictionary.k == 64
    monkeypatch.setenv("FACEZOO_PRETRAINED", str(tmp_path / "empty"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    paper = compose_config(overrides=["experiment=dfdnet_ffhq512", "model.dictionary=x"], output_dir=tmp_path)
    assert paper.model.size == paper.datamodule.image_size == 512
    with pytest.raises(WeightsNotFoundError, match="vgg19-dcbb9e9d.pth"):
        instantiate(paper.model, "model")


@pytest.mark.slow
def test_the_cpu_recipe_builds_its_dictionaries_trains_and_beats_pix2pixs_ssim(tmp_path, data_dir):
    """experiment=dfdnet_synthetic as `make train EXPERIMENT=dfdnet_synthetic` runs it (~10 min on 2 cores):
    measured 22.50 dB / SSIM 0.548 against Pix2Pix's 22.44 / 0.463 on the same data (README)."""
    from facezoo.train import train
    from helpers import QUIET

    cfg = compose_config(overrides=["experiment=dfdnet_synthetic", *QUIET], output_dir=tmp_path,
                         data_dir=data_dir)
    metrics = train(cfg)
    assert load_dictionary(cfg.model.dictionary, 64).metadata["faces"] == "200"
    assert metrics["test/psnr"] > 21 and metrics["test/ssim"] > 0.5, metrics


def test_ddp_leaves_the_fixed_dictionaries_alone_and_syncs_the_other_buffers(tmp_path, data_dir):
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    model, _ = _model_and_batch(tmp_path, data_dir)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    try:
        synced = {id(b) for b in DistributedDataParallel(model).modules_buffers}
    finally:
        dist.destroy_process_group()
    names = {name: id(b) for name, b in model.named_buffers()}
    dictionaries = [n for n in names if ".dictionary." in n]
    assert len(dictionaries) == len(PARTS) * len(SCALES)
    assert not synced & {names[n] for n in dictionaries}
    assert names["generator.upsample0.conv1.1.weight_u"] in synced  # spectral norm's state stays in step
