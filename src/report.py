"""Collect a Hydra multirun into one results table (CSV + markdown) and a metric-vs-setting plot.

A sweep (``python -m facezoo.train -m split.gamma=0.01,0.1,0.2,1.0``) writes ``<sweep_dir>/<job_num>/``
folders holding ``config.yaml`` (the resolved config), ``.hydra/overrides.yaml`` and, once the job has
finished, ``metrics.json``. A job folder without ``metrics.json`` is reported as failed, never dropped.

    python -m facezoo.report <sweep_dir> [--by KEY ...] [--x KEY] [--out DIR] [--title TEXT]

writes ``results.csv``, ``results.md`` and, with a numeric ``--x``, ``results.png`` (into the sweep folder by
default) and prints the markdown table.

Jobs that share every ``--by`` setting are repeats of one point (a sweep over the run seed: ``seed=0,1,2``,
``make sweep SEEDS=0,1,2``): the table then has one row per point with each metric's mean ± sample standard
deviation over its finished runs and their number n (CSV columns ``<metric>_mean``, ``<metric>_std``,
``<metric>_n``), the markdown lists the differences that exceed the seed spread (``beyond_spread``), and the
plot draws the means with error bars, each point labelled with its n. The failed jobs of a point are counted
in its row. With one job per point the table lists the jobs as they are.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
from dataclasses import dataclass
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
SEED = "seed"  # the run seed: jobs that differ only in it are repeats, never a setting of the default --by


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
    across jobs (``hydra.*`` and the run seed ``seed`` excluded: jobs that differ only in their seed are
    repeats, averaged by ``summarize``). A job without metrics.json has status ``FAILED`` and no metrics.
    Rows are sorted by the ``by`` values, then by job number.
    """
    sweep = Path(sweep_dir)
    jobs = [(job, _overrides(job)) for job in _job_dirs(sweep)]
    varying = [key for key in _varying([overrides for _, overrides in jobs]) if key != SEED]
    keys = varying if by is None else list(by)
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


@dataclass(frozen=True)
class Stat:
    """A metric over the finished runs of one point: mean, sample standard deviation (None for one run), n."""

    mean: float
    std: float | None
    n: int


def _points(rows: list[dict]) -> dict[tuple, list[dict]]:
    """The rows grouped by their settings (the ``by`` columns), in the rows' order."""
    settings, _ = _columns(rows)
    points: dict[tuple, list[dict]] = {}
    for row in rows:
        points.setdefault(tuple(row[s] for s in settings), []).append(row)
    return points


def is_repeated(rows: list[dict]) -> bool:
    """Whether some point has more than one job (e.g. one per seed): the report then averages."""
    return any(len(jobs) > 1 for jobs in _points(rows).values())


def summarize(rows: list[dict]) -> list[dict]:
    """One row per point (the rows of ``collect`` that share every setting, e.g. the seeds of one γ):
    ``jobs`` and ``failed`` (job names, failed = without metrics.json), the settings, and a ``Stat`` per
    ``test/*`` metric over the finished jobs that logged it (none when no job did)."""
    settings, metrics = _columns(rows)
    summary = []
    for jobs in _points(rows).values():
        point = {"jobs": [r["job"] for r in jobs], "failed": [r["job"] for r in jobs if r["status"] != "ok"]}
        point.update({s: jobs[0][s] for s in settings})
        for metric in metrics:
            values = [r[metric] for r in jobs if metric in r]
            if values:
                std = statistics.stdev(values) if len(values) > 1 else None
                point[metric] = Stat(statistics.fmean(values), std, len(values))
        summary.append(point)
    return summary


def _point_name(point: dict, settings: list[str]) -> str:
    return ", ".join(f"{s}={_text(point[s])}" for s in settings)


