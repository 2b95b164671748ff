"""Edit or toonify the face of a video (or a photo) with StyleGANEX: `facezoo-video input=clip.mp4
ckpt=styleganex_edit_age.pt` (Hydra, conf/video.yaml) over the plain function `edit_video(cfg)`.

The tasks (`task`; null: the checkpoint's own):
- `edit`: w+ moves by v = `strength` · d (official video_editing.py: `editing_w · scale_factor`), d being
  `direction=FILE` (an InterFaceGAN .npy/.pt, models/editing.py `load_direction`) or, without one, the
  editing vector an official edit checkpoint (styleganex_edit_*.pt, model.task edit) stores. v also drives
  the attention of the fusion layers of a video-trained encoder (use_att); an encoder without them (an
  inversion checkpoint, model.task inversion) edits by the direction alone: how a user edits with any
  InterFaceGAN direction and the plain inversion model. There, strength 0 is the plain reconstruction.
- `toonify`: no vector; the checkpoint's decoder is the toonified G′ (styleganex_toonify_*.pt). A direction is
  refused, as is a checkpoint of another task for either (sr, sketch2face, mask2face; an inversion model
  cannot toonify).

Modes (`mode`):
- `frame` (default, the official flow): ONE crop for the whole clip, found on the first frame: dlib's 68
  landmarks give the official get_video_crop_parameter box (the frame scaled so the eye centres are 64 px
  apart, ±256 px around their midpoint, clipped to the frame, sides multiples of 8); w+ comes from the first
  frame's FFHQ-aligned 256 px face (official x2) for every frame, f from each frame's crop (StyleGANEX's
  unaligned input: the face may move inside the crop). `box=whole` (the whole frame) or `box=[x0,y0,x1,y1]`
  (frame pixels) skips the detection (synthetic faces, which dlib rarely finds): the region at its own
  resolution, its sides rounded to multiples of 8, and w+ from the first crop's centred 256 px (`face_of`).
  The output (r × the crop) is resized to the box and pasted into the frame with a soft border (a convex
  mask, faces/paste.py `polygon_mask`, `feather` × the box's shorter side wide; no border where the box
  meets the frame's edge), so the video keeps its size; `paste_back=false` writes the r× crop itself, as
  the official does. Here the box is cut from the frame and resized, where the official resizes the frame
  and cuts: the same region up to half a pixel of rounding.
- `aligned`: every frame's faces are detected, their landmarks smoothed over time (faces/smoothing.py), cut
  as FFHQ-aligned 256 px crops (w+ and f both from the crop), edited and pasted back with the seamless
  paste of facezoo-restore (faces/paste.py, region `crop`); a frame without a face is written as it was.

Always the official video settings: no noise in G (zero_noise), outputs clamped to [-1, 1]. Frames go
through E and G `batch_size` at a time. A video keeps its fps and audio (faces/video.py); a folder of frames
runs at 25 fps; a photo gives a photo. `output` (null: `<input stem>_<task>` with the input's suffix, .mp4
for a folder of frames, in the run folder) is never the input and is replaced only with `overwrite=true`;
it is written atomically. A progress bar shows frames/s; at the end one summary line: frames, seconds,
frames/s and, for a clip, the ratio of the output's mean frame-to-frame change to the input's
(metrics/temporal.py, on the 8-bit frames before encoding: above 1, the edit adds flicker).
"""

# isort: off
import facezoo.utils.torchvision_shim  # noqa: F401  (first: lets Lightning import torchvision)
# isort: on
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import hydra
import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf

from facezoo.checkpoints import load_styleganex
from facezoo.cli import CONF_DIR, device_option, run_cli
from facezoo.faces.align import ffhq_transform, warp_faces
from facezoo.faces.detector import DlibDetector, Face
from facezoo.faces.paste import paste_back, polygon_mask
from facezoo.faces.smoothing import LandmarkSmoother
from facezoo.faces.video import FOLDER_FPS, VIDEO_EXTENSIONS, open_writer, read_frames, video_info
from facezoo.metrics.temporal import FrameChange
from facezoo.models.editing import load_direction
from facezoo.utils.console import progress
from facezoo.utils.errors import ConfigError, DataError
from facezoo.utils.image_io import IMAGE_EXTENSIONS, read_rgb_uint8, to_float, to_uint8, write_image

