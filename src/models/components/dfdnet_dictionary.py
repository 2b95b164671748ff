"""DFDNet's component dictionaries: what they hold, how they are stored, how they are built by K-means (Li et
al., "Blind Face Restoration via Deep Multi-scale Component Dictionaries", ECCV 2020, Sec. 3.1).

A dictionary holds, for each part (left eye, right eye, nose, mouth) and each VGG-19 feature scale
(256/128/64/32 at 512 px), K atoms of shape (C, a, a): C = 128/256/512/512 channels, a = the part's atom side
at that scale (`dfdnet_parts.atom_size`: 40/40/25/55 at 256 ... 5/5/3/6 at 32 for 512 px faces). The paper
clusters the part features of 10,000 FFHQ faces into K classes and keeps the centres; the official
dictionaries hold K = 512 atoms per part and scale (DictionaryCenter512/*_center.npy have 512 rows; the
paper's text gives no K).

Files (`load_dictionary` / `save_dictionary` pick the layout from the path):
- `*.safetensors` (facezoo's): tensors `{part}.{scale}` (K, C, a, a) float32, metadata `format`, `image_size`
  and `width` (the VGG's width, `dfdnet_parts.channels`: 1.0 but in tiny test configs; absent: 1.0);
- a folder (the official `DictionaryCenter512/`): `{part}_{scale}_center.npy`, each a (K, C·a·a) float array;
- `*.pth` / `*.pt` (BasicSR's `DFDNet_dict_512-*.pth`): `{'256': {'left_eye': (K, 128, 40, 40), ...}, ...}`,
  read with `torch.load(weights_only=True)`.
The official and BasicSR files carry no image size nor width: they are read as 512 px dictionaries of width
1.0 unless told so.

`DictionaryAtoms` is what the files hold; the network keeps its atoms in `dfdnet.ComponentDictionary`
buffers (`ComponentDictionary(load_dictionary(path).atoms)`).

Building (`DictionaryBuilder`): the part crops of the VGG features of HQ faces at every scale, taken as the
network's DFT blocks take a part to match it against the atoms (`dfdnet.part_cells`: the official
`box // stride` slice of the feature, bilinearly resized to the atom size), then one K-means per part and
scale, streamed: samples are never all held. The centres are seeded on the first `init_size` samples (3·K by
default, as scikit-learn's MiniBatchKMeans): the best of 3 greedy k-means++ seedings, by their squared
distances to those samples. Then come `passes` passes of mini-batch K-means (Sculley 2010: each centre moves
towards its new samples at the rate 1 / its sample count) and `lloyd_passes` exact Lloyd passes (each pass
sums every centre's samples; the centre becomes their mean: the atoms end as K-means centres, the means of
their clusters). A centre left without samples in a Lloyd pass keeps its place. Every pass computes the
features of the whole data once, for all 16 K-means together. Assignments and sums are matrix products, so
a build on a GPU is deterministic too: the same seed and data order give the same atoms.
"""

import math
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from facezoo.models.components.dfdnet import part_cells
from facezoo.models.components.dfdnet_parts import PARTS, REFERENCE_SIZE, SCALES, atom_size, channels, stride
from facezoo.utils.atomic import atomic_file
from facezoo.utils.errors import DataError
from facezoo.weights.state_dict import first_line, load_state_dict

FORMAT = "facezoo-dfdnet-dictionary"
OFFICIAL_K = 512  # rows of the official DictionaryCenter512/*_center.npy
TORCH_SUFFIXES = (".pth", ".pt")

Key = tuple[str, int]  # (part, scale)


def atom_shape(
    part: str, scale: int, image_size: int = REFERENCE_SIZE, width: float = 1.0
) -> tuple[int, int, int]:
    """(C, a, a) of `part`'s atoms at feature scale `scale` (256/128/64/32) for `image_size` faces and a VGG
    `width` times as wide as VGG-19."""
    side = atom_size(part, SCALES.index(scale), image_size)
    return channels(scale, width), side, side


def _faces(image_size: int, width: float) -> str:
    return f"{image_size} px faces" + (f", width {width}" if width != 1 else "")


def _expected(scale: int, image_size: int, width: float) -> str:
    sides = {p: ", ".join(map(str, atom_shape(p, scale, image_size, width))) for p in PARTS}
    shapes = ", ".join(f"{p} (K, {shape})" for p, shape in sides.items())
    return f"expected {shapes} for {_faces(image_size, width)}"


