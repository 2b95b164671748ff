"""Find and load pretrained network weights, offline, under the file names users already have.

One resolver for every pretrained network in the zoo (VGG for perceptual losses and LPIPS, ArcFace / IR-SE50
for identity, StyleGAN2 priors, DFDNet dictionaries, face parsing). Nothing is downloaded implicitly: the
``url`` and ``sha256`` of a ``WeightSpec`` are used only by ``facezoo-weights download`` / ``verify``
(`facezoo.weights.download`, the only module that opens a URL).

Search order of ``resolve``:

1. the explicit path from the config (if given it must exist: a wrong path is an error, never skipped);
2. the project's pretrained folder: ``$FACEZOO_PRETRAINED``, default ``./pretrained/`` (working directory);
3. torch hub's cache: ``torch.hub.get_dir()/checkpoints/`` (follows ``$TORCH_HOME``, i.e.
   ``$TORCH_HOME/hub/checkpoints/``) and also ``$TORCH_HOME/checkpoints/``;
4. for a file an installed package ships (``WeightSpec.installed_in``: dlib's models in
   ``face_recognition_models``), that package's folder, found without importing it.

A network that should be pretrained but is built without weights must call ``warn_random_init``.

``facezoo-weights`` (``python -m facezoo.weights.resolver``) lists every known file and where it was found;
``facezoo-weights download NAME...`` fetches files into the pretrained folder, ``facezoo-weights verify``
checks the ones present.
Reading the files is `facezoo.weights.state_dict.load_state_dict`.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from facezoo.cli import WORK_ROOT
from facezoo.utils.errors import WeightsNotFoundError

log = logging.getLogger("facezoo")

PRETRAINED_ENV = "FACEZOO_PRETRAINED"


@dataclass(frozen=True)
class WeightSpec:
    """A pretrained weight file the zoo knows about."""

    key: str
    filename: str
    needed_by: str
    description: str
    url: str | None = None  # the official download; fetched only by `facezoo-weights download`
    sha256: str | None = None  # the full sha256 where published (torch hub names carry a prefix of it)
    installed_in: str | None = None  # "package/folder": an installed package shipping the file, searched last


# Sources (each URL as the official project links it):
# - torchvision VGG / AlexNet: torchvision/models/vgg.py and alexnet.py (`model_urls`); full sha256s as
#   recorded by several independent projects, each starting with the prefix of the torch hub name.
# - GFP-GAN: TencentARC/GFPGAN experiments/pretrained_models/README.md (release v0.1.0); no published hashes.
#   The restoration releases: GFPGAN's README and inference_gfpgan.py (GFPGANv1.3/1.4 under release v1.3.0,
#   GFPGANv1 under v0.1.0); GPEN-BFR-512/256: yangxy/GPEN README.md. No published hashes.
# - IR-SE50: yangxy/GPEN README.md (the files it lists for weights/); no published hash.
# - StyleGAN2 FFHQ config-f (rosinality conversion) and faceparsing.pth (zllrunning's BiSeNet, renamed):
#   williamyang1991/StyleGANEX README.md ("original_stylegan", "faceparsing.pth"), Google Drive; no hashes.
# - StyleGANEX releases: williamyang1991/StyleGANEX README.md "Pre-trained Models", the Hugging Face mirror it
#   links (PKUWilliamYang/StyleGANEX, pretrained_models/); no published hashes.
# - DFDNet dictionaries: XPixelGroup/BasicSR scripts/download_pretrained_models.py (Google Drive id of
#   DFDNet_dict_512-f79685f0.pth); no verified hash (see facezoo.weights.download for what is checked then).
# - dlib's 68-point predictor and MMOD detector: dlib.net/files publishes them bz2-compressed only; the
#   uncompressed files are in ageitgey/face_recognition_models (the face-recognition-models package); the
#   sha256s are those of the files that package ships, as many projects record them.
_GFPGAN_RELEASE = "https://github.com/TencentARC/GFPGAN/releases/download/v0.1.0/"
_GFPGAN_V13_RELEASE = "https://github.com/TencentARC/GFPGAN/releases/download/v1.3.0/"
_GPEN_MODELS = "https://public-vigen-video.oss-cn-shanghai.aliyuncs.com/robin/models/"
_FACE_RECOGNITION_MODELS = (
    "https://github.com/ageitgey/face_recognition_models/raw/master/face_recognition_models/models/"
)
_TORCHVISION = "https://download.pytorch.org/models/"
_STYLEGANEX_MODELS = "https://huggingface.co/PKUWilliamYang/StyleGANEX/resolve/main/pretrained_models/"

KNOWN_WEIGHTS: dict[str, WeightSpec] = {
    spec.key: spec
    for spec in (
        WeightSpec(
            "vgg19",
            "vgg19-dcbb9e9d.pth",
            "perceptual losses (RetouchFormer, GFP-GAN, DFDNet)",
            "torchvision VGG19, ImageNet",
            _TORCHVISION + "vgg19-dcbb9e9d.pth",
            "dcbb9e9dad569fff7a846263a77324fc34978fea2bfb039c012d710e1776ae44",
        ),
        WeightSpec(
            "vgg16",
            "vgg16-397923af.pth",
            "LPIPS metric, net='vgg' (backbone)",
            "torchvision VGG16, ImageNet",
            _TORCHVISION + "vgg16-397923af.pth",
            "397923af8e79cdbb6a7127f12361acd7a2f83e06b05044ddf496e83de57a5bf0",
        ),
        WeightSpec(
            "alexnet",
            "alexnet-owt-7be5be79.pth",
            "LPIPS metric, net='alex' (backbone, the default)",
            "torchvision AlexNet, ImageNet",
            _TORCHVISION + "alexnet-owt-7be5be79.pth",
            "7be5be791159472b1fbf3c69796f7cb30dca7ad8466c2df70058c37116cdee02",
        ),
        WeightSpec(
            "arcface_resnet18",
            "arcface_resnet18.pth",
            "GFP-GAN identity loss",
            "ArcFace ResNet-18 as released with GFP-GAN",
            _GFPGAN_RELEASE + "arcface_resnet18.pth",
        ),
        WeightSpec(
            "ir_se50",
            "model_ir_se50.pth",
            "GPEN / StyleGANEX identity loss",
            "InsightFace IR-SE50 (TreB1eN/InsightFace_Pytorch), as used by pSp / StyleGANEX",
            "https://public-vigen-video.oss-cn-shanghai.aliyuncs.com/robin/models/model_ir_se50.pth",
        ),
        WeightSpec(
            "stylegan2_512_gfpgan",
            "StyleGAN2_512_Cmul1_FFHQ_B12G4_scratch_800k.pth",
            "GFP-GAN generative facial prior",
            "StyleGAN2 512px FFHQ (channel multiplier 1) as released with GFP-GAN",
            _GFPGAN_RELEASE + "StyleGAN2_512_Cmul1_FFHQ_B12G4_scratch_800k.pth",
        ),
        WeightSpec(
            "stylegan2_1024_ffhq",
            "stylegan2-ffhq-config-f.pt",
            "GPEN / StyleGANEX StyleGAN2 prior",
            "StyleGAN2 FFHQ config-f 1024px, rosinality/stylegan2-pytorch conversion",
            "https://drive.google.com/file/d/1EM87UquaoQmk17Q8d5kYIAHqu0dkYqdT/view",
        ),
        WeightSpec(
            "gfpgan_component_boxes",
            "FFHQ_eye_mouth_landmarks_512.pth",
            "GFP-GAN facial component discriminators",
            "eye and mouth boxes of the FFHQ 512px images",
            _GFPGAN_RELEASE + "FFHQ_eye_mouth_landmarks_512.pth",
        ),
        WeightSpec(
            "dfdnet_dictionary",
            "DFDNet_dict_512.pth",
            "DFDNet component dictionaries",
            "DFDNet eye/nose/mouth feature dictionaries (csxmli2016/DFDNet)",
            "https://drive.google.com/file/d/1iH00oMsoN_1OJaEQw3zP7_wqiAYMnY79/view",
        ),
        WeightSpec(
            "faceparsing_bisenet",
            "faceparsing.pth",
            "face parsing masks (BiSeNet)",
            "BiSeNet face parser trained on CelebAMask-HQ (zllrunning/face-parsing.PyTorch)",
            "https://drive.google.com/file/d/1jY0mTjVB8njDh6e0LP_2UxuRK3MnjoIR/view",
        ),
        WeightSpec(
            "gfpgan_v1_4",
            "GFPGANv1.4.pth",
            "facezoo-restore weights=GFPGANv1.4.pth",
            "GFP-GAN v1.4 release (GFPGANv1Clean, 512 px)",
            _GFPGAN_V13_RELEASE + "GFPGANv1.4.pth",
        ),
        WeightSpec(
            "gfpgan_v1_3",
            "GFPGANv1.3.pth",
            "facezoo-restore weights=GFPGANv1.3.pth",
            "GFP-GAN v1.3 release (GFPGANv1Clean, 512 px)",
            _GFPGAN_V13_RELEASE + "GFPGANv1.3.pth",
        ),
        WeightSpec(
            "gfpgan_v1",
            "GFPGANv1.pth",
            "facezoo-restore weights=GFPGANv1.pth",
            "GFP-GAN v1 release (the paper's GFPGANv1, 512 px)",
            _GFPGAN_RELEASE + "GFPGANv1.pth",
        ),
        WeightSpec(
            "gpen_bfr_512",
            "GPEN-BFR-512.pth",
            "facezoo-restore weights=GPEN-BFR-512.pth",
            "GPEN blind face restoration release, 512 px",
            _GPEN_MODELS + "GPEN-BFR-512.pth",
        ),
        WeightSpec(
            "gpen_bfr_256",
            "GPEN-BFR-256.pth",
            "facezoo-restore weights=GPEN-BFR-256.pth",
            "GPEN blind face restoration release, 256 px",
            _GPEN_MODELS + "GPEN-BFR-256.pth",
        ),
        WeightSpec(
            "styleganex_inversion",
            "styleganex_inversion.pt",
            "facezoo-invert ckpt=styleganex_inversion.pt; StyleGANEX sr's encoder_init",
            "StyleGANEX inversion encoder + StyleGAN2 FFHQ decoder (1024 px)",
            _STYLEGANEX_MODELS + "styleganex_inversion.pt",
        ),
        WeightSpec(
            "styleganex_sr",
            "styleganex_sr.pt",
            "facezoo-restore weights=styleganex_sr.pt",
            "StyleGANEX face super-resolution, x4 to x48 (1024 px output)",
            _STYLEGANEX_MODELS + "styleganex_sr.pt",
        ),
        WeightSpec(
            "styleganex_sr32",
            "styleganex_sr32.pt",
            "facezoo-restore weights=styleganex_sr32.pt",
            "StyleGANEX face super-resolution, x32 only (1024 px output)",
            _STYLEGANEX_MODELS + "styleganex_sr32.pt",
        ),
        WeightSpec(
            "dlib_landmarks68",
            "shape_predictor_68_face_landmarks.dat",
            "face landmarks of facezoo-restore (facezoo.faces.detector)",
            "dlib's 68-point shape predictor (iBUG 300-W), as face-recognition-models 0.3.0 ships it",
            _FACE_RECOGNITION_MODELS + "shape_predictor_68_face_landmarks.dat",
            "fbdc2cb80eb9aa7a758672cbfdda32ba6300efe9b6e6c7a299ff7e736b11b92f",
            "face_recognition_models/models",
        ),
        WeightSpec(
            "dlib_face_descriptor",
            "dlib_face_recognition_resnet_model_v1.dat",
            "the identity distance of facezoo-compare (facezoo.metrics.face_descriptor)",
            "dlib's ResNet face descriptor (128-d), as face-recognition-models 0.3.0 ships it",
            _FACE_RECOGNITION_MODELS + "dlib_face_recognition_resnet_model_v1.dat",
            "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
            "face_recognition_models/models",
        ),
        WeightSpec(
            "dlib_mmod_detector",
            "mmod_human_face_detector.dat",
            "face detection of facezoo-restore (detector.model=cnn, recall retries)",
            "dlib's MMOD CNN face detector, as face-recognition-models 0.3.0 ships it",
            _FACE_RECOGNITION_MODELS + "mmod_human_face_detector.dat",
            "4cb19393e2fbaf2b1609a9319ad5386618c886a6234ec1b971f3e87c85d87fe6",
            "face_recognition_models/models",
        ),
    )
}


def pretrained_dir() -> Path:
    """The project's pretrained folder: ``$FACEZOO_PRETRAINED`` or ``./pretrained`` of the working directory
    (never the package's location: an installed wheel has no pretrained folder)."""
    env = os.environ.get(PRETRAINED_ENV)
    return Path(env).expanduser() if env else WORK_ROOT / "pretrained"


def search_dirs() -> list[Path]:
    """The folders ``resolve`` searches after the explicit path, in order, without duplicates."""
    dirs = [pretrained_dir(), Path(torch.hub.get_dir()).expanduser() / "checkpoints"]
    torch_home = os.environ.get("TORCH_HOME")
    if torch_home:
        dirs.append(Path(torch_home).expanduser() / "checkpoints")
    unique: list[Path] = []
    for folder in dirs:
        if folder not in unique:
            unique.append(folder)
    return unique


def _package_dirs(spec: WeightSpec) -> list[Path]:
    """[the folder of ``spec.installed_in``] when that package is installed (found, not imported), else []."""
    if spec.installed_in is None:
        return []
    package, _, folder = spec.installed_in.partition("/")
    found = importlib.util.find_spec(package)
    if found is None or not found.submodule_search_locations:
        return []
    return [Path(next(iter(found.submodule_search_locations))) / folder]


def _spec_for(key_or_filename: str) -> WeightSpec:
    if key_or_filename in KNOWN_WEIGHTS:
        return KNOWN_WEIGHTS[key_or_filename]
    for spec in KNOWN_WEIGHTS.values():
        if spec.filename == key_or_filename:
            return spec
    return WeightSpec(key_or_filename, Path(key_or_filename).name, "this model", "")


def resolve(
    key_or_filename: str,
    explicit: str | os.PathLike | None = None,
    required: bool = True,
    option: str | None = None,
) -> Path | None:
    """Return the path of a pretrained weight file (a ``KNOWN_WEIGHTS`` key or a bare file name).

    ``explicit``, when given, must exist (a file, or a folder holding the file); otherwise the pretrained
    folder and torch hub's cache are searched. Missing + ``required`` raises ``WeightsNotFoundError``;
    missing + not required returns None. ``option`` names the config option that takes the path, for the
    error message.
    """
    spec = _spec_for(key_or_filename)
    how = f"pass its path with {option}" if option else "pass its path in the model's weights-path option"
    if explicit is not None and str(explicit) != "":
        path = Path(explicit).expanduser()
        if path.is_dir():
            path = path / spec.filename
        if not path.is_file():
            raise WeightsNotFoundError(
                f"Pretrained weights {spec.filename} (needed by {spec.needed_by}): the given path {path} "
                f"does not exist; fix the path or remove the option to search {pretrained_dir()}/"
            )
        return path
    folders = search_dirs() + _package_dirs(spec)
    for folder in folders:
        candidate = folder / spec.filename
        if candidate.is_file():
            return candidate
    if not required:
        return None
    fetch = f": `facezoo-weights download {spec.key}` fetches it" if spec.key in KNOWN_WEIGHTS else ""
    raise WeightsNotFoundError(
        f"Pretrained weights {spec.filename} (needed by {spec.needed_by}) not found; searched "
        f"{', '.join(str(f) for f in folders)}. Put the file in {pretrained_dir()}/ or {how} "
        f"(nothing is downloaded implicitly{fetch})."
    )


def warn_random_init(name: str) -> None:
    """Log, loudly, that a network meant to be pretrained runs with random weights."""
    log.warning(
        "!!! %s is RANDOMLY INITIALISED: no pretrained weights were loaded. Its outputs are meaningless "
        "for paper results (fine for tests and smoke runs only). !!!",
        name,
    )


def _table() -> list[dict]:
    rows = []
    for spec in KNOWN_WEIGHTS.values():
        found = resolve(spec.key, required=False)
        rows.append({**asdict(spec), "found": str(found) if found else None})
    return rows


def main(argv: list[str] | None = None) -> int:
    """List every known pretrained file, what needs it, and where it was found (or 'missing')."""
    parser = argparse.ArgumentParser(
        prog="facezoo-weights",
        description="List the pretrained weight files facezoo knows and where they were found. "
        "Nothing is downloaded unless you run the download command.",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    commands = parser.add_subparsers(dest="command", title="commands")
    fetch = commands.add_parser("download", help="fetch known files from their official URLs (or "
                                "$FACEZOO_WEIGHTS_MIRROR) into the pretrained folder, resumable, verified")
    fetch.add_argument("names", nargs="+", metavar="NAME", help="keys or file names of the listing, or all")
    commands.add_parser("verify", help="check the sha256 (or, without one, that it loads) of every known "
                        "file present; exit 2 if any fails")
    args = parser.parse_args(argv)
    if args.command:
        from facezoo.weights.download import command  # the only module that opens a URL

        return command(args)
    rows = _table()
    if args.json:
        print(json.dumps({"search_dirs": [str(d) for d in search_dirs()], "weights": rows}, indent=2))
        return 0
    print("Searched: " + ", ".join(str(d) for d in search_dirs()))
    headers = ("key", "file", "needed by", "status")
    lines = [
        (r["key"], r["filename"], r["needed_by"], f"found: {r['found']}" if r["found"] else "missing")
        for r in rows
    ]
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(headers[:3])]
    for line in (headers, *lines):
        print("  ".join(cell.ljust(w) for cell, w in zip(line[:3], widths, strict=True)) + "  " + line[3])
    missing = sum(r["found"] is None for r in rows)
    print(f"{len(rows) - missing} found, {missing} missing. Put missing files in {pretrained_dir()}/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
