"""Invert an image into StyleGANEX's W+ × F space, the paper's two-stage inversion: `facezoo-invert
image=PATH ckpt=PATH [output=DIR] [steps=500]` (Hydra, conf/invert.yaml) over the plain function
`invert(cfg)`; the stages are facezoo.models.styleganex_inversion's.

The image is taken as given (official `inversion.py` first rescales the frame so the eyes are 64 px apart and
crops it around the face with dlib: do that beforehand; E takes w+ from the canvas's centred 256², so the
face should be there). Its sides are padded (replicated edges, split evenly) up to the model's multiple (8
for inversion) where the official crops them down; the padding is drawn but left out of the loss, the
outputs and the errors, so every output has the input's size.

`output` (default: the run folder, logs/invert/runs/<time>) gets, each written atomically:
- `encoder.png`, `optimised.png`: the reconstruction of stage 1 (E) and of stage 2 (`steps` steps);
- `latent.pt`: the optimised `Inversion.to_dict()`: `w_plus` (1, n_latent, style_dim) WITH latent_avg, `f`,
  `f_rgb` (or None), `skips` (the fusion layers' inputs, or []), `canvas` (H, W) and `box` (top, left, h, w),
  plus `ckpt`. The image is redrawn with the same checkpoint by `styleganex_inversion.redraw(model, latent)`:
  decoder([w_plus], input_is_latent=True, randomize_noise=False, first_layer_feature=f, first_layer_rgb=f_rgb,
  skip_features=skips or None, fusion=encoder.fusion), average-pooled to the canvas, cropped to the box;
- `metrics.json`: per stage the error against the input (PSNR, SSIM, L2 = MSE in [-1, 1], LPIPS when its
  backbone is found), measured on the written 8-bit images; also printed.
Existing outputs are never replaced unless `overwrite=true`; the input never.

The stage-2 loss is LPIPS (`lpips.net`, official VGG) when its backbone file is found; else L2 + (1 − SSIM),
said on the console (`lpips.required=true` refuses to run instead).
"""

# isort: off
import facezoo.utils.torchvision_shim  # noqa: F401  (first: lets Lightning import torchvision)
# isort: on
import json
import logging
import math
from pathlib import Path

import hydra
import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torchmetrics.functional.image import structural_similarity_index_measure as ssim

from facezoo.checkpoints import load_styleganex, save_checkpoint
from facezoo.cli import CONF_DIR, device_option, run_cli
from facezoo.metrics.image_quality import DATA_RANGE, psnr_ssim_metrics
from facezoo.metrics.lpips import BACKBONES, LPIPS
from facezoo.models.styleganex_inversion import encode, optimise, reconstruction
from facezoo.utils.atomic import write_text
from facezoo.utils.console import progress
from facezoo.utils.errors import ConfigError
from facezoo.utils.image_io import read_rgb_uint8, to_float, to_uint8, uint8_to_tensor, write_image
from facezoo.weights.resolver import KNOWN_WEIGHTS, resolve

log = logging.getLogger("facezoo")

OUTPUTS = ("encoder.png", "optimised.png", "latent.pt", "metrics.json")


def padded(image: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int, int, int]]:
    """(1, 3, h, w) → the canvas with sides up to a multiple (edges replicated, split evenly), and the box."""
    h, w = image.shape[-2:]
    dh, dw = -h % multiple, -w % multiple
    top, left = dh // 2, dw // 2
    return F.pad(image, (left, dw - left, top, dh - top), mode="replicate"), (top, left, h, w)


def lpips_network(cfg: DictConfig) -> LPIPS | None:
    """LPIPS with its backbone (`lpips.weights`, else the resolver's folders), or None when not found."""
    net = str(cfg.lpips.net)
    if net not in BACKBONES:
        raise ConfigError(f"lpips.net={net}: expected one of {', '.join(BACKBONES)}")
    path = resolve(BACKBONES[net], cfg.lpips.weights, required=bool(cfg.lpips.required),
                   option="lpips.weights")
    return None if path is None else LPIPS(net, path)


