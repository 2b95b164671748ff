"""Build DFDNet's component dictionaries from HQ aligned faces: `facezoo-dfdnet-dictionary data_dir=...
out=...` (Hydra, conf/dfdnet_dictionary.yaml) over the plain function `build(cfg)`.

The faces of `data_dir` (resized to `image_size`) are streamed in batches through the frozen VGG-19 that
DFDNet encodes with (relu2_2, relu3_4, relu4_4, conv5_4; `vgg19-dcbb9e9d.pth` through the resolver), their
left eye, right eye, nose and mouth are cropped at every scale and clustered by K-means per part and scale
(`models.components.dfdnet_dictionary`; Li et al., ECCV 2020, Sec. 3.1). The part boxes come from
`boxes=template` (faces aligned to the FFHQ five-point template: one set of boxes for all), `landmarks`
(dlib's 68 points, found once per face before the K-means; faces without one are skipped and counted) or
`data` (`data_dir/boxes.json`, as facezoo-synth writes it). `out` is written in the layout its name gives:
`.safetensors`, BasicSR's `.pth`, or the official `DictionaryCenter512/` folder of .npy files.
"""

# isort: off
import facezoo.utils.torchvision_shim  # noqa: F401  (first: lets Lightning import torchvision)
# isort: on
import logging
from collections.abc import Callable

import hydra
import torch
from omegaconf import DictConfig
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from facezoo.cli import CONF_DIR, device_option, run_cli
from facezoo.datamodules.boxes import BOXES_JSON, ComponentBoxes, load_boxes_json
from facezoo.datamodules.folders import ImageFolder
from facezoo.faces.detector import DlibDetector
from facezoo.losses.perceptual import VGG19Features
from facezoo.models.components.dfdnet import VGG_LAYERS
from facezoo.models.components.dfdnet_dictionary import DictionaryBuilder, layout, save_dictionary
from facezoo.models.components.dfdnet_parts import PARTS, SCALES, boxes_from_landmarks, template_boxes
from facezoo.utils.console import progress
from facezoo.utils.errors import ConfigError, DataError

log = logging.getLogger("facezoo")

BOX_SOURCES = ("template", "landmarks", "data")


def _count(cfg: DictConfig, option: str, least: int) -> int:
    value = cfg[option]
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ConfigError(f"{option}={value!r}: expected an integer >= {least}")
    return value


def check_options(cfg: DictConfig) -> None:
    """The options, checked before any face is read."""
    size = _count(cfg, "image_size", 32)
    if size % 32:
        raise ConfigError(f"image_size={size}: expected a multiple of 32 (DFDNet's input contract)")
    for option, least in (("k", 1), ("passes", 0), ("lloyd_passes", 0), ("batch_size", 1), ("num_workers", 0),
                          ("seed", 0)):
        _count(cfg, option, least)
    if cfg.passes + cfg.lloyd_passes < 1:
        raise ConfigError("passes=0 and lloyd_passes=0: expected at least one pass over the faces")
    for option in ("init_size", "limit"):
        if cfg[option] is not None:
            _count(cfg, option, 1)
    width = cfg.width
    if isinstance(width, bool) or not isinstance(width, int | float) or not width > 0:
        raise ConfigError(f"width={width!r}: expected a positive number (1.0: VGG-19's own widths)")
    if width != 1 and (not cfg.vgg.allow_random or cfg.vgg.weights is not None):
        raise ConfigError(f"width={width}: only a random VGG-19 can be narrowed (the VGG-19 file is width "
                          "1.0); expected vgg.allow_random=true and vgg.weights=null, or width=1.0")
    if cfg.boxes not in BOX_SOURCES:
        raise ConfigError(f"boxes={cfg.boxes}: expected one of {', '.join(BOX_SOURCES)}")
    layout(cfg.out)


def _subset(names: list[str], limit: int | None, seed: int) -> list[str]:
    """At most `limit` of `names`: a seeded random subset, in name order."""
    if limit is None or limit >= len(names):
        return names
    chosen = torch.randperm(len(names), generator=torch.Generator().manual_seed(seed))[:limit]
    return [names[i] for i in sorted(chosen.tolist())]


def landmark_boxes(folder: ImageFolder, names: list[str], detector: DlibDetector) -> dict[str, Tensor]:
    """name → (4, 4) DFDNet part boxes from the 68 landmarks of the largest face dlib finds in the image (as
    loaded, at `folder.image_size`); images without a face are left out."""
    table = {}
    with progress(len(names), "finding landmarks", "faces") as advance:
        for name in names:
            image = folder.image(name).permute(1, 2, 0).numpy()
            faces = detector.detect(image)
            if faces:
                face = max(faces, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))
                landmarks = torch.from_numpy(face.landmarks).float()[None]
                table[name] = boxes_from_landmarks(landmarks, image.shape[0])[0]
            advance(1)
    return table


