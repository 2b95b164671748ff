"""Restore the faces of whole photos: align each face as the model was trained (`model.alignment`), restore
the crops of several photos together in batches, paste them back without seams.

`FaceRestorer.restore(images, landmarks)` takes photos as (H, W, 3) uint8 RGB arrays and, per photo, the
(F, 68, 2) landmarks of its faces (from the detector, or smoothed over time for videos), and returns the
restored photos (upscaled by `upscale`) and the aligned input and restored crops. Only the crops go through
the model; the rest of a photo is kept (bicubic when upscaled).

`FaceRestorer.seconds` adds up the time of each stage (`STAGES`): align (the photos and landmarks to the
device, the alignment transforms, the warps), restore (the model), paste (paste-back and the photos back as
uint8 arrays); on CUDA each stage ends with a synchronisation, so its time is its own.
"""

import time
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from facezoo.faces.align import apply_affine, ffhq_transform, template_transform, warp_faces
from facezoo.faces.inference import prepare
from facezoo.faces.landmarks import five_points
from facezoo.faces.paste import paste_back
from facezoo.utils.errors import ConfigError
from facezoo.utils.image_io import to_float, to_uint8, uint8_to_tensor

DEFAULT_CROP = 512  # the crop size of models that take any size (the FFHQ / facexlib resolution)
STAGES = ("align", "restore", "paste")


@dataclass
class Restored:
    image: np.ndarray  # (H·upscale, W·upscale, 3) uint8
    crops: torch.Tensor  # (F, 3, s, s) the aligned input faces, [-1, 1]
    restored: torch.Tensor  # (F, 3, s, s) the model's output, [-1, 1]


class FaceRestorer:
    def __init__(self, model, alignment: str | None = None, batch_size: int = 8, upscale: int = 1,
                 color_match: bool = False, precision: str = "fp32", device: str = "cpu",
                 size: int | None = None, region: str = "hull", channels_last: bool = False,
                 compile: bool = False) -> None:
        """`size`: the crops' side (default: the model's own size, else DEFAULT_CROP); `region`: the pasted
        area, "hull" (the face hull of the landmarks) or "crop" (the whole aligned square, as facexlib);
        `precision`, `channels_last`, `compile`: how the model runs (`faces.inference.prepare`)."""
        alignment = alignment or model.alignment
        if alignment not in ("template", "ffhq"):
            raise ConfigError(
                f"alignment={alignment}: {type(model).__name__} is not a face restorer with a known "
                "alignment; give alignment=template (GFP-GAN/GPEN style) or alignment=ffhq"
            )
        if batch_size < 1 or int(upscale) != upscale or upscale < 1:
            raise ConfigError(f"batch_size={batch_size}, upscale={upscale}: expected positive integers")
        self.model, self.alignment, self.batch_size = model.to(device).eval(), alignment, batch_size
        self.upscale, self.color_match, self.device = int(upscale), color_match, torch.device(device)
        self.region = region
        self.size = size or model.native_size or DEFAULT_CROP
        model.check_image_size(self.size, "crop_size")
        self.run = prepare(model, device, precision, channels_last, compile)
        self.seconds = dict.fromkeys(STAGES, 0.0)

    def take_seconds(self) -> dict[str, float]:
        """The seconds spent per stage since the last call (or since construction); the counts restart."""
        seconds, self.seconds = self.seconds, dict.fromkeys(STAGES, 0.0)
        return seconds

    @contextmanager
    def _timed(self, stage: str):
        start = time.perf_counter()
        yield
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.seconds[stage] += time.perf_counter() - start

    def matrices(self, landmarks: torch.Tensor) -> torch.Tensor:
        """(F, 68, 2) landmarks in image pixels → (F, 2, 3) image-to-crop transforms of the alignment."""
        if self.alignment == "ffhq":
            return ffhq_transform(landmarks, self.size)
        points5 = torch.as_tensor(five_points(landmarks.cpu().numpy())).to(landmarks)
        return template_transform(points5, self.size)

    def _restore_crops(self, crops: torch.Tensor, landmarks: torch.Tensor) -> torch.Tensor:
        """The model's output for the aligned `crops`, with what it takes from their `landmarks` (crop
        pixels, `landmark_inputs`: DFDNet's part boxes), `batch_size` faces at a time."""
        out = []
        for start in range(0, len(crops), self.batch_size):
            part = slice(start, start + self.batch_size)
            inputs = self.model.landmark_inputs(landmarks[part], self.size)
            out.append(self.run(crops[part], **inputs)["image"])
        return torch.cat(out) if out else crops

    def restore(self, images: list[np.ndarray], landmarks: list[np.ndarray]) -> list[Restored]:
        """The photos with their faces restored; the faces of all photos go through the model together."""
        with self._timed("align"):
            photos = [to_float(uint8_to_tensor(image).to(self.device)) for image in images]
            points = [torch.as_tensor(np.asarray(lm, np.float32).reshape(-1, 68, 2), device=self.device)
                      for lm in landmarks]
            matrices = [self.matrices(p) if len(p) else p.new_zeros(0, 2, 3) for p in points]
            crops = [self._crops(photo, m) for photo, m in zip(photos, matrices, strict=True)]
        with self._timed("restore"):
            in_crops = torch.cat([apply_affine(m, p) for m, p in zip(matrices, points, strict=True)])
            restored = self._restore_crops(torch.cat(crops), in_crops).split([len(c) for c in crops])
        results = []
        with self._timed("paste"):
            for photo, m, p, crop, out in zip(photos, matrices, points, crops, restored, strict=True):
                whole = paste_back(photo, out, m, p, self.upscale, self.color_match, self.region)
                results.append(Restored(to_uint8(whole).permute(1, 2, 0).cpu().numpy(), crop, out))
        return results

    def _crops(self, photo: torch.Tensor, matrices: torch.Tensor) -> torch.Tensor:
        if not len(matrices):
            return photo.new_zeros(0, 3, self.size, self.size)
        return warp_faces(photo[None], matrices, self.size)