def errors(image: torch.Tensor, target: torch.Tensor, lpips: LPIPS | None) -> dict[str, float]:
    """PSNR, SSIM, L2 (and LPIPS) of an 8-bit image against the input, both (1, 3, h, w) in [-1, 1]."""
    quality = psnr_ssim_metrics().to(image.device)(image, target)
    # a perfect reconstruction's infinite PSNR is written as null (JSON has no infinity)
    out = {k: float(v) if math.isfinite(v) else None for k, v in quality.items()}
    out["l2"] = float(F.mse_loss(image, target))
    if lpips is not None:
        out["lpips"] = float(lpips.frozen(image, target).mean())
    return out


def _output(cfg: DictConfig) -> Path:
    """The output folder, checked: never over the input, over earlier outputs only with overwrite=true."""
    folder = Path(cfg.output if cfg.output else cfg.paths.output_dir)
    image = Path(cfg.image).resolve()
    if any((folder / name).resolve() == image for name in OUTPUTS):
        raise ConfigError(f"output={folder}: it would overwrite the input {cfg.image}")
    existing = [name for name in OUTPUTS if (folder / name).exists()]
    if existing and not cfg.overwrite:
        raise ConfigError(f"output={folder}: holds {', '.join(existing)} already; give another folder, or "
                          "overwrite=true to replace them")
    return folder


def invert(cfg: DictConfig) -> dict:
    """Invert `cfg.image` with `cfg.ckpt` into `cfg.output`; → metrics.json's content."""
    if isinstance(cfg.steps, bool) or not isinstance(cfg.steps, int) or cfg.steps < 0:
        raise ConfigError(f"steps={cfg.steps}: expected a number of optimisation steps >= 0")
    if isinstance(cfg.lr, bool) or not isinstance(cfg.lr, int | float) or not cfg.lr > 0:
        raise ConfigError(f"lr={cfg.lr}: expected a positive learning rate")
    folder = _output(cfg)
    target = to_float(uint8_to_tensor(read_rgb_uint8(cfg.image)))[None]
    device = device_option(str(cfg.device))
    model = load_styleganex(cfg.ckpt, device)
    lpips = lpips_network(cfg)
    if lpips is None:
        loss_name = "L2 + (1 - SSIM)"
        log.warning("facezoo-invert: LPIPS backbone %s not found: optimising %s instead (lpips.weights=PATH; "
                    "lpips.required=true refuses to run)", KNOWN_WEIGHTS[BACKBONES[cfg.lpips.net]].filename,
                    loss_name)
    else:
        loss_name = f"LPIPS-{cfg.lpips.net}"
        lpips = lpips.to(device)
    target = target.to(device)
    canvas, box = padded(target, model.size_multiple)

    def loss(image: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        if lpips is not None:
            return lpips.frozen(image, goal).sum()  # official: percept(y_hat, y).sum()
        return F.mse_loss(image, goal) + 1 - ssim(image, goal, data_range=DATA_RANGE)

    stages = {"encoder": encode(model, canvas, box)}
    with progress(cfg.steps, f"optimising f and w+ ({loss_name})", "steps") as advance:
        stages["optimised"] = optimise(model, stages["encoder"], target, cfg.steps, loss, cfg.lr, cfg.seed,
                                       advance)
    report = {"image": str(cfg.image), "ckpt": str(cfg.ckpt), "steps": cfg.steps, "loss": loss_name}
    for name, inversion in stages.items():
        with torch.no_grad():
            image = to_uint8(reconstruction(model, inversion))
        write_image(folder / f"{name}.png", image[0])
        report[name] = errors(to_float(image), target, lpips)
    save_checkpoint({**stages["optimised"].to_dict(), "ckpt": str(cfg.ckpt)}, folder / "latent.pt")
    write_text(folder / "metrics.json", json.dumps(report, indent=1))
    print(summary(report, folder))
    return report


def summary(report: dict, folder: Path) -> str:
    """The lines printed at the end: each stage's errors."""
    def line(stage: str) -> str:
        values = report[stage]
        psnr = "inf" if values["psnr"] is None else f"{values['psnr']:.2f}"
        lpips = f", LPIPS {values['lpips']:.4f}" if "lpips" in values else ""
        return f"  {stage:9s} PSNR {psnr} dB, SSIM {values['ssim']:.4f}, L2 {values['l2']:.5f}{lpips}"

    head = f"inverted {report['image']} into {folder} ({report['steps']} steps of {report['loss']})"
    return "\n".join([head, line("encoder"), line("optimised")])


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="invert")
def main(cfg: DictConfig) -> None:
    run_cli(invert, cfg)


if __name__ == "__main__":
    main()