log = logging.getLogger("facezoo")

TASKS = ("edit", "toonify")
MODES = ("frame", "aligned")
EYES_APART = 64  # get_video_crop_parameter: the frame is scaled so the eye centres are 64 px apart
REACH = 256  # ... and the crop spans ±256 px of that frame around the eyes' midpoint
MULTIPLE = 8  # E's input sides
FACE = 256  # the FFHQ-aligned face E reads w+ from (official align_face output_size)


# -- options -------------------------------------------------------------------------------------------------
def _task(cfg: DictConfig, model) -> str:
    """The task, checked against what the checkpoint was trained for."""
    own = model.task
    task = cfg.task if cfg.task is not None else ("toonify" if own == "toonify" else "edit")
    if task not in TASKS:
        raise ConfigError(f"task={task}: expected edit or toonify")
    fits = {"edit": ("edit", "inversion"), "toonify": ("toonify",)}[task]
    if own not in fits:
        raise ConfigError(f"ckpt={cfg.ckpt}: a StyleGANEX {own} model; task={task} needs a "
                          f"{' or '.join(fits)} checkpoint")
    if task == "toonify" and cfg.direction:
        raise ConfigError(f"direction={cfg.direction}: task=toonify takes no editing direction (task=edit "
                          "does)")
    return task