def beyond_spread(summary: list[dict], metric: str) -> list[tuple[str, str]]:
    """The pairs of points (better, worse) whose ``metric`` differs by more than the seed spread: their
    mean ± std intervals do not overlap (|mean_a - mean_b| > std_a + std_b). Points with fewer than two runs
    have no spread and are left out."""
    settings = [k for k in summary[0] if k not in ("jobs", "failed") and not k.startswith(PREFIX)]
    higher = HIGHER_IS_BETTER.get(metric.removeprefix(PREFIX), True)
    stats = [(_point_name(p, settings), p[metric]) for p in summary
             if isinstance(p.get(metric), Stat) and p[metric].std is not None]
    pairs = []
    for i, (name_a, a) in enumerate(stats):
        for name_b, b in stats[i + 1:]:
            if abs(a.mean - b.mean) > a.std + b.std:
                pairs.append((name_a, name_b) if (a.mean > b.mean) == higher else (name_b, name_a))
    return pairs


def _spread_lines(summary: list[dict], metrics: list[str]) -> list[str]:
    """Per quality metric (not the reference points): the differences that exceed the seed spread."""
    lines = []
    for metric in metrics:
        if metric.removeprefix(PREFIX) in HIGHER_IS_BETTER:
            pairs = beyond_spread(summary, metric)
            found = "; ".join(f"{a} better than {b}" for a, b in pairs) or "none"
            lines.append(f"- {_label(metric)}: {found}.")
    if not lines:
        return []
    return ["", "Differences beyond the seed spread (mean ± std intervals apart; points with one run left "
            "out):", *lines]


def _stat_text(stat: Stat | None) -> str:
    if stat is None:
        return "—"
    spread = f" ± {stat.std:.4f}" if stat.std is not None else ""
    return f"{stat.mean:.4f}{spread} (n={stat.n})"


def _runs_text(point: dict) -> str:
    finished, failed = len(point["jobs"]) - len(point["failed"]), len(point["failed"])
    return f"{finished} + {failed} failed" if failed else str(finished)


def _label(metric: str) -> str:
    """``test/psnr`` -> ``psnr ↑``; baselines and unknown metrics have no arrow."""
    name = metric.removeprefix(PREFIX)
    return f"{name} {'↑' if HIGHER_IS_BETTER[name] else '↓'}" if name in HIGHER_IS_BETTER else name


def _text(value) -> str:
    if value is None:
        return ""
    return str(value).lower() if isinstance(value, bool) else str(value)


def markdown_table(rows: list[dict], title: str = "facezoo results") -> str:
    """The results as a markdown table (metrics to 4 decimals), with notes on failed jobs and LPIPS: one
    line per job, or, when jobs repeat a point (``is_repeated``), one per point with mean ± std (n=...)."""
    settings, metrics = _columns(rows)
    lines = [f"# {title}", ""]
    if is_repeated(rows):
        lines.append("| " + " | ".join(["jobs", *settings, "runs", *map(_label, metrics)]) + " |")
        lines.append("|" + "---|" * (1 + len(settings)) + "---:|" * (1 + len(metrics)))
        summary = summarize(rows)
        for point in summary:
            cells = [", ".join(point["jobs"]), *(_text(point[s]) for s in settings), _runs_text(point)]
            lines.append("| " + " | ".join(cells + [_stat_text(point.get(m)) for m in metrics]) + " |")
        lines += _spread_lines(summary, metrics)
    else:
        lines.append("| " + " | ".join(["job", *settings, *map(_label, metrics)]) + " |")
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


