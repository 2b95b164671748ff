"""Run results: metrics.json + a markdown table, and closing loggers (one wandb run per multirun job)."""

import json
from pathlib import Path

from facezoo.utils.atomic import write_text


def test_metrics(results: list[dict]) -> dict[str, float]:
    """The metrics of `trainer.test(...)` (one dataloader) as plain floats."""
    return {k: float(v) for k, v in (results[0] if results else {}).items()}


def write_metrics(folder: str | Path, metrics: dict[str, float], title: str = "metrics") -> Path:
    folder = Path(folder)
    path = write_text(folder / "metrics.json", json.dumps(dict(sorted(metrics.items())), indent=1))
    rows = [f"# {title}", "", "| metric | value |", "|---|---|"]
    rows += [f"| {k} | {v:.4f} |" for k, v in sorted(metrics.items())]
    if "test/lpips" not in metrics and "val/lpips" not in metrics:
        rows += ["", "LPIPS: unavailable (backbone weights not found; see `facezoo-weights`)."]
    write_text(folder / "metrics.md", "\n".join(rows) + "\n")
    return path


def finish_loggers(loggers: list) -> None:
    for logger in loggers:
        logger.finalize("success")
        if type(logger).__name__ == "WandbLogger":
            import wandb

            wandb.finish()