class DictionaryAtoms:
    """`atoms[part][scale]`: (K, C, a, a) float32 tensors for every part in `PARTS` and scale in `SCALES`, of
    `image_size` faces and a VGG of `width` (C = `channels(scale, width)`); `metadata` (str → str) travels
    with the safetensors file. A missing part or scale, or an atom of the wrong shape, is a DataError naming
    `source` (the file it came from)."""

    def __init__(
        self,
        atoms: Mapping[str, Mapping[int, Tensor]],
        image_size: int = REFERENCE_SIZE,
        metadata: Mapping[str, str] | None = None,
        source: str | os.PathLike = "DFDNet dictionary",
        width: float = 1.0,
    ) -> None:
        self.image_size, self.width, self.metadata = int(image_size), float(width), dict(metadata or {})
        self.atoms: dict[str, dict[int, Tensor]] = {}
        for part in PARTS:
            for scale in SCALES:
                found = atoms.get(part, {}).get(scale)
                if found is None:
                    expected = _expected(scale, self.image_size, self.width)
                    raise DataError(f"{source}: no {part} atoms at scale {scale} ({expected})")
                shape = atom_shape(part, scale, self.image_size, self.width)
                fits = torch.is_tensor(found) and found.ndim == 4 and found.shape[1:] == shape and len(found)
                if not fits:
                    got = tuple(found.shape) if torch.is_tensor(found) else type(found).__name__
                    raise DataError(
                        f"{source}: {part} atoms at scale {scale} are {got}, expected (K, "
                        f"{', '.join(map(str, shape))}) for {_faces(self.image_size, self.width)}"
                    )
                self.atoms.setdefault(part, {})[scale] = found.detach().float().contiguous()

    def k(self, part: str, scale: int) -> int:
        return len(self.atoms[part][scale])

    def items(self) -> Iterable[tuple[str, int, Tensor]]:
        """(part, scale, atoms) in `PARTS` × `SCALES` order."""
        return ((part, scale, self.atoms[part][scale]) for part in PARTS for scale in SCALES)


def random_dictionary(
    k: int, image_size: int = REFERENCE_SIZE, seed: int = 0, width: float = 1.0
) -> "DictionaryAtoms":
    """`k` seeded standard-normal atoms per part and scale: for benchmarks and tests only (the cost of the
    real thing, none of its meaning)."""
    generator = torch.Generator().manual_seed(seed)
    atoms = {part: {scale: torch.randn(k, *atom_shape(part, scale, image_size, width), generator=generator)
                    for scale in SCALES} for part in PARTS}
    return DictionaryAtoms(atoms, image_size, {"random": str(seed)}, "random dictionary", width)


# --- files --------------------------------------------------------------------------------------------------


