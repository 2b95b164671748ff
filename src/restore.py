"""Restore every face of whole photos and videos: `facezoo-restore input=... output=... weights=...` (Hydra,
conf/restore.yaml) over the plain function `restore(cfg)`.

Each photo (or frame): faces are detected with their 68 landmarks (`faces.detector`), aligned as the model
was trained (`model.alignment`), restored in batches across the photos of a chunk (`faces.pipeline`) and
pasted back without seams (`faces.paste`); videos keep their fps and audio, and their landmarks are smoothed
over time (`faces.smoothing`). `weights` is any file `load_model` reads: a facezoo checkpoint (or run folder)
or an official release. Outputs are written atomically and inputs never overwritten (`faces.jobs`). A file
that cannot be read is reported by name and skipped; the run goes on and ends with exit code 1, saying how
many failed. A JSON report lists the faces found and skipped per file, and the times.
"""

# isort: off
import facezoo.utils.torchvision_shim  # noqa: F401  (first: lets Lightning import torchvision)
# isort: on
import json
import sys
import time
from pathlib import Path

import hydra
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from facezoo.checkpoints import load_model, open_model_file
from facezoo.cli import CONF_DIR, device_option, error_line, run_cli
from facezoo.faces.detector import DlibDetector
from facezoo.faces.jobs import Job, plan_jobs
from facezoo.faces.pipeline import FaceRestorer
from facezoo.faces.smoothing import LandmarkSmoother, jitter
from facezoo.faces.video import open_writer, read_frames, video_info
from facezoo.utils.atomic import write_bytes, write_text
from facezoo.utils.console import progress
from facezoo.utils.errors import DataError
from facezoo.utils.grid import make_grid
from facezoo.utils.image_io import read_rgb_uint8, write_image


def _stack(landmarks: list[np.ndarray]) -> np.ndarray:
    """A photo's (F, 68, 2) landmarks (F may be 0)."""
    return np.stack(landmarks) if landmarks else np.zeros((0, 68, 2), np.float32)


def _precision(name: str, device: str) -> str:
    """`auto`: half precision on a GPU (bf16 where it has it, else fp16), fp32 on a CPU (bf16 there is faster
    but further from fp32 than we hold the default to: README "Speed")."""
    if name != "auto":
        return name
    if not device.startswith("cuda"):
        return "fp32"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


