"""The facezoo checkpoint format and `load_model`:

- writes are atomic, reads are `weights_only=True` explicitly (resume included, even when torch is told
  otherwise by TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD);
- a stored config builds only the zoo's own classes (a crafted `_target_` is refused, nothing is written);
- `load_model` reads any facezoo checkpoint or official release: it restores as the fully built model does,
  while the networks restore() does not use are never materialised;
- an imported release is a checkpoint of what the release holds (about the size of the release file), and a
  new run starts from it with `init_from`.
Model configs are composed as the CLI does (`model=X debug=tiny`), with random weights on purpose.
"""

from pathlib import Path

import hydra
import pytest
import pytorch_lightning as pl
import torch
from omegaconf import open_dict

from facezoo.checkpoints import (
    CONFIG_KEY,
    FORMAT_KEY,
    FacezooCheckpointIO,
    build_model,
    config_entries,
    initialise_from,
    load_model,
    save_checkpoint,
)
from facezoo.eval import evaluate
from facezoo.models.components.gpen import GPENGenerator
from facezoo.train import train
from facezoo.utils.compose import compose_config
from facezoo.utils.errors import ConfigError, FacezooError
from facezoo.weights.cli import main as import_main
from helpers import TINY, WritesOnUnpickle, hostile_target, materialised_parameters

TINY_GPEN = dict(size=64, style_dim=32, n_mlp=2, narrow=0.0625)  # = tiny_gpen.yaml
GPEN = ["model=gpen", "datamodule=synthetic_restore"]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _config(tmp_path, *overrides) -> dict:
    cfg = compose_config(overrides=[*TINY, *overrides], output_dir=tmp_path / "run")
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


def _release(tmp_path) -> Path:
    """A tiny GPEN-BFR release: a bare FullGenerator state_dict (official names = ours)."""
    path = tmp_path / "GPEN-BFR-64.pth"
    torch.save(GPENGenerator(**TINY_GPEN).state_dict(), path)
    return path


def _full_model(path: Path, cfg) -> torch.nn.Module:
    """The old way: every network built, the whole file read, every weight loaded."""
    model = build_model(cfg.model)
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True)["state_dict"])
    return model.eval()



# --- writing and reading ------------------------------------------------------------------------------------


def test_a_failed_write_leaves_the_previous_checkpoint(tmp_path):
    path = tmp_path / "last.ckpt"
    save_checkpoint({"state_dict": {"w": torch.ones(2)}}, path)
    with pytest.raises(Exception):  # noqa: B017 (pickling a lambda fails mid-write)
        save_checkpoint({"state_dict": {"w": torch.zeros(2)}, "bad": lambda: 0}, path)
    assert torch.equal(torch.load(path, weights_only=True)["state_dict"]["w"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no temporary file left


def test_checkpoints_are_read_weights_only_whatever_the_environment(tmp_path, monkeypatch):
    marker, evil = tmp_path / "pwned.txt", tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "payload": WritesOnUnpickle(marker)}, evil)
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    torch.load(evil)  # what torch does by itself under this variable: the payload runs
    assert marker.read_text() == "pwned"
    marker.unlink()
    with pytest.raises(FacezooError, match="evil.ckpt: holds Python objects besides tensors"):
        FacezooCheckpointIO().load_checkpoint(evil, weights_only=False)
    assert not marker.exists()


def test_resume_refuses_a_malicious_checkpoint(tmp_path, data_dir, monkeypatch):
    marker, evil = tmp_path / "pwned.txt", tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "payload": WritesOnUnpickle(marker)}, evil)
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    cfg = compose_config(overrides=[*TINY, f"ckpt_path={evil}", "test=false"], output_dir=tmp_path / "run",
                         data_dir=data_dir)
    with pytest.raises(FacezooError, match="refused by torch.load\\(weights_only=True\\)"):
        train(cfg)
    assert not marker.exists()


# --- a stored config is data, never code --------------------------------------------------------------------