def read_safetensors(path: str | os.PathLike) -> DictionaryAtoms:
    """facezoo's file: tensors `{part}.{scale}`, metadata `format` = FORMAT, `image_size` and `width` (1.0
    when absent)."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: DFDNet dictionary file not found")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = dict(f.metadata() or {})
            tensors = {key: f.get_tensor(key) for key in f.keys()}
    except Exception as err:  # safetensors raises its own error types for corrupt files
        raise DataError(f"{path}: not a readable safetensors file ({first_line(err)})") from None
    try:
        width = float(metadata.get("width", "1.0"))
    except ValueError:
        width = math.nan
    if metadata.get("format") != FORMAT or not metadata.get("image_size", "").isdigit() or not width > 0:
        raise DataError(
            f"{path}: not a facezoo DFDNet dictionary (expected metadata format={FORMAT}, image_size and a "
            f"positive width, found {metadata or 'none'})"
        )
    metadata.pop("width", None)
    atoms: dict[str, dict[int, Tensor]] = {}
    for key, value in tensors.items():
        part, _, scale = key.partition(".")
        if part not in PARTS or not scale.isdigit() or int(scale) not in SCALES:
            expected = "expected '{part}.{scale}', e.g. 'nose.64'"
            raise DataError(f"{path}: unexpected tensor '{key}' ({expected})")
        atoms.setdefault(part, {})[int(scale)] = value
    return DictionaryAtoms(atoms, int(metadata.pop("image_size")), metadata, path, width)


def write_safetensors(dictionary: DictionaryAtoms, path: str | os.PathLike) -> Path:
    from safetensors.torch import save

    metadata = {**dictionary.metadata, "format": FORMAT, "image_size": str(dictionary.image_size),
                "width": str(dictionary.width)}
    tensors = {f"{part}.{scale}": atoms for part, scale, atoms in dictionary.items()}
    with atomic_file(path) as f:
        f.write(save(tensors, metadata))
    return Path(path)


def official_file(folder: Path, part: str, scale: int) -> Path:
    return folder / f"{part}_{scale}_center.npy"


def read_official_folder(
    folder: str | os.PathLike, image_size: int = REFERENCE_SIZE, width: float = 1.0
) -> DictionaryAtoms:
    """The official `DictionaryCenter512/` folder: `{part}_{scale}_center.npy`, (K, C·a·a) arrays each."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: DFDNet dictionary folder not found (expected DictionaryCenter512/)")
    atoms: dict[str, dict[int, Tensor]] = {}
    for part in PARTS:
        for scale in SCALES:
            path, shape = official_file(folder, part, scale), atom_shape(part, scale, image_size, width)
            size, sides = math.prod(shape), " × ".join(map(str, shape))
            expected = f"a (K, {size}) array: K atoms of {sides} for {_faces(image_size, width)}"
            if not path.is_file():
                raise DataError(f"{path}: not found (expected {expected})")
            try:
                array = np.load(path, allow_pickle=False)
            except Exception as err:  # numpy raises ValueError, OSError, EOFError ... for bad files
                raise DataError(f"{path}: not a readable .npy file ({first_line(err)})") from None
            if array.ndim != 2 or array.shape[1] != size or not np.issubdtype(array.dtype, np.floating):
                raise DataError(f"{path}: {array.dtype} array of shape {array.shape}, expected {expected}")
            atoms.setdefault(part, {})[scale] = torch.from_numpy(array.astype(np.float32)).view(-1, *shape)
    return DictionaryAtoms(atoms, image_size, source=folder, width=width)


def write_official_folder(dictionary: DictionaryAtoms, folder: str | os.PathLike) -> Path:
    folder = Path(folder)
    for part, scale, atoms in dictionary.items():
        with atomic_file(official_file(folder, part, scale)) as f:
            np.save(f, atoms.reshape(len(atoms), -1).numpy())
    return folder