class PartFaces(Dataset):
    """(face (3, S, S) in [-1, 1], its (4, 4) part boxes in pixels) per face of `boxes` (name → boxes)."""

    def __init__(self, folder: ImageFolder, boxes: dict[str, Tensor]) -> None:
        self.folder, self.boxes, self.names = folder, boxes, list(boxes)

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        name = self.names[index]
        return self.folder.image(name).float() / 127.5 - 1, self.boxes[name]


def part_boxes(cfg: DictConfig, folder: ImageFolder, names: list[str]) -> dict[str, Tensor]:
    """name → (4, 4) part boxes of the faces `cfg.boxes` gives boxes for (landmarks: those with a face)."""
    size = cfg.image_size
    if cfg.boxes == "template":
        template = template_boxes(1, size)[0]
        return dict.fromkeys(names, template)
    if cfg.boxes == "data":
        source = folder.root / BOXES_JSON
        table = load_boxes_json(folder.root)
        if table is None:
            raise DataError(f"{source}: not found (boxes=data reads the part boxes from it)")
        boxes = ComponentBoxes(table, frame=None, source=source)
        boxes.check({name: folder.paths[name] for name in names})
        return {name: boxes(name, folder.paths[name], (size, size)) for name in names}
    detector = DlibDetector(landmarks=cfg.detector.landmarks, upsample=cfg.detector.upsample, min_face=0,
                            recall=False)
    table = landmark_boxes(folder, names, detector)
    if len(table) < len(names):
        missing = next(name for name in names if name not in table)
        log.warning("%s: no face found in %d of %d images (e.g. %s); they are skipped", folder.root,
                    len(names) - len(table), len(names), folder.paths[missing].name)
    return table


def vgg_features(cfg: DictConfig, device: torch.device) -> tuple[Callable[[Tensor], list[Tensor]], str]:
    """DFDNet's frozen VGG-19 encoder as `images in [-1, 1] → [relu2_2, relu3_4, relu4_4, conv5_4]`, and the
    name of its weight file ("random" with `vgg.allow_random` and no file, or with `width` != 1: a loud
    warning is logged)."""
    vgg = VGG19Features(list(VGG_LAYERS), cfg.vgg.weights, cfg.vgg.allow_random, width=cfg.width)
    vgg = vgg.eval().to(device)
    name = vgg.weights_file.name if vgg.weights_file is not None else "random"

    def features(images: Tensor) -> list[Tensor]:
        found = vgg(images)
        return [found[layer] for layer in VGG_LAYERS]

    return features, name


def build(cfg: DictConfig) -> dict:
    """Build the dictionaries of `cfg.data_dir` into `cfg.out`; → a report (faces used and skipped, the
    last pass's mean squared distance of a part to its atom per part and scale)."""
    check_options(cfg)
    device = torch.device(device_option(str(cfg.device)))
    folder = ImageFolder(cfg.data_dir, cfg.image_size)
    names = _subset(folder.names, cfg.limit, cfg.seed)
    faces = PartFaces(folder, part_boxes(cfg, folder, names))
    skipped = len(names) - len(faces)
    if len(faces) < cfg.k:
        raise DataError(f"{folder.root}: {len(faces)} usable faces for k={cfg.k} atoms (expected at least k)")
    loader = DataLoader(faces, cfg.batch_size, shuffle=True, num_workers=cfg.num_workers,
                        generator=torch.Generator().manual_seed(cfg.seed))
    features, vgg_file = vgg_features(cfg, device)
    builder = DictionaryBuilder(features, cfg.image_size, cfg.k, cfg.seed, cfg.passes, cfg.lloyd_passes,
                                cfg.init_size, device, cfg.width)

    def on_pass(number: int, inertia: dict) -> None:
        kind = "mini-batch" if number <= cfg.passes else "Lloyd"
        per_scale = ", ".join(f"{s}: {sum(inertia[p, s] for p in PARTS) / len(PARTS):.4g}" for s in SCALES)
        log.info("pass %d/%d (%s): mean squared distance of a part to its atom, per scale: %s",
                 number, builder.total_passes, kind, per_scale)

    what = f"building DFDNet dictionaries from {len(faces)} faces, {builder.total_passes} passes"
    with progress(builder.total_passes * len(faces), what, "faces to read") as advance:
        dictionary = builder.fit(loader, advance, on_pass)
    recipe = {option: str(cfg[option]) for option in ("k", "boxes", "seed", "passes", "lloyd_passes")}
    dictionary.metadata = {**recipe, "faces": str(len(faces)), "vgg": vgg_file}
    out = save_dictionary(dictionary, cfg.out)
    print(f"wrote {out}: {cfg.k} atoms per part and scale from {len(faces)} faces"
          + (f" ({skipped} without a face skipped)" if skipped else ""))
    inertia = {f"{part}.{scale}": kmeans.inertia for (part, scale), kmeans in builder.kmeans.items()}
    return {"out": str(out), "faces": len(faces), "skipped": skipped, "inertia": inertia}


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="dfdnet_dictionary")
def main(cfg: DictConfig) -> None:
    run_cli(build, cfg)


if __name__ == "__main__":
    main()