def test_a_crafted_config_target_is_refused_before_anything_is_built(tmp_path):
    marker = tmp_path / "pwned.txt"
    hydra.utils.instantiate(hostile_target(marker))  # the threat is real: instantiating it writes the file
    assert marker.exists()
    marker.unlink()
    config = _config(tmp_path, *GPEN)
    with open_dict(config):
        config.model.generator = hostile_target(marker)  # nested, with `_args_`
    crafted = tmp_path / "crafted.ckpt"
    torch.save({"state_dict": {}, **config_entries(config)}, crafted)
    with pytest.raises(FacezooError) as err:
        load_model(crafted)
    assert "model.generator: refused to build _target_ 'pathlib.Path.write_text'" in str(err.value)
    ecfg = compose_config("eval", [f"ckpt_path={crafted}"], output_dir=tmp_path / "eval")
    with pytest.raises(FacezooError, match="refused to build _target_ 'pathlib.Path.write_text'"):
        evaluate(ecfg)
    assert not marker.exists()


def test_a_crafted_data_config_is_refused_by_eval(tmp_path):
    marker = tmp_path / "pwned.txt"
    config = _config(tmp_path, *GPEN)
    with open_dict(config):
        config.datamodule.degradation = hostile_target(marker)
    crafted = tmp_path / "crafted.ckpt"
    torch.save({"state_dict": {}, **config_entries(config)}, crafted)
    ecfg = compose_config("eval", [f"ckpt_path={crafted}"], output_dir=tmp_path / "eval")
    with pytest.raises(FacezooError, match="datamodule.degradation: refused to build _target_"):
        evaluate(ecfg)
    assert not marker.exists()


# --- load_model ---------------------------------------------------------------------------------------------



def test_an_imported_release_loads_lean_and_as_the_release_itself(tmp_path):
    release = _release(tmp_path)
    out = tmp_path / "gpen.ckpt"
    assert import_main([str(release), "--out", str(out)]) == 0
    ckpt = torch.load(out, weights_only=True)
    assert {k.split(".")[0] for k in ckpt["state_dict"]} == {"generator"}  # no random D, no EMA copy
    assert ckpt[FORMAT_KEY] == 1 and ckpt["facezoo_imported"]["method"] == "gpen"
    assert out.stat().st_size <= 1.1 * release.stat().st_size

    cfg = _config(tmp_path, *GPEN)
    full = build_model(cfg.model).eval()  # the release in a fully built module
    weights = torch.load(release, weights_only=True)
    full.generator.load_state_dict(weights)
    full.generator_ema.module.load_state_dict(weights)
    lq = torch.rand(2, 3, 48, 48) * 2 - 1
    expected = full.restore(lq)["image"]
    for source in (out, release):  # the imported checkpoint, and the release file itself
        model = load_model(source)
        torch.testing.assert_close(model.restore(lq)["image"], expected, rtol=0, atol=0)
        assert materialised_parameters(model) == sum(p.numel() for p in model.generator_ema.parameters())
        assert all(p.is_meta for p in model.discriminator.parameters())
        assert all(p.is_meta for p in model.generator.parameters())


def test_eval_reads_a_release_file_given_its_data(tmp_path, data_dir):
    release = _release(tmp_path)
    bare = compose_config("eval", [f"ckpt_path={release}"], output_dir=tmp_path / "bare", data_dir=data_dir)
    with pytest.raises(FacezooError, match=r"GPEN-BFR-64.pth: no data config inside .* pass datamodule=NAME"):
        evaluate(bare)
    data = ["datamodule=synthetic_restore", "datamodule.image_size=64", "datamodule.synthetic.size=64",
            "trainer.limit_test_batches=1"]
    ecfg = compose_config("eval", [f"ckpt_path={release}", *data], output_dir=tmp_path / "eval",
                          data_dir=data_dir)
    assert "test/psnr" in evaluate(ecfg)


def test_files_load_model_cannot_read_are_named(tmp_path):
    torch.save({"fc.weight": torch.zeros(2, 2)}, tmp_path / "other.pth")
    with pytest.raises(FacezooError, match=r"other.pth: no known generator; facezoo reads facezoo "
                                           r"checkpoints and GPEN generators \(GPEN-BFR-512"):
        load_model(tmp_path / "other.pth")
    with pytest.raises(FacezooError, match="nowhere.ckpt: file not found"):
        load_model(tmp_path / "nowhere.ckpt")
    torch.save({"state_dict": {}, CONFIG_KEY: {}, FORMAT_KEY: 99}, tmp_path / "future.ckpt")
    with pytest.raises(FacezooError, match="format 99; this facezoo reads 1"):
        load_model(tmp_path / "future.ckpt")


