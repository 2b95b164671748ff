"""Collect a Hydra multirun into one results table (CSV + markdown) and a metric-vs-setting plot.

A sweep (``python -m facezoo.train -m split.gamma=0.01,0.1,0.2,1.0``) writes ``<sweep_dir>/<job_num>/``
folders holding ``config.yaml`` (the resolved config), ``.hydra/overrides.yaml`` and, once the job has
finished, ``metrics.json``. A job folder without ``metrics.json`` is reported as failed, never dropped.

    python -m facezoo.report <sweep_dir> [--by KEY ...] [--x KEY] [--out DIR] [--title TEXT]

writes ``results.csv``, ``results.md`` and, with a numeric ``--x``, ``results.png`` (into the sweep folder by
default) and prints the markdown table.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from pathlib import Path

from omegaconf import DictConfig, ListConfig, OmegaConf

from facezoo.cli import error_line
from facezoo.utils.atomic import atomic_file, write_text
from facezoo.utils.errors import ConfigError, DataError, FacezooError

PREFIX = "test/"
FAILED = "failed (no metrics.json)"
HIGHER_IS_BETTER = {"psnr": True, "ssim": True, "lpips": False, "soft_iou": True}
# reference points logged next to a metric: test/psnr_input (the input itself as the answer) and
# test/soft_iou_const (the best constant mask); drawn dashed on the metric's plot
BASELINES = {"_input": "input vs target", "_const": "best constant mask"}


def _baseline_suffix(key: str) -> str:
    return next((suffix for suffix in BASELINES if key.endswith(suffix)), "")
LPIPS_MISSING = "LPIPS: unavailable (backbone weights not found; see `facezoo-weights`)."


def _load_yaml(path: Path):
    try:
        return OmegaConf.load(path)
    except Exception as err:  # yaml and OmegaConf raise many types
        raise DataError(f"{path}: not a readable YAML file ({type(err).__name__})") from None


def _scalar(text: str):
    """An override's value as the config would hold it: int, float, bool or str."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def _sort_key(value) -> tuple:
    """Numbers (and numeric strings such as job names) in numeric order, then strings, then missing."""
    if isinstance(value, str):
        value = _scalar(value)
    if isinstance(value, int | float):
        return (0, float(value), "")
    return (2, 0.0, "") if value is None else (1, 0.0, str(value))


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _job_dirs(sweep: Path) -> list[Path]:
    if not sweep.is_dir():
        raise DataError(f"{sweep}: no such sweep folder")
    markers = ("config.yaml", "metrics.json", ".hydra")
    jobs = [d for d in sweep.iterdir() if d.is_dir() and any((d / m).exists() for m in markers)]
    if not jobs:
        raise DataError(f"{sweep}: no job folders (expected <sweep>/<job_num>/ with {', '.join(markers)})")
    return sorted(jobs, key=lambda d: _sort_key(d.name))


def _overrides(job: Path) -> dict[str, str]:
    """``{key: value}`` of the job's command-line overrides, without ``hydra.*`` (``+``/``++`` stripped)."""
    path = job / ".hydra" / "overrides.yaml"
    items = _load_yaml(path) if path.is_file() else []
    pairs = (str(item).partition("=") for item in items or [])
    return {key.lstrip("+~"): value for key, sep, value in pairs if sep and not key.startswith("hydra.")}


def _varying(overrides: list[dict[str, str]]) -> list[str]:
    """The override keys whose value is not the same in every job, in order of first appearance."""
    keys = list(dict.fromkeys(key for job in overrides for key in job))
    return [key for key in keys if len({job.get(key) for job in overrides}) > 1]


def _setting(config, key: str, override: str | None):
    """``key`` from config.yaml; the override's text where the config has no plain value (e.g. a group)."""
    value = OmegaConf.select(config, key, default=None) if config is not None else None
    if value is None or isinstance(value, DictConfig | ListConfig):
        return None if override is None else _scalar(override)
    return value