def _plot(points: list[dict], x: str, settings: list[str], metrics: list[str], path: Path, title: str,
          repeated: bool) -> Path:
    """One subplot per metric vs ``x``, one line per combination of the other settings, baselines dashed.
    ``points``: ``summarize``'s rows; when jobs repeat a point (``repeated``) its mean is drawn with ± std
    error bars and labelled with its n (and its failed jobs), and the title counts the failed jobs."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    finished = [p for p in points if len(p["failed"]) < len(p["jobs"])]
    shown = [m for m in metrics if not _baseline_suffix(m)]
    others = [s for s in settings if s != x]
    lines: dict[str, list[dict]] = {}
    for point in sorted(finished, key=lambda p: float(p[x])):
        lines.setdefault(", ".join(f"{k}={_text(point[k])}" for k in others), []).append(point)
    fig = Figure(figsize=(4 * max(len(shown), 1), 3.4), layout="constrained")
    FigureCanvasAgg(fig)
    log_x = _use_log_x([float(p[x]) for p in finished])
    for ax, metric in zip(fig.subplots(1, max(len(shown), 1), squeeze=False)[0], shown, strict=False):
        for label, line in lines.items():
            drawn = [p for p in line if metric in p]
            xs, stats = [float(p[x]) for p in drawn], [p[metric] for p in drawn]
            if not drawn:
                continue
            if not repeated:
                ax.plot(xs, [s.mean for s in stats], "o-", label=label or None)
                continue
            ax.errorbar(xs, [s.mean for s in stats], yerr=[s.std or 0.0 for s in stats], fmt="o-", capsize=3,
                        label=label or None)
            for px, stat, point in zip(xs, stats, drawn, strict=True):
                note = f"n={stat.n}" + (f", {len(point['failed'])} failed" if point["failed"] else "")
                ax.annotate(note, (px, stat.mean), textcoords="offset points", xytext=(4, 4),
                            fontsize="x-small")
        for suffix, name in BASELINES.items():
            baseline = [(float(p[x]), p[metric + suffix].mean) for p in finished if metric + suffix in p]
            if baseline:
                ax.plot(*zip(*sorted(baseline), strict=True), "--", color="gray", label=name)
        ax.set(xlabel=x, ylabel=_label(metric), xscale="log" if log_x else "linear")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[1]:
            ax.legend(fontsize="small")
    failed = sum(len(p["failed"]) for p in points)
    jobs = sum(len(p["jobs"]) for p in points)
    fig.suptitle(f"{title} (failed jobs: {failed} of {jobs})" if repeated and failed else title)
    with atomic_file(path) as f:
        fig.savefig(f, format="png", dpi=100)
    return path


def write_report(
    rows: list[dict], out_dir: str | Path, x: str | None = None, title: str = "facezoo results"
) -> list[Path]:
    """Write ``results.csv`` and ``results.md``, and ``results.png`` when ``x`` is a numeric setting; when
    jobs repeat a point (seeds), one line per point with each metric's mean, std and n (module docstring).

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
    repeated = is_repeated(rows)
    with atomic_file(csv_path, "w") as f:
        if repeated:
            _write_summary_csv(f, summarize(rows), settings, metrics)
        else:
            writer = csv.DictWriter(f, ["job", *settings, *metrics, "status"], restval="")
            writer.writeheader()
            writer.writerows({k: _text(v) if k in settings else v for k, v in row.items()} for row in rows)
    write_text(md_path, markdown_table(rows, title))
    paths = [csv_path, md_path]
    finished = [row for row in rows if row["status"] == "ok"]
    if x is not None and finished and all(_is_number(row[x]) for row in finished):
        paths.append(_plot(summarize(rows), x, settings, metrics, out / "results.png", title, repeated))
    return paths


def _write_summary_csv(f, points: list[dict], settings: list[str], metrics: list[str]) -> None:
    """One line per point: jobs (space-separated), settings, runs, failed, then per metric mean, std, n."""
    stats = [f"{m}_{part}" for m in metrics for part in ("mean", "std", "n")]
    writer = csv.DictWriter(f, ["jobs", *settings, "runs", "failed", *stats], restval="")
    writer.writeheader()
    for point in points:
        line = {"jobs": " ".join(point["jobs"]), **{s: _text(point[s]) for s in settings},
                "runs": len(point["jobs"]), "failed": len(point["failed"])}
        for m in metrics:
            if m in point:
                stat = point[m]
                line.update({f"{m}_mean": stat.mean, f"{m}_std": "" if stat.std is None else stat.std,
                             f"{m}_n": stat.n})
        writer.writerow(line)


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
        help="dotted config key to tabulate (repeatable); default: the overrides that differ across jobs, "
        "but `seed`; jobs that share every key are averaged (mean ± std, n)",
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