def test_a_release_named_by_its_file_name_is_found_in_the_pretrained_folder(tmp_path, monkeypatch):
    pretrained, elsewhere = tmp_path / "pretrained", tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.setenv("FACEZOO_PRETRAINED", str(pretrained))
    monkeypatch.chdir(elsewhere)
    fetch = r"GPEN-BFR-256.pth .*not found.*facezoo-weights download gpen_bfr_256"
    with pytest.raises(FacezooError, match=fetch):
        load_model("GPEN-BFR-256.pth")
    pretrained.mkdir()
    _release(tmp_path).rename(pretrained / "GPEN-BFR-256.pth")  # a tiny stand-in under the release's name
    for name in ("GPEN-BFR-256.pth", "gpen_bfr_256"):
        assert load_model(name).hparams.name == "gpen"


# --- init_from: a new run from a file's networks -----------------------------------------------------------


def test_a_run_starts_from_an_imported_release(tmp_path, data_dir):
    release = _release(tmp_path)
    out = tmp_path / "gpen.ckpt"
    assert import_main([str(release), "--out", str(out)]) == 0
    weights = torch.load(release, weights_only=True)
    seen = {}

    class AtStart(pl.Callback):
        def on_train_start(self, trainer, module):
            seen["generator"] = {k: v.clone() for k, v in module.generator.state_dict().items()}
            seen["ema"] = {k: v.clone() for k, v in module.generator_ema.module.state_dict().items()}
            seen["loaded"] = module.initialised_from

        def on_train_end(self, trainer, module):
            seen["batches"] = int(module.batch_counter)

    cfg = compose_config(overrides=[*TINY, *GPEN, f"init_from={out}", "trainer.limit_train_batches=2",
                                    "test=false"], output_dir=tmp_path / "run", data_dir=data_dir)
    train(cfg, callbacks=[AtStart()])
    for name in ("generator", "ema"):  # the file's generator, and its EMA a copy of it
        assert all(torch.equal(seen[name][k], v) for k, v in weights.items()), name
    assert seen["loaded"] == str(out) and seen["batches"] == 2
    with pytest.raises(ConfigError, match="ckpt_path resumes a run, init_from starts a new one"):
        train(compose_config(overrides=[*TINY, *GPEN, f"init_from={out}", f"ckpt_path={out}"],
                             output_dir=tmp_path / "both", data_dir=data_dir))


def test_init_from_checks_the_networks_against_the_run(tmp_path):
    release = _release(tmp_path)
    cfg = _config(tmp_path, *GPEN)
    model = build_model(cfg.model)
    d_before = {k: v.clone() for k, v in model.discriminator.state_dict().items()}
    assert sorted(initialise_from(model, release)) == ["generator", "generator_ema"]
    assert all(torch.equal(model.discriminator.state_dict()[k], v) for k, v in d_before.items())  # fresh
    wide = build_model(_config(tmp_path, *GPEN, "model.generator.narrow=0.125").model)
    with pytest.raises(FacezooError, match=r"init_from=.*64.pth: generator: the weights do not match"):
        initialise_from(wide, release)
    baseline = build_model(_config(tmp_path, "model=baseline", "datamodule=synthetic_restore").model)
    with pytest.raises(FacezooError, match="generator: the weights do not match"):
        initialise_from(baseline, release)  # a GPEN generator is not the baseline's
    ckpt = tmp_path / "gpen.ckpt"
    save_checkpoint({"state_dict": model.state_dict(), **config_entries(cfg)}, ckpt)
    with pytest.raises(FacezooError, match="a facezoo.models.gpen.GPEN checkpoint, but the run builds "
                                           "facezoo.models.baseline.Pix2PixBaseline"):
        initialise_from(baseline, ckpt)
    retouch = build_model(_config(tmp_path, "model=retouchformer", "datamodule=synthetic_retouch").model)
    with pytest.raises(FacezooError, match="holds none of the model's networks"):
        initialise_from(retouch, release)