def _number(value, name: str, low: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{name}={value}: expected a number")
    if low is not None and value < low:
        raise ConfigError(f"{name}={value}: expected a number >= {low}")
    return float(value)


def editing_vector(cfg: DictConfig, model, task: str) -> torch.Tensor | None:
    """v = strength · d, (1, n_latent, style_dim) on the model's device, or None (toonify)."""
    if task == "toonify":
        return None
    decoder = model.decoder
    if cfg.direction:
        direction = load_direction(cfg.direction, decoder.n_latent, decoder.style_dim)
    else:
        stored = getattr(model, "editing_w", None)
        if not isinstance(stored, torch.Tensor) or not stored.numel():
            raise ConfigError(f"task=edit: ckpt={cfg.ckpt} stores no editing vector; give direction=FILE (an "
                              "InterFaceGAN .npy/.pt direction)")
        direction = stored.reshape(-1, decoder.n_latent, decoder.style_dim)[0]  # official editing_w[0:1]
    return (_number(cfg.strength, "strength") * direction)[None].to(model.latent_avg)


def _output(cfg: DictConfig, source: Path, kind: str, task: str) -> Path:
    """The output path, checked: never the input, an existing one only with overwrite=true."""
    if cfg.output:
        out = Path(cfg.output)
    else:
        suffix = source.suffix if kind != "folder" else ".mp4"
        out = Path(cfg.paths.output_dir) / f"{source.stem}_{task}{suffix}"
    if out.resolve() == source.resolve():
        raise ConfigError(f"output={out}: it would overwrite the input")
    if kind == "image" and out.suffix.lower() not in IMAGE_EXTENSIONS:
        raise ConfigError(f"output={out}: a photo gives a photo: expected {' '.join(IMAGE_EXTENSIONS)}")
    if kind != "image" and out.suffix and out.suffix.lower() not in VIDEO_EXTENSIONS:
        raise ConfigError(f"output={out}: expected a video ({' '.join(VIDEO_EXTENSIONS)}) or a folder name")
    if out.exists() and not cfg.overwrite:
        raise ConfigError(f"output={out}: exists already; give another output, or overwrite=true to "
                          "replace it")
    return out


def _input_kind(source: Path) -> str:
    if source.is_dir():
        return "folder"
    if source.suffix.lower() in IMAGE_EXTENSIONS:
        return "image"
    if source.suffix.lower() in VIDEO_EXTENSIONS:
        return "video"
    raise DataError(f"input={source}: expected a video ({' '.join(VIDEO_EXTENSIONS)}), a folder of frames or "
                    f"a photo ({' '.join(IMAGE_EXTENSIONS)})")


# -- the fixed crop of mode=frame ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Crop:
    """The region of every frame E sees: `box` (x0, y0, x1, y1) frame pixels (x1, y1 exclusive), resized to
    `size` (h, w), multiples of 8."""

    box: tuple[int, int, int, int]
    size: tuple[int, int]

    def cut(self, frames: torch.Tensor) -> torch.Tensor:
        x0, y0, x1, y1 = self.box
        region = frames[..., y0:y1, x0:x1]
        if region.shape[-2:] == self.size:
            return region
        return F.interpolate(region, size=self.size, mode="bilinear", antialias=True, align_corners=False)


def _multiple(side: float) -> int:
    return max(MULTIPLE, round(side / MULTIPLE) * MULTIPLE)


def crop_of_face(face: Face, height: int, width: int) -> Crop:
    """The official get_video_crop_parameter box: the frame scaled by s (eyes 64 px apart), ±256 px of
    that frame around the eyes' midpoint, clipped, sides down to multiples of 8; → frame pixels."""
    eyes = face.landmarks[36:42].mean(0), face.landmarks[42:48].mean(0)
    scale = EYES_APART / max(float(eyes[1][0] - eyes[0][0]), 1e-6)  # official: the x distance
    cx, cy = (eyes[0] + eyes[1]) / 2 * scale
    w, h = round(width * scale), round(height * scale)
    left, right = max(round(cx - REACH), 0) // 8 * 8, min(round(cx + REACH), w) // 8 * 8
    top, bottom = max(round(cy - REACH), 0) // 8 * 8, min(round(cy + REACH), h) // 8 * 8
    if right - left < MULTIPLE or bottom - top < MULTIPLE:
        raise DataError(f"the face found on the first frame leaves no crop (x {left}..{right}, y "
                        f"{top}..{bottom})")
    box = tuple(min(round(v / scale), limit) for v, limit in
                zip((left, top, right, bottom), (width, height, width, height), strict=True))
    return Crop(box, (bottom - top, right - left))


def crop_of_box(box, height: int, width: int) -> Crop:
    """`box=whole` or `box=[x0, y0, x1, y1]` (frame pixels): that region, sides rounded to multiples of 8."""
    if box == "whole":
        box = (0, 0, width, height)
    values = list(box) if OmegaConf.is_list(box) or isinstance(box, list | tuple) else None
    if (values is None or len(values) != 4 or not all(isinstance(v, int) and not isinstance(v, bool)
                                                      for v in values)):
        raise ConfigError(f"box={box}: expected null (dlib), whole, or [x0, y0, x1, y1] in frame pixels")
    x0, y0, x1, y1 = values
    if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
        raise ConfigError(f"box={values}: expected 0 <= x0 < x1 <= {width} and 0 <= y0 < y1 <= {height} "
                          "(the frame's width and height)")
    return Crop((x0, y0, x1, y1), (_multiple(y1 - y0), _multiple(x1 - x0)))


def border_mask(crop: Crop, height: int, width: int, feather: float, device) -> torch.Tensor:
    """(1, 1, h, w) over the box: 1 inside, falling smoothly to 0 at its edges within the frame; an edge
    on the frame's own edge gets no fall (nothing lies beyond it)."""
    x0, y0, x1, y1 = crop.box
    soft = feather * min(x1 - x0, y1 - y0)
    beyond = soft + 1
    left = x0 - 0.5 - (beyond if x0 == 0 else 0)
    right = x1 - 0.5 + (beyond if x1 == width else 0)
    top = y0 - 0.5 - (beyond if y0 == 0 else 0)
    bottom = y1 - 0.5 + (beyond if y1 == height else 0)
    corners = torch.tensor([[[left, top], [right, top], [right, bottom], [left, bottom]]], device=device)
    origin = torch.tensor([[x0, y0]], dtype=torch.float32, device=device)
    return polygon_mask(corners, torch.tensor([soft], device=device), y1 - y0, x1 - x0, origin)


# -- the run -------------------------------------------------------------------------------------------------
class Editor:
    """StyleGANEX with the options of a run: `frames(batch)` and `aligned(...)` edit uint8 frames."""

    def __init__(self, cfg: DictConfig, model, editing_w: torch.Tensor | None, device: str) -> None:
        self.cfg, self.model, self.editing_w = cfg, model, editing_w
        self.device = torch.device(device)
        self.detector: DlibDetector | None = None
        self.crop: Crop | None = None
        self.face: torch.Tensor | None = None  # mode=frame: the first frame's face E reads w+ from
        self.mask: torch.Tensor | None = None

    def _detector(self) -> DlibDetector:
        if self.detector is None:
            self.detector = DlibDetector(**OmegaConf.to_container(self.cfg.detector))
        return self.detector

    def _tensors(self, frames: list[np.ndarray]) -> torch.Tensor:
        return to_float(torch.from_numpy(np.stack(frames)).to(self.device).permute(0, 3, 1, 2))

    @torch.inference_mode()
    def generate(self, x: torch.Tensor, face: torch.Tensor) -> torch.Tensor:
        image, _ = self.model.generate(x, face, randomize_noise=False, editing_w=self.editing_w,
                                       zero_noise=True)
        return image.clamp(-1, 1)

    # -- mode=frame --------------------------------------------------------------------------------------
    def start(self, first: np.ndarray, source: Path) -> None:
        """The crop and the face of the clip, from its first frame."""
        height, width = first.shape[:2]
        frame = self._tensors([first])
        if self.cfg.box is None:
            faces = self._detector().detect(first)
            if not faces:
                raise DataError(f"input={source}: no face found on the first frame (dlib); give box=whole or "
                                "box=[x0,y0,x1,y1] to edit a region without detection")
            face = max(faces, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))
            self.crop = crop_of_face(face, height, width)
            landmarks = torch.as_tensor(face.landmarks[None], device=self.device)
            self.face = warp_faces(frame, ffhq_transform(landmarks, FACE), FACE)
        else:
            self.crop = crop_of_box(self.cfg.box, height, width)
            self.face = self.model.face_of(self.crop.cut(frame))
        feather = _number(self.cfg.feather, "feather", 0.0)
        self.mask = border_mask(self.crop, height, width, feather, self.device)
        log.info("facezoo-video: crop %s of the %dx%d frames, %dx%d into E", self.crop.box, width, height,
                 self.crop.size[1], self.crop.size[0])

    def frames(self, frames: list[np.ndarray]) -> list[np.ndarray]:
        """mode=frame: a batch of frames edited inside the crop (pasted back, or the r× crop)."""
        batch = self._tensors(frames)
        out = self.generate(self.crop.cut(batch), self.face.expand(len(frames), -1, -1, -1))
        if self.cfg.paste_back:
            x0, y0, x1, y1 = self.crop.box
            patch = F.interpolate(out, size=(y1 - y0, x1 - x0), mode="bilinear", antialias=True,
                                  align_corners=False)
            window = batch[..., y0:y1, x0:x1]
            window.copy_(torch.lerp(window, patch, self.mask))
            out = batch
        return list(to_uint8(out).permute(0, 2, 3, 1).cpu().numpy())

    # -- mode=aligned ------------------------------------------------------------------------------------
    def aligned(self, frames: list[np.ndarray], first_index: int, smoother: LandmarkSmoother | None
                ) -> tuple[list[np.ndarray], int]:
        """mode=aligned: every face of a batch of frames edited in its FFHQ crop and pasted back; → the
        frames and the number of faces."""
        points = []
        for index, frame in enumerate(frames, start=first_index):
            faces = self._detector().detect(frame)
            found = [f.landmarks for f in faces]
            if smoother is not None and faces:
                found = [s for _, s in smoother.update(index, found, [f.box for f in faces])]
            found = np.asarray(found, np.float32).reshape(-1, 68, 2)
            points.append(torch.as_tensor(found, device=self.device))
        batch = self._tensors(frames)
        matrices = [ffhq_transform(p, FACE) for p in points]
        crops = torch.cat([warp_faces(photo[None], m, FACE)
                           for photo, m in zip(batch, matrices, strict=True)])
        step = self.cfg.batch_size
        edited = [self.generate(crops[i:i + step], crops[i:i + step]) for i in range(0, len(crops), step)]
        edited = torch.cat(edited) if edited else crops
        size = edited.shape[-1]  # r·256
        out = []
        for photo, p, faces in zip(batch, points, edited.split([len(p) for p in points]), strict=True):
            pasted = paste_back(photo, faces, ffhq_transform(p, size), p, region="crop") if len(p) else photo
            out.append(to_uint8(pasted).permute(1, 2, 0).cpu().numpy())
        return out, sum(len(p) for p in points)


