"""The pretrained-weights resolver (src/weights/resolver.py): the registry, the search order, clear errors,
the loud warning for random weights, the listing CLI. (Reading the files found:
tests/weights/test_state_dict.py.)"""

import json
import logging
import os

import pytest

from facezoo.utils.errors import WeightsNotFoundError
from facezoo.weights.resolver import KNOWN_WEIGHTS, main, resolve, warn_random_init
from helpers import save_weights

VGG19 = KNOWN_WEIGHTS["vgg19"].filename


@pytest.fixture
def pretrained(tmp_path, monkeypatch):
    """An empty project pretrained folder (FACEZOO_PRETRAINED)."""
    folder = tmp_path / "pretrained"
    folder.mkdir()
    monkeypatch.setenv("FACEZOO_PRETRAINED", str(folder))
    return folder


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    home = tmp_path / "torch_home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    return home


def test_registry_has_the_expected_files():
    assert KNOWN_WEIGHTS["alexnet"].filename == "alexnet-owt-7be5be79.pth"
    assert KNOWN_WEIGHTS["vgg16"].filename == "vgg16-397923af.pth"
    assert KNOWN_WEIGHTS["stylegan2_512_gfpgan"].filename == "StyleGAN2_512_Cmul1_FFHQ_B12G4_scratch_800k.pth"
    assert all(spec.key == key and spec.needed_by for key, spec in KNOWN_WEIGHTS.items())


def test_explicit_path_wins(tmp_path, pretrained):
    save_weights(pretrained / VGG19)
    explicit = save_weights(tmp_path / "elsewhere" / "my_vgg.pth")
    assert resolve("vgg19", explicit=explicit) == explicit
    assert resolve("vgg19", explicit=str(explicit)) == explicit


def test_explicit_folder_holds_the_file(tmp_path, pretrained):
    path = save_weights(tmp_path / "dir" / VGG19)
    assert resolve("vgg19", explicit=tmp_path / "dir") == path


def test_pretrained_folder_found(pretrained, torch_home):
    path = save_weights(pretrained / VGG19)
    save_weights(torch_home / "hub" / "checkpoints" / VGG19)
    assert resolve("vgg19") == path  # the project folder comes before the hub cache
    assert resolve(VGG19) == path  # by file name too


def test_torch_hub_cache_found(pretrained, torch_home):
    path = save_weights(torch_home / "hub" / "checkpoints" / VGG19)
    assert resolve("vgg19") == path


def test_torch_home_checkpoints_found(pretrained, torch_home):
    path = save_weights(torch_home / "checkpoints" / VGG19)
    assert resolve("vgg19") == path


def test_missing_required_raises_with_file_name(pretrained, torch_home):
    with pytest.raises(WeightsNotFoundError) as info:
        resolve("vgg19")
    message = str(info.value)
    assert VGG19 in message
    assert "perceptual" in message  # what needs it
    assert str(pretrained) in message and str(torch_home) in message  # where it looked
    assert "\n" not in message


def test_missing_not_required_is_none(pretrained):
    assert resolve("vgg19", required=False) is None
    assert resolve("some_unknown_file.pth", required=False) is None


def test_explicit_missing_path_is_an_error(tmp_path, pretrained):
    save_weights(pretrained / VGG19)  # even though the default location has it
    missing = tmp_path / "nope" / "vgg.pth"
    for required in (True, False):
        with pytest.raises(WeightsNotFoundError, match="nope"):
            resolve("vgg19", explicit=missing, required=required)


def test_warn_random_init_is_loud(caplog):
    with caplog.at_level(logging.WARNING, logger="facezoo"):
        warn_random_init("VGG19 perceptual loss")
    records = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any("VGG19 perceptual loss" in r.getMessage() for r in records)
    assert "RANDOMLY INITIALISED" in caplog.text


def test_cli_lists_every_file(pretrained, capsys):
    found = save_weights(pretrained / KNOWN_WEIGHTS["alexnet"].filename)
    assert main([]) == 0
    out = capsys.readouterr().out
    for spec in KNOWN_WEIGHTS.values():
        assert spec.filename in out
    assert "missing" in out
    assert f"found: {found}" in out


def test_cli_json(pretrained, capsys):
    save_weights(pretrained / KNOWN_WEIGHTS["alexnet"].filename)
    main(["--json"])
    data = json.loads(capsys.readouterr().out)
    rows = {row["key"]: row for row in data["weights"]}
    assert set(rows) == set(KNOWN_WEIGHTS)
    assert rows["alexnet"]["found"] == os.fspath(pretrained / "alexnet-owt-7be5be79.pth")
    assert rows["vgg19"]["found"] is None
