"""The wheel: the package `facezoo` (code from src/, configs from conf/ as package data), nothing named `src`,
and an installed copy trains from a folder outside the checkout."""

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from helpers import QUIET, ROOT


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """`pip wheel .` of a copy of the checkout's sources (the build writes into its source folder)."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"
    for name in ("src", "conf"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp / "dist")],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    (path,) = (tmp / "dist").glob("facezoo-*.whl")
    return path


def test_wheel_holds_every_module_and_config(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {n.split("/")[0] for n in names} == {"facezoo", wheel.name.split("-py3")[0] + ".dist-info"}
    modules = {"facezoo/" + p.relative_to(ROOT / "src").as_posix() for p in (ROOT / "src").rglob("*.py")}
    conf = ROOT / "conf"
    configs = {"facezoo/conf/" + p.relative_to(conf).as_posix() for p in conf.rglob("*.yaml")}
    assert modules - names == set(), "sub-packages missing from pyproject's `packages`"
    assert configs - names == set()
    assert "facezoo/conf/train.yaml" in names and len(configs) > 40


def test_installed_wheel_trains_outside_the_checkout(wheel, tmp_path):
    site = tmp_path / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site), "HYDRA_FULL_ERROR": "0"}
    env.pop("FACEZOO_PRETRAINED", None)
    where = subprocess.run(
        [sys.executable, "-c", "import facezoo, facezoo.weights.resolver as r; "
         "print(facezoo.__file__); print(r.pretrained_dir())"],
        cwd=work, env=env, capture_output=True, text=True, timeout=120,
    )
    assert where.returncode == 0, where.stderr[-2000:]
    package_file, pretrained = where.stdout.split()
    assert Path(package_file).is_relative_to(site)  # the installed copy, not the checkout
    assert Path(pretrained) == work / "pretrained"  # the working directory, never the package's location
    run = subprocess.run(
        [str(site / "bin" / "facezoo-train"), "model=baseline", "datamodule=synthetic_restore", "debug=tiny",
         *QUIET, "datamodule.synthetic.size=64", "datamodule.synthetic.train=8", "datamodule.synthetic.val=4",
         "datamodule.synthetic.test=4", "hydra.run.dir=run"],
        cwd=work, env=env, capture_output=True, text=True, timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    metrics = json.loads((work / "run" / "metrics.json").read_text())
    assert "test/psnr" in metrics
    assert (work / "data").is_dir()  # data are rendered under the working directory too