def _batches(frames: Iterator[np.ndarray], size: int) -> Iterator[list[np.ndarray]]:
    batch: list[np.ndarray] = []
    for frame in frames:
        batch.append(frame)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _run(editor: Editor, cfg: DictConfig, frames: Iterator[np.ndarray], total: int, fps, source: Path,
         write: Callable[[np.ndarray], None]) -> dict:
    """Edit the frames (mode=frame or aligned) batch by batch into `write`; → frames, seconds (and faces),
    and the temporal change of the input and the output (metrics/temporal.py)."""
    start, done, faces = time.perf_counter(), 0, 0
    change = {"input": FrameChange(), "output": FrameChange()}
    smoother = LandmarkSmoother(fps) if cfg.mode == "aligned" and cfg.smooth and total > 1 else None
    with progress(total, f"facezoo-video: {cfg.mode} mode", "frames") as advance:
        for batch in _batches(frames, cfg.batch_size):
            if cfg.mode == "frame":
                if editor.crop is None:
                    editor.start(batch[0], source)
                out = editor.frames(batch)
            else:
                out, found = editor.aligned(batch, done, smoother)
                faces += found
            for frame in out:
                write(frame)
            change["input"].update(np.stack(batch))
            change["output"].update(np.stack(out))
            done += len(batch)
            advance(len(batch), f"{done / max(time.perf_counter() - start, 1e-9):.2f} frames/s")
    seconds = time.perf_counter() - start
    report = {"frames": done, "seconds": seconds, "frames_per_s": done / max(seconds, 1e-9)}
    if done > 1:
        report["frame_change"] = {k: meter.compute() for k, meter in change.items()}
    return report if cfg.mode == "frame" else {**report, "faces": faces}


