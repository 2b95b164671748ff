"""`make bench` end to end at its smallest: every entry runs in its own process (so its peak memory is its
own) and the table and JSON are written; a model entry times restore() and a real training step."""

import json

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