def _metrics(path: Path) -> dict[str, float]:
    try:
        metrics = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise DataError(f"{path}: not a readable JSON file ({type(err).__name__})") from None
    if not isinstance(metrics, dict):
        raise DataError(f"{path}: expected a JSON dict of metrics, found {type(metrics).__name__}")
    return {k: float(v) for k, v in metrics.items() if k.startswith(PREFIX) and _is_number(v)}


def collect(sweep_dir: str | Path, by: list[str] | None = None) -> list[dict]:
    """One row per job of a multirun: ``job``, ``status``, the ``by`` settings and the ``test/*`` metrics.

    ``by``: dotted config keys read from each job's config.yaml; None means the override keys that differ
    across jobs (``hydra.*`` excluded). A job without metrics.json has status ``FAILED`` and no metrics.
    Rows are sorted by the ``by`` values, then by job number.
    """
    sweep = Path(sweep_dir)
    jobs = [(job, _overrides(job)) for job in _job_dirs(sweep)]
    keys = _varying([overrides for _, overrides in jobs]) if by is None else list(by)
    rows = []
    for job, overrides in jobs:
        config = _load_yaml(job / "config.yaml") if (job / "config.yaml").is_file() else None
        metrics_file = job / "metrics.json"
        row = {"job": job.name, "status": "ok" if metrics_file.is_file() else FAILED}
        row.update({key: _setting(config, key, overrides.get(key)) for key in keys})
        if metrics_file.is_file():
            row.update(_metrics(metrics_file))
        rows.append(row)
    return sorted(rows, key=lambda r: (*(_sort_key(r[k]) for k in keys), _sort_key(r["job"])))


def _columns(rows: list[dict]) -> tuple[list[str], list[str]]:
    """(setting columns, metric columns): metrics as psnr, psnr_input, ssim, ..., then the others."""
    keys = list(dict.fromkeys(key for row in rows for key in row))
    settings = [k for k in keys if k not in ("job", "status") and not k.startswith(PREFIX)]
    order = list(HIGHER_IS_BETTER)

    def rank(key: str) -> tuple:
        suffix = _baseline_suffix(key)
        base = key.removeprefix(PREFIX).removesuffix(suffix) if suffix else key.removeprefix(PREFIX)
        return (order.index(base) if base in order else len(order), base, bool(suffix))

    return settings, sorted((k for k in keys if k.startswith(PREFIX)), key=rank)


def _label(metric: str) -> str:
    """``test/psnr`` -> ``psnr ↑``; baselines and unknown metrics have no arrow."""
    name = metric.removeprefix(PREFIX)
    return f"{name} {'↑' if HIGHER_IS_BETTER[name] else '↓'}" if name in HIGHER_IS_BETTER else name


def _text(value) -> str:
    if value is None:
        return ""
    return str(value).lower() if isinstance(value, bool) else str(value)


def markdown_table(rows: list[dict], title: str = "facezoo results") -> str:
    """The results as a markdown table (metrics to 4 decimals), with notes on failed jobs and LPIPS."""
    settings, metrics = _columns(rows)
    lines = [f"# {title}", "", "| " + " | ".join(["job", *settings, *map(_label, metrics)]) + " |"]
    lines.append("|" + "---|" * (1 + len(settings)) + "---:|" * len(metrics))
    for row in rows:
        cells = [row["job"], *(_text(row[s]) for s in settings)]
        cells += [f"{row[m]:.4f}" if m in row else "—" for m in metrics]
        lines.append("| " + " | ".join(cells) + " |")
    failed = [row["job"] for row in rows if row["status"] != "ok"]
    if failed:
        lines += ["", f"Failed jobs (no metrics.json): {', '.join(failed)}."]
    if f"{PREFIX}lpips" not in metrics:
        lines += ["", LPIPS_MISSING]
    return "\n".join(lines) + "\n"


def _use_log_x(xs: list[float]) -> bool:
    """Log-scale x when every value is positive and they span more than a decade."""
    return bool(xs) and min(xs) > 0 and max(xs) / min(xs) > 10