def edit_video(cfg: DictConfig) -> dict:
    """Edit `cfg.input` with `cfg.ckpt` into the output; → the run's numbers (also printed)."""
    if cfg.mode not in MODES:
        raise ConfigError(f"mode={cfg.mode}: expected frame or aligned")
    if isinstance(cfg.batch_size, bool) or not isinstance(cfg.batch_size, int) or cfg.batch_size < 1:
        raise ConfigError(f"batch_size={cfg.batch_size}: expected a number of frames >= 1")
    if cfg.mode == "aligned" and cfg.box is not None:
        raise ConfigError(f"box={cfg.box}: mode=aligned finds the faces of every frame; box is for "
                          "mode=frame")
    source = Path(cfg.input)
    kind = _input_kind(source)
    if kind == "image":
        first = read_rgb_uint8(source)
        frames, total, fps = iter([first]), 1, None
    else:
        info = video_info(source)
        frames, total, fps = read_frames(source), info.frame_count or 1, info.fps
    device = device_option(str(cfg.device))
    model = load_styleganex(cfg.ckpt, device)
    task = _task(cfg, model)
    out = _output(cfg, source, kind, task)
    editor = Editor(cfg, model, editing_vector(cfg, model, task), device)
    if kind == "image":
        images: list[np.ndarray] = []
        report = _run(editor, cfg, frames, total, FOLDER_FPS, source, images.append)
        write_image(out, images[0])
    else:
        with open_writer(out, fps, audio_from=source if kind == "video" else None) as writer:
            report = _run(editor, cfg, frames, total, fps, source, writer.write)
    report = {"input": str(source), "output": str(out), "task": task, "mode": cfg.mode, **report}
    if editor.crop is not None:
        report["crop"] = list(editor.crop.box)
    stability = ""
    if report.get("frame_change", {}).get("input"):
        ratio = report["frame_change"]["output"] / report["frame_change"]["input"]
        stability = f"; frame-to-frame change output/input {ratio:.2f}"
    print(f"facezoo-video: {task} ({cfg.mode} mode) {source} -> {out}: {report['frames']} frames in "
          f"{report['seconds']:.1f} s, {report['frames_per_s']:.2f} frames/s{stability}")
    return report


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="video")
def main(cfg: DictConfig) -> None:
    run_cli(edit_video, cfg)


if __name__ == "__main__":
    main()