class Run:
    """One `facezoo-restore` run: the detector, the restorer and the report."""

    def __init__(self, cfg: DictConfig) -> None:
        self.cfg = cfg
        self.jobs = plan_jobs(cfg.input, cfg.output, cfg.frames, cfg.ext, cfg.overwrite)
        device = device_option(str(cfg.device))
        file = open_model_file(cfg.weights, option="weights")
        model = load_model(file, device)
        size = cfg.crop_size or file.trained_size() or model.native_size  # as the model was trained
        batch_size = cfg.batch_size or (8 if device.startswith("cuda") else 1)  # see conf/restore.yaml
        self.restorer = FaceRestorer(model, cfg.alignment, batch_size, cfg.upscale, cfg.color_match,
                                     _precision(cfg.precision, device), device, size, cfg.region,
                                     cfg.channels_last,
                                     cfg.compile)
        self.detector = DlibDetector(**OmegaConf.to_container(cfg.detector))
        self.files: dict[str, dict] = {}
        self.faces_done, self.start, self.detect_seconds = 0, time.perf_counter(), 0.0
        self.advance = lambda n, note="": None  # the progress bar's, while the run goes

    def _done(self, photos_or_frames: int, faces: int) -> None:
        self.faces_done += faces
        rate = self.faces_done / max(time.perf_counter() - self.start, 1e-9)
        self.advance(photos_or_frames, f"{self.faces_done} faces, {rate:.2f} faces/s")

    def _detect(self, image: np.ndarray, *retry: bool) -> tuple[list, dict]:
        """The detector's faces and report; its time goes to the report's stages."""
        start = time.perf_counter()
        found = self.detector.detect_with_report(image, *retry)
        self.detect_seconds += time.perf_counter() - start
        return found

    # -- photos ------------------------------------------------------------------------------------------
    def photos(self, jobs: list[Job]) -> None:
        """Restore a chunk of photos, their faces batched together."""
        read, images, landmarks = [], [], []
        for job in jobs:
            start = time.perf_counter()
            try:
                image = read_rgb_uint8(job.source)
            except DataError as err:
                self.files[str(job.source)] = {"error": str(err)}
                continue
            faces, skipped = self._detect(image)
            self.files[str(job.source)] = {"faces": len(faces), "skipped": skipped,
                                           "seconds": time.perf_counter() - start}
            read.append(job)
            images.append(image)
            landmarks.append(_stack([f.landmarks for f in faces]))
        start = time.perf_counter()
        results = self.restorer.restore(images, landmarks) if images else []
        share = (time.perf_counter() - start) / max(1, len(images))
        for job, lm, result in zip(read, landmarks, results, strict=True):
            if not len(lm) and self.cfg.upscale == 1 and job.source.suffix == job.target.suffix:
                write_bytes(job.target, job.source.read_bytes())  # no face: the file as it was
            else:
                write_image(job.target, result.image)
            if self.cfg.save_crops and len(lm):
                self._save_crops(job, result)
            self.files[str(job.source)]["seconds"] += share
        self._done(len(jobs), sum(len(lm) for lm in landmarks))

    def _save_crops(self, job: Job, result) -> None:
        folder = job.target.parent / "crops"
        for i, (crop, out) in enumerate(zip(result.crops, result.restored, strict=True)):
            write_image(folder / f"{job.target.stem}_{i:02d}_input.png", crop)
            write_image(folder / f"{job.target.stem}_{i:02d}_restored.png", out)
            write_image(folder / f"{job.target.stem}_{i:02d}_compare.png", make_grid([crop[None], out[None]]))

    # -- videos ------------------------------------------------------------------------------------------
    def video(self, job: Job) -> None:
        """Restore a video (or a folder of frames) chunk by chunk, its landmarks smoothed over time."""
        start, info = time.perf_counter(), video_info(job.source)
        smoother = LandmarkSmoother(info.fps) if self.cfg.smooth else None
        raw_tracks, smooth_tracks, faces_found, frames = {}, {}, 0, 0
        self._retry = _RetryPolicy(info.fps)
        audio = job.source if job.kind == "video" else None
        with open_writer(job.target, info.fps, audio_from=audio) as writer:
            chunk: list[np.ndarray] = []
            for frame in read_frames(job.source):
                chunk.append(frame)
                if len(chunk) == self.cfg.chunk:
                    faces_found += self._frames(chunk, frames, writer, smoother, raw_tracks, smooth_tracks)
                    frames += len(chunk)
                    chunk = []
            if chunk:
                faces_found += self._frames(chunk, frames, writer, smoother, raw_tracks, smooth_tracks)
                frames += len(chunk)
        self.files[str(job.source)] = {
            "frames": frames, "faces": faces_found, "seconds": time.perf_counter() - start,
            "jitter": {"raw": jitter(raw_tracks), "smoothed": jitter(smooth_tracks) if smoother else None},
        }

    def _frames(self, frames, first: int, writer, smoother, raw_tracks, smooth_tracks) -> int:
        landmarks, found = [], 0
        for index, frame in enumerate(frames, start=first):
            retry = self._retry.due(index)
            faces, _ = self._detect(frame, retry)
            self._retry.seen(index, retry, bool(faces))
            found += len(faces)
            points = [f.landmarks for f in faces]
            if smoother is not None and faces:
                tracked = smoother.update(index, points, [f.box for f in faces])
                for (track, smoothed), raw in zip(tracked, points, strict=True):
                    raw_tracks.setdefault(track, []).append((index, raw))
                    smooth_tracks.setdefault(track, []).append((index, smoothed))
                points = [smoothed for _, smoothed in tracked]
            landmarks.append(_stack(points))
        for result in self.restorer.restore(frames, landmarks):
            writer.write(result.image)
        self._done(len(frames), found)
        return found

    # -- the run -----------------------------------------------------------------------------------------
    def __call__(self) -> dict:
        # a finished file is complete (atomic); a folder of frames is written frame by frame: never skipped
        todo = [j for j in self.jobs if not (self.cfg.resume and j.target.is_file())]
        skipped = len(self.jobs) - len(todo)
        photos = [j for j in todo if j.kind == "image"]
        videos = {job: _frame_count(job) for job in todo if job.kind != "image"}
        self.start = time.perf_counter()
        with progress(len(photos) + sum(videos.values()), "restoring", "photos and frames") as advance:
            self.advance = advance
            for start in range(0, len(photos), self.cfg.chunk):
                self.photos(photos[start:start + self.cfg.chunk])
            for job, frames in videos.items():
                try:
                    self.video(job)
                except DataError as err:
                    self.files[str(job.source)] = {"error": str(err)}
                    advance(frames)
        files = self.files.values()
        seconds = time.perf_counter() - self.start
        return {"files": self.files, "done_before": skipped,
                "failed": sum("error" in f for f in files),
                "faces": sum(f.get("faces", 0) for f in files),
                "skipped_faces": {why: sum(f.get("skipped", {}).get(why, 0) for f in files)
                                  for why in ("small", "nested", "not_face_like")},
                "photos_without_faces": sum(f.get("faces") == 0 and "frames" not in f for f in files),
                "seconds": seconds, "faces_per_s": self.faces_done / max(seconds, 1e-9),
                "stages": {"detect": self.detect_seconds, **self.restorer.seconds}}  # seconds, all files