def read_basicsr(
    path: str | os.PathLike, image_size: int = REFERENCE_SIZE, width: float = 1.0
) -> DictionaryAtoms:
    """BasicSR's `DFDNet_dict_512-*.pth`: {'256': {'left_eye': (K, 128, 40, 40), ...}, '128': ..., ...}."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: DFDNet dictionary file not found")
    state = load_state_dict(path)
    layout = "{'256': {'left_eye': (K, 128, 40, 40), ...}, '128': {...}, '64': {...}, '32': {...}}"
    atoms: dict[str, dict[int, Tensor]] = {}
    for scale in SCALES:
        parts = state.get(str(scale))
        if not isinstance(parts, Mapping):
            raise DataError(f"{path}: no '{scale}' entry of parts (expected BasicSR's layout {layout})")
        for part in PARTS:
            if part in parts:
                atoms.setdefault(part, {})[scale] = parts[part]
    return DictionaryAtoms(atoms, image_size, source=path, width=width)


def write_basicsr(dictionary: DictionaryAtoms, path: str | os.PathLike) -> Path:
    # imported here: facezoo.checkpoints imports the importers, which import this module
    from facezoo.checkpoints import save_checkpoint

    save_checkpoint({str(scale): {part: dictionary.atoms[part][scale] for part in PARTS} for scale in SCALES},
                    path)
    return Path(path)


def load_dictionary(
    path: str | os.PathLike, image_size: int | None = None, width: float | None = None
) -> DictionaryAtoms:
    """A dictionary file in any of the three layouts (see the module docstring), by its path: a folder is the
    official layout, `.pth`/`.pt` BasicSR's, `.safetensors` facezoo's. `image_size` and `width` (None: the
    file's own, 512 and 1.0 for the official and BasicSR layouts) are checked against a safetensors file's."""
    path = Path(path)
    layouts = "expected a .safetensors file, BasicSR's .pth or the official DictionaryCenter512/ folder"
    if not path.exists():
        raise DataError(f"{path}: DFDNet dictionary not found ({layouts})")
    if path.is_dir():
        return read_official_folder(path, image_size or REFERENCE_SIZE, width or 1.0)
    if path.suffix in TORCH_SUFFIXES:
        return read_basicsr(path, image_size or REFERENCE_SIZE, width or 1.0)
    if path.suffix != ".safetensors":
        raise DataError(f"{path}: not a DFDNet dictionary ({layouts})")
    dictionary = read_safetensors(path)
    if image_size is not None and dictionary.image_size != image_size:
        raise DataError(f"{path}: a dictionary of {dictionary.image_size} px faces, expected {image_size} px")
    if width is not None and dictionary.width != width:
        raise DataError(f"{path}: a dictionary of a VGG of width {dictionary.width}, expected width {width}")
    return dictionary


def layout(path: str | os.PathLike) -> str:
    """The layout `save_dictionary` writes to `path`: "safetensors", "basicsr" (.pth/.pt) or "official" (a
    path without a suffix); a DataError for another suffix."""
    suffix = Path(path).suffix
    if suffix and suffix != ".safetensors" and suffix not in TORCH_SUFFIXES:
        raise DataError(
            f"{path}: expected .safetensors, .pth/.pt or a folder (no suffix) for the official layout"
        )
    return "safetensors" if suffix == ".safetensors" else "basicsr" if suffix else "official"


def save_dictionary(dictionary: DictionaryAtoms, path: str | os.PathLike) -> Path:
    """Write `dictionary` in the layout `path` names (`layout`). Each file is written atomically."""
    writers = {"safetensors": write_safetensors, "basicsr": write_basicsr, "official": write_official_folder}
    return writers[layout(path)](dictionary, path)


# --- building -----------------------------------------------------------------------------------------------


def part_samples(
    features: list[Tensor], boxes: Tensor, image_size: int, width: float = 1.0
) -> dict[Key, Tensor]:
    """The dictionary samples of a batch: (part, scale) → (B, C·a·a), the part's features at that scale as the
    DFT blocks see them (`dfdnet.part_cells` slice, bilinearly resized to the atom side a). `features`: the
    four VGG features (B, C, image_size / stride, ...) finest first, C = `channels(scale, width)`; `boxes`:
    (B, 4, 4) part boxes (x1, y1, x2, y2) in image pixels, `PARTS` order."""
    if len(features) != len(SCALES):
        layers = "relu2_2, relu3_4, relu4_4, conv5_4"
        raise ValueError(f"expected {len(SCALES)} VGG features ({layers}), got {len(features)}")
    samples = {}
    for index, (scale, feature) in enumerate(zip(SCALES, features, strict=True)):
        cells, depth = image_size // stride(index), channels(scale, width)
        if feature.shape[1] != depth or feature.shape[-2:] != (cells, cells):
            expected = f"(B, {depth}, {cells}, {cells}) for {_faces(image_size, width)}"
            raise ValueError(f"VGG feature {index} is {tuple(feature.shape)}, expected {expected}")
        for row, part in enumerate(PARTS):
            side = atom_size(part, index, image_size)
            slices = part_cells(boxes[:, row], stride(index), cells, cells).tolist()
            crops = [
                F.interpolate(f[None, :, y1:y2, x1:x2], (side, side), mode="bilinear", align_corners=False)
                for f, (x1, y1, x2, y2) in zip(feature, slices, strict=True)
            ]
            samples[part, scale] = torch.cat(crops).flatten(1)
    return samples


def kmeans_plus_plus(samples: Tensor, k: int, generator: torch.Generator) -> Tensor:
    """Greedy k-means++ seeding (Arthur & Vassilvitskii 2007, as scikit-learn's `kmeans_plusplus`): k rows of
    (n, D) `samples`; each step draws 2 + ⌊ln k⌋ candidates with a probability proportional to their squared
    distance to the nearest row chosen before, and keeps the one that lowers the sum of those distances most.
    Draws use `generator` (a CPU generator)."""
    n, trials = len(samples), 2 + int(math.log(k))
    norms = samples.square().sum(1)

    def distances(rows: list[int]) -> Tensor:  # (len(rows), n) squared distances
        return (norms[rows, None] - 2 * samples[rows] @ samples.T + norms).clamp(min=0)

    chosen = [int(torch.randint(n, (1,), generator=generator))]
    nearest = distances(chosen)[0]
    for _ in range(1, k):
        weights = nearest.double().cpu()
        if weights.sum() <= 0:  # fewer distinct samples than k: draw among the others uniformly
            weights = torch.ones(n, dtype=torch.float64).index_fill_(0, torch.tensor(chosen), 0)
        candidates = torch.multinomial(weights, trials, replacement=True, generator=generator).tolist()
        options = torch.minimum(nearest, distances(candidates))
        best = int(options.sum(1).argmin())
        chosen.append(candidates[best])
        nearest = options[best]
    return samples[chosen].clone()


def assign(samples: Tensor, centres: Tensor, norms: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """(nearest centre index (n,), its squared distance (n,)) of (n, D) samples to (K, D) centres, whose
    squared norms (K,) are `norms` when known."""
    norms = centres.square().sum(1) if norms is None else norms
    distances = (samples.square().sum(1, keepdim=True) - 2 * samples @ centres.T + norms).clamp(min=0)
    nearest, index = distances.min(1)
    return index, nearest


class StreamingKMeans:
    """K-means of one stream of (n, D) samples (see the module docstring): `add` the samples of each batch;
    `end_pass` after each pass over the data. The first pass buffers samples until `init_size`, seeds the
    centres (the best of `n_init` k-means++ seedings) and then runs mini-batch K-means; passes after
    `minibatch_passes` are Lloyd passes. A batch costs its distances to the K centres and an update of the
    centres it touches only. `inertia`: the mean squared distance of the last pass's samples to their
    centre (before its update)."""

    def __init__(
        self, k: int, init_size: int, minibatch_passes: int, generator: torch.Generator, n_init: int = 3
    ) -> None:
        self.k, self.init_size, self.minibatch_passes = k, max(k, init_size), minibatch_passes
        self.n_init, self.generator = n_init, generator
        self.centres: Tensor | None = None
        self.norms: Tensor | None = None  # the centres' squared norms
        self.buffer: list[Tensor] = []
        self.passes_done, self.inertia = 0, math.nan
        self.sums: Tensor | None = None  # of a Lloyd pass
        self.counts: Tensor | None = None  # samples per centre in this Lloyd pass / in all mini-batch passes
        self.seen, self.distance = 0, 0.0

    @property
    def lloyd(self) -> bool:
        return self.passes_done >= self.minibatch_passes

    def add(self, samples: Tensor) -> None:
        if self.centres is None:
            self.buffer.append(samples)
            if sum(map(len, self.buffer)) >= self.init_size:
                self._initialise()
            return
        index, nearest = assign(samples, self.centres, self.norms)
        self.seen, self.distance = self.seen + len(samples), self.distance + float(nearest.sum())
        touched, inverse = index.unique(return_inverse=True)
        members = F.one_hot(inverse, len(touched)).to(samples.dtype)  # a matmul: deterministic on a GPU too
        sums, counts = members.T @ samples, members.sum(0)
        self.counts[touched] += counts
        if self.lloyd:
            self.sums[touched] += sums
        else:  # mini-batch: each centre moves by (its samples' sum − n·centre) / its count so far
            centres = self.centres[touched]
            centres += (sums - counts[:, None] * centres) / self.counts[touched, None]
            self.centres[touched], self.norms[touched] = centres, centres.square().sum(1)

    def _initialise(self) -> None:
        buffered, self.buffer = torch.cat(self.buffer), []
        seedings = [kmeans_plus_plus(buffered, self.k, self.generator) for _ in range(self.n_init)]
        self.centres = min(seedings, key=lambda centres: float(assign(buffered, centres)[1].sum()))
        self.norms = self.centres.square().sum(1)
        self._start_counting()
        for chunk in buffered.split(max(1, self.k)):
            self.add(chunk)

    def _start_counting(self) -> None:
        """Zero counts (and sums) for a Lloyd pass, or for the first mini-batch pass."""
        if self.lloyd:
            self.sums = torch.zeros_like(self.centres)
        if self.lloyd or self.counts is None:
            self.counts = self.centres.new_zeros(self.k)

    def end_pass(self) -> None:
        if self.centres is None:  # fewer samples than init_size in all: seed on them
            buffered = sum(map(len, self.buffer))
            if buffered < self.k:
                raise DataError(f"{buffered} samples for k={self.k} atoms: expected at least k faces")
            self._initialise()
        if self.lloyd:
            filled = self.counts > 0
            self.centres[filled] = self.sums[filled] / self.counts[filled, None]
            self.norms = self.centres.square().sum(1)
        self.inertia = self.distance / max(self.seen, 1)
        self.passes_done += 1
        self.sums, self.seen, self.distance = None, 0, 0.0
        self._start_counting()


class DictionaryBuilder:
    """Builds a `DictionaryAtoms` from HQ aligned faces (see the module docstring).

    Args:
        features: images (B, 3, S, S) in [-1, 1] → the four VGG-19 features [relu2_2, relu3_4, relu4_4,
            conv5_4] (a frozen extractor; any callable, e.g. a stub in tests).
        image_size: S, the faces' side.
        k: atoms per part and scale (the official dictionaries: 512).
        seed: seeds k-means++; the same seed and data order give the same atoms.
        passes: mini-batch K-means passes (>= 1; the first starts with the k-means++ seeding).
        lloyd_passes: exact Lloyd passes after them (>= 0).
        init_size: samples the k-means++ seeding draws from (None: 3·k), buffered per part and scale: at
            512 px and k = 512, ~3 × 3.2 GB, freed once seeded.
        device: where the K-means state lives (the features are moved there).
        width: the VGG's width (`dfdnet_parts.channels`): 1.0 but for tiny test configs.
    """

    def __init__(
        self,
        features: Callable[[Tensor], list[Tensor]],
        image_size: int = REFERENCE_SIZE,
        k: int = OFFICIAL_K,
        seed: int = 0,
        passes: int = 1,
        lloyd_passes: int = 2,
        init_size: int | None = None,
        device: str | torch.device = "cpu",
        width: float = 1.0,
    ) -> None:
        self.features, self.image_size, self.device = features, int(image_size), torch.device(device)
        self.width = float(width)
        self.passes, self.lloyd_passes = int(passes), int(lloyd_passes)
        generator = torch.Generator().manual_seed(int(seed))
        init = 3 * int(k) if init_size is None else int(init_size)
        self.kmeans = {
            (part, scale): StreamingKMeans(int(k), init, self.passes, generator)
            for part in PARTS
            for scale in SCALES
        }

    @property
    def total_passes(self) -> int:
        return self.passes + self.lloyd_passes

    @torch.no_grad()
    def add(self, images: Tensor, boxes: Tensor) -> None:
        """One batch: (B, 3, S, S) faces in [-1, 1] and their (B, 4, 4) part boxes in pixels."""
        images = images.to(self.device, torch.float32)
        for key, samples in part_samples(self.features(images), boxes, self.image_size, self.width).items():
            self.kmeans[key].add(samples.float())

    def end_pass(self) -> dict[Key, float]:
        """Close a pass over the data: → the pass's mean squared distance of a sample to its atom, per key."""
        for kmeans in self.kmeans.values():
            kmeans.end_pass()
        return {key: kmeans.inertia for key, kmeans in self.kmeans.items()}

    def dictionary(self) -> DictionaryAtoms:
        atoms: dict[str, dict[int, Tensor]] = {}
        for (part, scale), kmeans in self.kmeans.items():
            if kmeans.centres is None:
                raise RuntimeError("DictionaryBuilder.dictionary() before a pass over the data ended")
            shape = atom_shape(part, scale, self.image_size, self.width)
            atoms.setdefault(part, {})[scale] = kmeans.centres.view(-1, *shape).cpu()
        return DictionaryAtoms(atoms, self.image_size, width=self.width)

    def fit(
        self, batches: Iterable[tuple[Tensor, Tensor]], advance: Callable[[int], None] | None = None,
        on_pass: Callable[[int, dict[Key, float]], None] | None = None,
    ) -> DictionaryAtoms:
        """All passes over `batches` (re-iterable, e.g. a DataLoader, of (images, boxes)); `advance(n)` after
        each batch of n faces, `on_pass(pass number, inertia per key)` after each pass."""
        for number in range(1, self.total_passes + 1):
            for images, boxes in batches:
                self.add(images, boxes)
                if advance is not None:
                    advance(len(images))
            inertia = self.end_pass()
            if on_pass is not None:
                on_pass(number, inertia)
        return self.dictionary()
