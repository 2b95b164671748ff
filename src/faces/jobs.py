"""What `facezoo-restore` reads and writes: the (input, output) pairs of a run, with the rules that keep a
user's files safe. An input is never overwritten and nothing is written into an input folder unless
`overwrite=true`; with `resume=true` inputs whose output exists are skipped (outputs are written atomically,
so an existing output is a complete one)."""

from dataclasses import dataclass
from pathlib import Path

from facezoo.faces.video import VIDEO_EXTENSIONS
from facezoo.utils.errors import ConfigError
from facezoo.utils.image_io import IMAGE_EXTENSIONS


@dataclass(frozen=True)
class Job:
    source: Path  # a photo, a video, or (kind "frames") a folder of frames
    target: Path  # a photo, a video, or a folder of frames
    kind: str  # "image" | "video" | "frames" (the target of frames: a video file, or a folder of frames)


def _kind(path: Path) -> str | None:
    suffix = path.suffix.lower()
    return "image" if suffix in IMAGE_EXTENSIONS else "video" if suffix in VIDEO_EXTENSIONS else None


def _image_target(target: Path, ext: str | None) -> Path:
    return target.with_suffix("." + ext.lstrip(".").lower()) if ext else target


def plan_jobs(source: str, target: str, frames: bool = False, ext: str | None = None,
              overwrite: bool = False) -> list[Job]:
    """The jobs of `input=source output=target`, in name order."""
    source_path, target_path = Path(source), Path(target)
    if not source_path.exists():
        raise ConfigError(f"input={source}: no such file or folder")
    if ext is not None and "." + ext.lstrip(".").lower() not in IMAGE_EXTENSIONS:
        raise ConfigError(f"ext={ext}: expected an image format ({', '.join(IMAGE_EXTENSIONS)})")
    if source_path.is_dir() and frames:  # written as a video when the output has a video suffix
        jobs = [Job(source_path, target_path, "frames")]
    elif source_path.is_dir():
        if target_path.suffix.lower() in (*IMAGE_EXTENSIONS, *VIDEO_EXTENSIONS):
            raise ConfigError(f"output={target}: input is a folder, so output must be a folder")
        jobs = []
        for path in sorted(p for p in source_path.iterdir() if p.is_file()):
            kind = _kind(path)
            if kind is not None:
                out = target_path / path.name
                jobs.append(Job(path, _image_target(out, ext) if kind == "image" else out, kind))
    else:
        kind = _kind(source_path)
        if kind is None:
            known = ", ".join(IMAGE_EXTENSIONS + VIDEO_EXTENSIONS)
            raise ConfigError(f"input={source}: not a photo or video (expected {known})")
        if target_path.is_dir() or not target_path.suffix:
            target_path = target_path / source_path.name
        if _kind(target_path) != kind:
            article = "an image" if kind == "image" else "a video"
            raise ConfigError(f"output={target}: expected {article} file (or a folder) for input={source}")
        jobs = [Job(source_path, _image_target(target_path, ext) if kind == "image" else target_path, kind)]
    _check_safe(source_path, jobs, overwrite)
    return jobs


def _check_safe(source: Path, jobs: list[Job], overwrite: bool) -> None:
    """Never over an input; for a folder of inputs, never into it unless `overwrite` (one file may be
    restored beside itself: `input=clip.mp4 output=clip_restored.mp4`)."""
    folder = source.resolve()
    for job in jobs:
        target = job.target.resolve()
        if target == job.source.resolve():
            raise ConfigError(f"output={job.target}: it would overwrite the input {job.source}")
        if source.is_dir() and not overwrite and folder in target.parents:
            raise ConfigError(
                f"output={job.target}: inside the input folder {folder}; give another output folder, or "
                "overwrite=true to write there (inputs themselves are never overwritten)"
            )
