"""Multirun report: a fake Hydra sweep into CSV / markdown / PNG, failed jobs, ablations, seed-averaged
sweeps (mean ± std, n), the Makefile's SEEDS, CLI errors."""

import csv
import json
import subprocess

import pytest
from omegaconf import OmegaConf
from PIL import Image

from facezoo.report import (
    FAILED,
    LPIPS_MISSING,
    Stat,
    _use_log_x,
    beyond_spread,
    collect,
    is_repeated,
    main,
    markdown_table,
    summarize,
    write_report,
)
from facezoo.utils.compose import compose_config
from helpers import ROOT, run_module

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


# a seed sweep: job -> (gamma, seed, test/psnr); job 5 failed, γ 0.2 ran with one seed only
SEED_JOBS = {"0": (0.1, 0, 30.0), "1": (0.1, 1, 31.0), "2": (0.1, 2, 33.0),
             "3": (1.0, 0, 40.0), "4": (1.0, 1, 41.0), "5": (1.0, 2, None), "6": (0.2, 0, 35.0)}


@pytest.fixture
def seed_sweep(tmp_path):
    sweep = tmp_path / "seeds"
    for name, (gamma, seed, psnr) in SEED_JOBS.items():
        metrics = {"test/psnr": psnr, "test/psnr_input": 18.0, "test/ssim": psnr / 50} if psnr else None
        _job(sweep, name, [f"split.gamma={gamma}", f"seed={seed}"],
             {"split": {"gamma": gamma, "seed": 1234}, "seed": seed}, metrics)
    return sweep


def test_seeds_of_a_point_are_averaged(seed_sweep):
    rows = collect(seed_sweep)  # default --by: the varying overrides but the run seed
    assert "seed" not in rows[0] and is_repeated(rows)
    points = summarize(rows)
    assert [(p["split.gamma"], p["jobs"], p["failed"]) for p in points] == [
        (0.1, ["0", "1", "2"], []), (0.2, ["6"], []), (1.0, ["3", "4", "5"], ["5"])]
    psnr = [p["test/psnr"] for p in points]
    assert psnr[0] == Stat(pytest.approx(94 / 3), pytest.approx((7 / 3) ** 0.5), 3)  # sample std (n - 1)
    assert psnr[1] == Stat(35.0, None, 1)
    assert psnr[2] == Stat(40.5, pytest.approx(0.5**0.5), 2)  # the failed seed is not a run of the mean
    assert points[2]["test/psnr_input"] == Stat(18.0, 0.0, 2)
    assert not is_repeated(collect(seed_sweep, by=["split.gamma", "seed"]))  # one job per point: as before


def test_seed_report_csv_markdown_png(seed_sweep, tmp_path):
    paths = write_report(collect(seed_sweep), tmp_path / "out", x="split.gamma", title="seeds")
    assert [p.name for p in paths] == ["results.csv", "results.md", "results.png"]

    with paths[0].open() as f:
        table = list(csv.DictReader(f))
    assert list(table[0]) == [
        "jobs", "split.gamma", "runs", "failed", "test/psnr_mean", "test/psnr_std", "test/psnr_n",
        "test/psnr_input_mean", "test/psnr_input_std", "test/psnr_input_n",
        "test/ssim_mean", "test/ssim_std", "test/ssim_n",
    ]  # fmt: skip
    assert [(r["jobs"], r["split.gamma"], r["runs"], r["failed"]) for r in table] == [
        ("0 1 2", "0.1", "3", "0"), ("6", "0.2", "1", "0"), ("3 4 5", "1.0", "3", "1")]
    assert float(table[0]["test/psnr_mean"]) == pytest.approx(31.3333, abs=1e-4)
    assert float(table[0]["test/psnr_std"]) == pytest.approx(1.5275, abs=1e-4)
    assert table[0]["test/psnr_n"] == "3" and table[2]["test/psnr_n"] == "2"
    assert table[1]["test/psnr_std"] == "" and table[1]["test/psnr_n"] == "1"

    md = paths[1].read_text().splitlines()
    assert md[2] == "| jobs | split.gamma | runs | psnr ↑ | psnr_input | ssim ↑ |"
    assert md[4] == (
        "| 0, 1, 2 | 0.1 | 3 | 31.3333 ± 1.5275 (n=3) | 18.0000 ± 0.0000 (n=3) | 0.6267 ± 0.0306 (n=3) |")
    assert md[5] == "| 6 | 0.2 | 1 | 35.0000 (n=1) | 18.0000 (n=1) | 0.7000 (n=1) |"
    assert md[6].startswith("| 3, 4, 5 | 1.0 | 2 + 1 failed | 40.5000 ± 0.7071 (n=2) |")
    assert "Failed jobs (no metrics.json): 5." in md
    assert "- psnr ↑: split.gamma=1.0 better than split.gamma=0.1." in md  # γ 0.2 has one run: no spread
    assert "- ssim ↑: split.gamma=1.0 better than split.gamma=0.1." in md and "- psnr_input" not in md

    with Image.open(paths[2]) as image:
        image.verify()
        assert image.format == "PNG" and image.size[0] > image.size[1] > 100


