"""StyleGANEX sketch-to-face and mask-to-face: `facezoo-translate input=PATH ckpt=PATH [styles=N]
[output=DIR]` (Hydra, conf/translate.yaml) over the plain function `translate(cfg)`; and the parsing
agreement of a mask-to-face run on its synthetic test split, `facezoo-translate ckpt=RUN miou=true`
(`agreement(cfg)`).

`input`: a file or a folder of them (its images, not its sub-folders), taken as the official
image_translation.py takes them: a sketch (sketch2face: any image, its luminance in [0, 1], dark lines on
white) or a parsing map (mask2face: an 8-bit label PNG, values 0..18 in the CelebAMask-HQ order of
datamodules/face_labels.py). `from_photo=true` (sketch2face): the input is a photo, turned into its XDoG
sketch first (datamodules/sketch.py, written as <name>_input.png). Sides that are not multiples of 8 are
padded (edges replicated) and the padding cut off again, so every output has the input's size.

`styles=N` (official --number, default 4): N faces per input, each with its own random style (the codes of
the model's latent_mask from 0.7 · mapping(z), z ~ N(0, I) drawn from `seed`: official multi-modal
inference), written <name>_<i>.png; `styles=0`: one face, <name>.png, the mean style (latent_avg). The
network runs in eval mode (see src/models/styleganex.py: the official runs it in train() mode).

`miou=true`: the model translates the test split of its own data (the run's stored datamodule, or
`datamodule=`), with each target's style as evaluation does (`style`) and with one random style per face
(`random`); a small parser trained on rendered faces (models/face_parser.py, `parser_steps` batches) parses
the outputs at the decoder's size, and ParsingIoU (metrics/parsing_iou.py) compares them with the input maps
over the classes the renderer draws. The parser's own mIoU on the test targets is the ceiling (`parser`).
Printed and written to `output`/miou.json.
"""

# isort: off
import facezoo.utils.torchvision_shim  # noqa: F401  (first: lets Lightning import torchvision)
# isort: on
import json
import logging
from pathlib import Path

import hydra
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf

from facezoo.checkpoints import load_model, open_model_file
from facezoo.cli import CONF_DIR, device_option, run_cli
from facezoo.datamodules.face_labels import CELEBAMASK_LABELS
from facezoo.datamodules.sketch import pencil_sketch
from facezoo.datamodules.translation import parsing_input, parsing_picture, read_parsing, sketch_picture
from facezoo.metrics.parsing_iou import ParsingIoU
from facezoo.models.face_parser import PARSER_SEED, RENDERED, parse, train_face_parser
from facezoo.utils.atomic import write_text
from facezoo.utils.errors import ConfigError
from facezoo.utils.image_io import list_images, read_rgb_uint8, to_float, uint8_to_tensor, write_image
from facezoo.utils.instantiate import instantiate
from facezoo.utils.targets import check_targets

log = logging.getLogger("facezoo")

STYLEGANEX = "facezoo.models.styleganex.StyleGANEX"
TASKS = ("sketch2face", "mask2face")
MULTIPLE = 8  # E's input sides


def load_translator(ckpt: str, device: str):
    """The StyleGANEX translation model of `ckpt` (a run or an official styleganex_{sketch,mask}2face.pt)."""
    file = open_model_file(ckpt, option="ckpt")
    model_cfg = file.model_config()
    if model_cfg.get("_target_") != STYLEGANEX or model_cfg.get("task") not in TASKS:
        what = model_cfg.get("task") if model_cfg.get("_target_") == STYLEGANEX else model_cfg.get("_target_")
        raise ConfigError(f"ckpt={file.path}: a {what} model; expected a StyleGANEX sketch2face or mask2face "
                          "one (a model=styleganex_{sketch2face,mask2face} run or an official "
                          "styleganex_*2face.pt)")
    return file, load_model(file, device)


def input_picture(path: Path, task: str, from_photo: bool) -> torch.Tensor:
    """The label map's picture (1, 3, H, W) in [-1, 1]: what the model translates (translation.py)."""
    if task == "mask2face":
        return to_float(parsing_picture(torch.from_numpy(read_parsing(path).copy())))[None]
    image = to_float(uint8_to_tensor(read_rgb_uint8(path)))[None]
    return sketch_picture(1 - pencil_sketch(image)) if from_photo else image


def _outputs(cfg: DictConfig, inputs: list[Path]) -> tuple[Path, dict[Path, list[Path]]]:
    """The output folder and each input's output files, checked: never over an input, over earlier outputs
    only with overwrite=true."""
    folder = Path(cfg.output if cfg.output else cfg.paths.output_dir)
    n = int(cfg.styles)
    names = {p: [f"{p.stem}_{i}.png" for i in range(n)] if n else [f"{p.stem}.png"] for p in inputs}
    if cfg.from_photo:
        names = {p: [*files, f"{p.stem}_input.png"] for p, files in names.items()}
    files = {p: [folder / name for name in found] for p, found in names.items()}
    given = {p.resolve() for p in inputs}
    clash = [f for found in files.values() for f in found if f.resolve() in given]
    if clash:
        raise ConfigError(f"output={folder}: it would overwrite the input {clash[0]}")
    existing = [f.name for found in files.values() for f in found if f.exists()]
    if existing and not cfg.overwrite:
        raise ConfigError(f"output={folder}: holds {existing[0]} already; give another folder, or "
                          "overwrite=true")
    return folder, files