def _plot(rows: list[dict], x: str, settings: list[str], metrics: list[str], path: Path, title: str) -> Path:
    """One subplot per metric vs ``x``, one line per combination of the other settings, baselines dashed."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    shown = [m for m in metrics if not _baseline_suffix(m)]
    others = [s for s in settings if s != x]
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(", ".join(f"{k}={_text(row[k])}" for k in others), []).append(row)
    fig = Figure(figsize=(4 * max(len(shown), 1), 3.4), layout="constrained")
    FigureCanvasAgg(fig)
    log_x = _use_log_x([float(row[x]) for row in rows])
    for ax, metric in zip(fig.subplots(1, max(len(shown), 1), squeeze=False)[0], shown, strict=False):
        for label, group in groups.items():
            points = sorted((float(r[x]), r[metric]) for r in group if metric in r)
            if points:
                ax.plot(*zip(*points, strict=True), "o-", label=label or None)
        for suffix, name in BASELINES.items():
            baseline = sorted((float(r[x]), r[metric + suffix]) for r in rows if metric + suffix in r)
            if baseline:
                ax.plot(*zip(*baseline, strict=True), "--", color="gray", label=name)
        ax.set(xlabel=x, ylabel=_label(metric), xscale="log" if log_x else "linear")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[1]:
            ax.legend(fontsize="small")
    fig.suptitle(title)
    with atomic_file(path) as f:
        fig.savefig(f, format="png", dpi=100)
    return path


def write_report(
    rows: list[dict], out_dir: str | Path, x: str | None = None, title: str = "facezoo results"
) -> list[Path]:
    """Write ``results.csv`` and ``results.md``, and ``results.png`` when ``x`` is a numeric setting.

    With a non-numeric ``x`` (an ablation: ``model.transformer.mode=global,selective``) the table is the
    report and no plot is drawn. Returns the paths written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    settings, metrics = _columns(rows)
    if x is not None and x not in settings:
        known = ", ".join(settings) or "none"
        raise ConfigError(f"--x {x}: not a setting of the results (settings: {known}); add --by {x}")
    csv_path, md_path = out / "results.csv", out / "results.md"
    with atomic_file(csv_path, "w") as f:
        writer = csv.DictWriter(f, ["job", *settings, *metrics, "status"], restval="")
        writer.writeheader()
        writer.writerows({k: _text(v) if k in settings else v for k, v in row.items()} for row in rows)
    write_text(md_path, markdown_table(rows, title))
    paths = [csv_path, md_path]
    finished = [row for row in rows if row["status"] == "ok"]
    if x is not None and finished and all(_is_number(row[x]) for row in finished):
        paths.append(_plot(finished, x, settings, metrics, out / "results.png", title))
    return paths


def main(argv: list[str] | None = None) -> int:
    """CLI; bad input prints one ``facezoo: error: ...`` line on stderr and returns 2."""
    parser = argparse.ArgumentParser(
        prog="python -m facezoo.report",
        description="Tabulate (and plot) the test metrics of a Hydra multirun.",
    )
    parser.add_argument("sweep_dir", help="the multirun folder holding one folder per job")
    parser.add_argument(
        "--by",
        action="append",
        metavar="KEY",
        help="dotted config key to tabulate (repeatable); default: the overrides that differ across jobs",
    )
    parser.add_argument("--x", metavar="KEY", help="numeric setting for the x axis of results.png")
    parser.add_argument("--out", help="output folder (default: the sweep folder)")
    parser.add_argument("--title", help="title of the table and plot (default: the sweep folder)")
    args = parser.parse_args(argv)
    by = args.by if args.x is None or args.by is None or args.x in args.by else [*args.by, args.x]
    title = args.title or f"results: {args.sweep_dir}"
    try:
        rows = collect(args.sweep_dir, by)
        paths = write_report(rows, args.out or args.sweep_dir, x=args.x, title=title)
    except FacezooError as err:
        return error_line(err)
    print(markdown_table(rows, title))
    if args.x is not None and not any(p.suffix == ".png" for p in paths):
        print(f"no plot: {args.x} is not numeric in every finished job")
    print("\n".join(f"wrote {p}" for p in paths))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
