"""`make bench` end to end at its smallest: every entry runs in its own process (so its peak memory is its
own) and the table and JSON are written; a model entry times restore() and a real training step."""

import json

import pytest
import torch

from helpers import run_module


def test_bench_writes_a_row_per_entry(tmp_path):
    proc = run_module(
        "facezoo.bench", "--only", "baseline", "degradation", "--sizes", "small", "--repeats", "1",
        "--out", str(tmp_path / "bench"), cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads((tmp_path / "bench" / "results.json").read_text())
    assert [row["entry"].split()[0] for row in rows] == ["baseline", "degradation"]
    assert rows[0]["restore_s"] > 0 and rows[0]["train_step_s"] > 0 and rows[1]["img_per_s"] > 0
    assert "| baseline |" in (tmp_path / "bench" / "results.md").read_text()


# --- whole-photo restoration, in-process at the small sizes -----------------------------------------------


def test_restore_rows_time_both_release_architectures_at_batch_1_and_8():
    from facezoo.bench import RELEASES, RESTORE_FACES, bench_restore

    rows = bench_restore("small", repeats=1)
    expected = [(name, p, b) for name in RELEASES for p in ("fp32", "bf16") for b in (1, 8)]
    assert [(r["model"], r["precision"], r["batch"]) for r in rows] == expected
    for row in rows:
        assert row["faces"] == RESTORE_FACES and row["faces_per_s"] > 0 and row["size"] == "small 128px"
        assert 0 < row["model_share"] < 1


def test_the_release_models_are_the_importers_and_the_restorer_times_its_stages():
    import numpy as np
    from skimage import data

    from facezoo.bench import release_model
    from facezoo.faces.detector import DlibDetector
    from facezoo.faces.pipeline import STAGES, FaceRestorer

    model = release_model("GFPGANv1Clean", "small", "cpu")
    assert (type(model).__name__, model.alignment, model.native_size) == ("GFPGAN", "template", 128)
    restorer = FaceRestorer(model)
    photo = data.astronaut()
    landmarks = np.stack([f.landmarks for f in DlibDetector(recall=False).detect(photo)])
    restorer.restore([photo], [landmarks])
    first = restorer.take_seconds()
    assert list(first) == list(STAGES) and all(s > 0 for s in first.values())
    assert restorer.seconds == dict.fromkeys(STAGES, 0.0)  # taken: the counts restart
    restorer.restore([photo, photo], [landmarks, landmarks])
    assert restorer.seconds["restore"] > 0 and set(restorer.seconds) == set(STAGES)


def test_restore_split_finds_the_three_faces_and_splits_the_time():
    from facezoo.bench import bench_restore_split

    row = bench_restore_split("small", repeats=1)
    assert row["faces"] == 3 and row["size"] == "small 512px photo, 128px crops"
    stages = ("detect", "align", "restore", "paste")
    assert all(row[f"{s}_s"] > 0 for s in stages)
    assert sum(row[f"{s}_s"] for s in stages) == pytest.approx(row["total_s"])
    assert sum(row[f"{s}_share"] for s in stages) == pytest.approx(1.0)
    rest = row["detect_s"] + row["align_s"] + row["paste_s"]
    assert row["rest_over_restore"] == pytest.approx(rest / row["restore_s"])


def test_recall_rows_compare_the_fast_pass_with_the_retries():
    from facezoo.bench import bench_recall, tables

    rows = bench_recall("small")
    assert [(r["strength"], r["angle"]) for r in rows] == [
        ("clean", 0), ("clean", 20), ("medium", 0), ("medium", 20), ("all faces", "all")
    ]
    for row in rows:
        assert 0 <= row["recall_fast"] <= row["recall_retries"] <= 1  # retries only add to the fast pass
        assert row["false_positives_fast"] >= 0 and row["false_positives_retries"] >= 0
    assert rows[0]["recall_fast"] == 1 and rows[0]["landmark_error_fast"] == 0  # the truth itself
    total = rows[-1]
    assert total["images"] == 4 and total["recall_retries"] == sum(r["recall_retries"] for r in rows[:4]) / 4

    md = tables([{"entry": "baseline", "size": "small 64px", "restore_s": 0.5}, *rows])
    assert md.startswith("## models\n\n| entry | size | restore_s |")
    assert "\n\n## recall\n\n| size | strength" in md
    assert "| small | all faces | all | 4 |" in md


def test_a_restore_variant_row_times_another_batch_and_precision(tmp_path):
    from facezoo.bench import _model, _restore_variant

    model = _model("dfdnet", "small", tmp_path)
    row = _restore_variant(model, "dfdnet", "small", 3, "bf16", 1, torch.device("cpu"))
    assert (row["entry"], row["size"], row["batch"], row["precision"]) == ("dfdnet", "small 64px", 3, "bf16")
    assert row["restore_s"] > 0 and row["restore_peak_mem_MB"] > 0


def test_peak_memory_sees_an_allocation_inside_its_block():
    from facezoo.utils.memory import PeakMemory

    with PeakMemory(torch.device("cpu")) as before:
        pass
    with PeakMemory(torch.device("cpu")) as during:
        block = torch.ones(64, 2**20)  # 256 MB, touched, held until the block ends
    del block
    assert during.mb > before.mb + 200


def test_the_styleganex_sr_entry_restores_and_trains_without_pretrained_files(tmp_path, monkeypatch):
    from facezoo.bench import MODELS, bench_model
    from facezoo.utils.compose import compose_config

    monkeypatch.chdir(tmp_path)
    rows = bench_model("styleganex_sr", "small", repeats=1)  # a random decoder in place of the prior file
    assert [(r["entry"], r["size"], r["batch"]) for r in rows] == [("styleganex_sr", "small 64px", 2)]
    assert rows[0]["restore_s"] > 0 and rows[0]["train_step_s"] > 0 and rows[0]["params_M"] > 0
    entry = MODELS["styleganex_sr"]
    paper = compose_config("train", ["model=styleganex_sr", *entry.overrides["paper"]]).model
    assert (paper.size, paper.task, paper.encoder.skip_max_layer) == (1024, "sr", 4)  # the official SR model
    assert not paper.prior.required and entry.sizes["paper"] == 1024  # restore input 1024: E sees 256 px