def translate(cfg: DictConfig) -> list[Path]:
    """Translate `cfg.input` (a file or a folder) with `cfg.ckpt` into `cfg.output`; → the files written."""
    if cfg.get("miou"):
        return agreement(cfg)
    if OmegaConf.is_missing(cfg, "input") or not cfg.get("input"):
        raise ConfigError("input is missing: give a sketch or parsing map (from_photo=true: a photo) or a "
                          "folder of them")
    if isinstance(cfg.styles, bool) or not isinstance(cfg.styles, int) or cfg.styles < 0:
        raise ConfigError(f"styles={cfg.styles}: expected a number of random styles >= 0 (0: the mean style)")
    source = Path(cfg.input)
    if not source.exists():
        raise ConfigError(f"input={source}: no such file or folder")
    inputs = list_images(source) if source.is_dir() else [source]
    if not inputs:
        raise ConfigError(f"input={source}: no images in the folder")
    device = device_option(str(cfg.device))
    _, model = load_translator(cfg.ckpt, device)
    if cfg.from_photo and model.task != "sketch2face":
        raise ConfigError("from_photo=true makes sketches of photos, for a sketch2face model; this is "
                          "mask2face: give parsing maps (8-bit label PNGs, values 0..18)")
    folder, files = _outputs(cfg, inputs)
    generator = torch.Generator().manual_seed(int(cfg.seed))
    written = []
    for path in inputs:
        picture = input_picture(path, model.task, bool(cfg.from_photo)).to(device)
        h, w = picture.shape[-2:]
        dh, dw = -h % MULTIPLE, -w % MULTIPLE
        canvas = F.pad(picture, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2), mode="replicate")
        n = int(cfg.styles)
        inject = model.random_styles(n, generator) if n else None
        styles = {"inject": inject} if n else {}
        out = model.restore(canvas.expand(max(n, 1), -1, -1, -1), **styles)["image"]
        out = out[..., dh // 2 : dh // 2 + h, dw // 2 : dw // 2 + w]
        targets = files[path]
        for image, target in zip(out, targets, strict=False):
            write_image(target, image.clamp(-1, 1))
        if cfg.from_photo:
            write_image(targets[-1], picture[0])
        written += targets
    print(f"translated {len(inputs)} input(s) with {cfg.ckpt} into {folder} ({len(written)} files)")
    return written


def agreement(cfg: DictConfig) -> dict:
    """mIoU of the parsed outputs vs the input parsing maps on the test split (module docstring)."""
    device = device_option(str(cfg.device))
    file, model = load_translator(cfg.ckpt, device)
    if model.task != "mask2face":
        raise ConfigError("miou=true measures the parsing agreement of a mask2face model (parsing maps in)")
    data_cfg = cfg.get("datamodule") or file.datamodule_config()
    if data_cfg is None:
        raise ConfigError(f"ckpt={file.path}: no stored data config (a release): give datamodule=...")
    check_targets(data_cfg, "datamodule")
    folder = Path(cfg.output if cfg.output else cfg.paths.output_dir)
    datamodule = instantiate(data_cfg, "datamodule", manifest_dir=str(folder))
    datamodule.prepare_data()
    datamodule.setup("test")
    render = int(data_cfg.image_size)
    side = round(render * min(1.0, model.scale))  # the outputs at the decoder's own size (64 of 256 px)
    print(f"training the face parser ({cfg.parser_steps} batches)")
    parser = train_face_parser(size=side, render_size=render, steps=int(cfg.parser_steps),
                               seed=PARSER_SEED).to(device)
    scores = {k: ParsingIoU(len(CELEBAMASK_LABELS), RENDERED).to(device) for k in ("parser", "style",
                                                                                  "random")}
    generator = torch.Generator().manual_seed(int(cfg.seed))
    for batch in datamodule.test_dataloader():
        batch = datamodule.on_after_batch_transfer({k: v.to(device) for k, v in batch.items()}, 0)
        lq, hq = batch["lq"], batch["hq"]
        labels = F.interpolate(parsing_input(lq), size=side, mode="nearest").argmax(1)
        outputs = {"parser": hq, "style": model.restore(lq, style=hq)["image"],
                   "random": model.restore(lq, inject=model.random_styles(len(lq), generator))["image"]}
        for name, images in outputs.items():
            scores[name].update(parse(parser, F.adaptive_avg_pool2d(images.clamp(-1, 1), side)), labels)
    result = {name: float(metric.compute()) for name, metric in scores.items()}
    result["classes"] = [CELEBAMASK_LABELS[c] for c in RENDERED]
    write_text(folder / "miou.json", json.dumps(result, indent=1))
    print(f"parsing agreement (mIoU over {len(RENDERED)} rendered classes) of {cfg.ckpt}: "
          f"target style {result['style']:.4f}, random style {result['random']:.4f}; "
          f"the parser on the targets (ceiling) {result['parser']:.4f}")
    return result


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="translate")
def main(cfg: DictConfig) -> None:
    run_cli(translate, cfg)


if __name__ == "__main__":
    main()