def _frame_count(job: Job) -> int:
    """A video's frames as its header says (1 when it does not say, or cannot be read: reported later)."""
    try:
        return video_info(job.source).frame_count or 1
    except DataError:
        return 1


class _RetryPolicy:
    """When a video frame gets the detector's slow retries (`detector.recall`): when the previous frame had
    faces and this one has none (a face lost), and at most once a second otherwise, so a clip without faces
    costs one retry per second of video, not one per frame."""

    def __init__(self, fps) -> None:
        self.every = max(1, round(float(fps)))
        self.last_retry, self.had_faces = -self.every, False

    def due(self, index: int) -> bool:
        return self.had_faces or index - self.last_retry >= self.every

    def seen(self, index: int, retried: bool, found: bool) -> None:
        if retried and not found:
            self.last_retry = index
        self.had_faces = found


def report_path(cfg: DictConfig) -> Path:
    if cfg.report:
        return Path(cfg.report)
    out = Path(cfg.output)
    return out.with_suffix(".json") if out.suffix else out / "restore.json"


def restore(cfg: DictConfig) -> dict:
    """Restore `cfg.input` into `cfg.output`; → the report (also written as JSON)."""
    run = Run(cfg)
    report = run()
    write_text(report_path(cfg), json.dumps(report, indent=1, default=float))
    print(summary(report, cfg.output, report_path(cfg)))
    return report


def summary(report: dict, output, report_file: Path) -> str:
    """The lines printed at the end of a run."""
    skipped = ", ".join(f"{n} {why.replace('_', ' ')}" for why, n in report["skipped_faces"].items() if n)
    lines = [
        f"restored {len(report['files']) - report['failed']} files ({report['faces']} faces) into {output}"
        + (f"; {report['done_before']} done before" if report["done_before"] else ""),
        f"  {report['faces_per_s']:.2f} faces/s, {report['seconds']:.1f} s"
        + (f"; faces skipped: {skipped}" if skipped else "")
        + (f"; {report['photos_without_faces']} photos without a face (copied)"
           if report["photos_without_faces"] else ""),
        f"  report: {report_file}",
    ]
    return "\n".join(lines)


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="restore")
def main(cfg: DictConfig) -> None:
    report = run_cli(restore, cfg)
    if report["failed"]:  # the others were restored: exit 1, not bad input (2)
        error_line(f"{report['failed']} files could not be restored (see {report_path(cfg)})")
        sys.exit(1)


if __name__ == "__main__":
    main()