def test_differences_beyond_the_seed_spread():
    """A pair counts when its mean ± std intervals do not overlap, whichever direction is better."""
    points = [{"jobs": [], "failed": [], "ablation": name, "test/psnr": Stat(psnr, std, 3),
               "test/lpips": Stat(lpips, 0.01, 3)}
              for name, psnr, std, lpips in (("a", 10.0, 1.0, 0.2), ("b", 11.0, 1.0, 0.3),
                                             ("c", 13.0, 0.5, 0.21))]
    assert beyond_spread(points, "test/psnr") == [("ablation=c", "ablation=a"), ("ablation=c", "ablation=b")]
    assert beyond_spread(points, "test/lpips") == [("ablation=a", "ablation=b"), ("ablation=c", "ablation=b")]


def test_an_all_failed_point_is_listed_and_not_plotted(seed_sweep, tmp_path):
    _job(seed_sweep, "7", ["split.gamma=0.5", "seed=0"], {"split": {"gamma": 0.5}, "seed": 0})
    _job(seed_sweep, "8", ["split.gamma=0.5", "seed=1"], {"split": {"gamma": 0.5}, "seed": 1})
    rows = collect(seed_sweep)
    assert "| 7, 8 | 0.5 | 0 + 2 failed | — | — | — |" in markdown_table(rows)
    assert (tmp_path / "results.png") in write_report(rows, tmp_path, x="split.gamma")


def test_the_cli_averages_seeds(seed_sweep, capsys):
    assert main([str(seed_sweep), "--x", "split.gamma"]) == 0
    stdout = capsys.readouterr().out
    assert "| 0, 1, 2 | 0.1 | 3 | 31.3333 ± 1.5275 (n=3) |" in stdout
    assert (seed_sweep / "results.png").is_file()


def test_make_seeds_vary_the_run_seed_only():
    """`make sweep SEEDS=0,1,2` adds the run seed to the one multirun; the split's seed is not the run
    seed, and the run seed reaches the datamodule (data order and draws)."""

    def dry_run(*args: str) -> str:
        make = subprocess.run(["make", "-n", *args], cwd=ROOT, capture_output=True, text=True, check=True)
        return make.stdout

    with_seeds, without = dry_run("sweep", "SEEDS=0,1,2"), dry_run("sweep")
    assert "split.gamma=0.01,0.1,0.2,1.0" in with_seeds and "seed=0,1,2" in with_seeds
    assert "seed=" not in without and "--by split.gamma --x split.gamma" in without
    ablations = dry_run("ablations", "SEEDS=3,4")
    assert "ablation=full,no_prior,sps,gsa,no_unpaired split.gamma=0.1 seed=3,4" in ablations
    cfg = compose_config(overrides=["experiment=retouchformer_synthetic", "seed=3"])
    assert cfg.datamodule.seed == 3 and cfg.datamodule.split_seed == cfg.split.seed != 3
