"""Multirun report: a fake Hydra sweep into CSV / markdown / PNG, failed jobs, ablations, CLI errors."""

import csv
import json

import pytest
from omegaconf import OmegaConf
from PIL import Image

from facezoo.report import FAILED, LPIPS_MISSING, _use_log_x, collect, main, markdown_table, write_report
from helpers import run_module

# job folder -> gamma; folders out of gamma order so that sorting is visible
GAMMAS = {"0": 1.0, "1": 0.01, "2": 0.2, "3": 0.1}


def _job(sweep, name, overrides, config, metrics=None):
    job = sweep / name
    (job / ".hydra").mkdir(parents=True)
    OmegaConf.save(OmegaConf.create(overrides), job / ".hydra" / "overrides.yaml")
    OmegaConf.save(OmegaConf.create(config), job / "config.yaml")
    if metrics is not None:
        (job / "metrics.json").write_text(json.dumps(metrics))
    return job


@pytest.fixture
def gamma_sweep(tmp_path):
    """Four finished γ jobs and one failed job (folder 4, γ 0.5)."""
    sweep = tmp_path / "multirun"
    for name, gamma in [*GAMMAS.items(), ("4", 0.5)]:
        overrides = [f"split.gamma={gamma}", "trainer.max_epochs=2", f"hydra.job.name=job{name}"]
        config = {"split": {"gamma": gamma}, "model": {"name": "baseline", "prior": False}, "seed": 1}
        metrics = {
            "test/psnr": 20 + 10 * gamma,
            "test/ssim": 0.5 + 0.4 * gamma,
            "test/psnr_input": 18.0,
            "test/ssim_input": 0.45,
            "val/psnr": 99.0,  # not a test metric
        }
        _job(sweep, name, overrides, config, None if name == "4" else metrics)
    (sweep / "multirun.yaml").write_text("hydra: {}\n")  # Hydra's top-level file is not a job
    return sweep


def test_collect_sorts_by_the_varying_override(gamma_sweep):
    rows = collect(gamma_sweep)
    assert [r["split.gamma"] for r in rows] == [0.01, 0.1, 0.2, 0.5, 1.0]
    assert [r["job"] for r in rows] == ["1", "3", "2", "4", "0"]
    assert rows[0] == {
        "job": "1",
        "status": "ok",
        "split.gamma": 0.01,
        "test/psnr": pytest.approx(20.1),
        "test/psnr_input": 18.0,
        "test/ssim": pytest.approx(0.504),
        "test/ssim_input": 0.45,
    }
    assert rows[3] == {"job": "4", "status": FAILED, "split.gamma": 0.5}  # reported, not dropped


def test_collect_by_reads_the_config(gamma_sweep):
    rows = collect(gamma_sweep, by=["model.prior", "split.gamma", "no.such.key"])
    assert [(r["model.prior"], r["split.gamma"], r["no.such.key"]) for r in rows][:2] == [
        (False, 0.01, None),
        (False, 0.1, None),
    ]


def test_write_report_csv_markdown_png(gamma_sweep, tmp_path):
    paths = write_report(collect(gamma_sweep), tmp_path / "out", x="split.gamma", title="gamma sweep")
    assert [p.name for p in paths] == ["results.csv", "results.md", "results.png"]

    with paths[0].open() as f:
        table = list(csv.DictReader(f))
    assert list(table[0]) == [
        "job", "split.gamma", "test/psnr", "test/psnr_input", "test/ssim", "test/ssim_input", "status",
    ]  # fmt: skip
    assert [r["split.gamma"] for r in table] == ["0.01", "0.1", "0.2", "0.5", "1.0"]
    assert float(table[-1]["test/psnr"]) == 30.0
    assert table[3]["status"] == FAILED and table[3]["test/psnr"] == ""

    md = paths[1].read_text().splitlines()
    assert md[0] == "# gamma sweep"
    assert md[2] == "| job | split.gamma | psnr ↑ | psnr_input | ssim ↑ | ssim_input |"
    assert md[4] == "| 1 | 0.01 | 20.1000 | 18.0000 | 0.5040 | 0.4500 |"
    assert md[7] == "| 4 | 0.5 | — | — | — | — |"
    assert "Failed jobs (no metrics.json): 4." in md and LPIPS_MISSING in md

    with Image.open(paths[2]) as image:
        image.verify()
        assert image.format == "PNG" and image.size[0] > image.size[1] > 100
    assert _use_log_x([0.01, 0.1, 1.0]) and not _use_log_x([0.2, 1.0]) and not _use_log_x([0.0, 1.0])


def test_ablation_labels_and_no_plot(tmp_path):
    sweep = tmp_path / "ablation"
    for name, attention in enumerate(["local", "global", "none"]):
        overrides = [f"model.attention={attention}", "model=baseline"]
        config = {"model": {"name": "baseline", "attention": attention}}
        metrics = {"test/psnr": 25.0 + name, "test/lpips": 0.2 - 0.05 * name, "test/soft_iou": 0.7}
        _job(sweep, str(name), overrides, config, metrics)
    rows = collect(sweep)
    assert [r["model.attention"] for r in rows] == ["global", "local", "none"]
    paths = write_report(rows, sweep, x="model.attention")
    assert [p.name for p in paths] == ["results.csv", "results.md"]  # not numeric: the table is the report
    md = markdown_table(rows, "ablation")
    assert "| job | model.attention | psnr ↑ | lpips ↓ | soft_iou ↑ |" in md
    assert "| 1 | global | 26.0000 | 0.1500 | 0.7000 |" in md
    assert "LPIPS" not in md and "Failed" not in md


def test_cli_prints_table_and_paths(gamma_sweep, tmp_path, capsys):
    out = tmp_path / "report"
    assert main([str(gamma_sweep), "--by", "model.prior", "--x", "split.gamma", "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert "| job | model.prior | split.gamma | psnr ↑" in stdout and "| 1 | false | 0.01 |" in stdout
    assert f"wrote {out / 'results.png'}" in stdout


def test_cli_errors_are_one_line_exit_2(gamma_sweep, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    for argv in ([str(tmp_path / "empty")], [str(gamma_sweep), "--x", "model.prior"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("facezoo: error: ") and err.count("\n") == 1
    proc = run_module("facezoo.report", str(tmp_path / "missing"), cwd=tmp_path, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr == f"facezoo: error: {tmp_path / 'missing'}: no such sweep folder\n"
