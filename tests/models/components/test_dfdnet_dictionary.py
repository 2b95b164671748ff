"""DFDNet's component dictionaries (src/models/components/dfdnet_dictionary.py): the atoms are K-means centres
of the part features (checked against scipy's K-means on the same features), every atom has the documented
shape, the build is seeded and streamed, the three file layouts round-trip and are read as the official code
and BasicSR write them, and bad files give one line naming the file.

The VGG features come from a stub (a fixed random 1×1 projection of the average-pooled image, with VGG-19's
channels and strides): the K-means does not care what the features mean."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.cluster.vq import kmeans2

from facezoo.datamodules.synthetic.renderer import render_faces
from facezoo.models.components.dfdnet_dictionary import (
    FORMAT,
    DictionaryAtoms,
    DictionaryBuilder,
    assign,
    atom_shape,
    kmeans_plus_plus,
    load_dictionary,
    part_samples,
    save_dictionary,
)
from facezoo.models.components.dfdnet_parts import CHANNELS, PARTS, SCALES, template_boxes
from facezoo.utils.errors import DataError

SIZE, FACES, BATCH, K = 64, 40, 8, 4


class StubVGG:
    """(B, 3, S, S) → four features (B, C, S/2^(i+1), ...) with VGG-19's channels 128/256/512/512."""

    def __init__(self) -> None:
        gen = torch.Generator().manual_seed(0)
        self.projections = [torch.randn(CHANNELS[s], 3, generator=gen) for s in SCALES]

    def __call__(self, x: torch.Tensor) -> list[torch.Tensor]:
        pooled = (F.avg_pool2d(x, 2 ** (i + 1)) for i in range(len(SCALES)))
        pairs = zip(self.projections, pooled, strict=True)
        return [torch.einsum("oc,bchw->bohw", p, f).relu() for p, f in pairs]


@pytest.fixture(scope="module")
def batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Synthetic faces (the renderer's own boxes) in batches of 8."""
    faces = render_faces(range(FACES), SIZE, seed=0)
    return [(faces["image"][i : i + BATCH], faces["boxes"][i : i + BATCH]) for i in range(0, FACES, BATCH)]


def build(batches, seed=0, **options) -> DictionaryAtoms:
    """K = 4 atoms, seeded on all 40 faces (at FFHQ scale the default 3·K samples are a fair share)."""
    options = {"k": K, "init_size": FACES, "passes": 1, "lloyd_passes": 8, **options}
    return DictionaryBuilder(StubVGG(), SIZE, seed=seed, **options).fit(batches)


@pytest.fixture(scope="module")
def dictionary(batches) -> DictionaryAtoms:
    return build(batches)


def all_samples(batches, part: str, scale: int) -> torch.Tensor:
    """Every face's sample of (part, scale), all at once: the reference needs them, the builder never does."""
    with torch.no_grad():
        return torch.cat([part_samples(StubVGG()(x), boxes, SIZE)[part, scale] for x, boxes in batches])


def inertia(samples: torch.Tensor, centres: torch.Tensor) -> float:
    return float(assign(samples.double(), centres.double())[1].sum())


def random_dictionary(k: int = 3, image_size: int = SIZE, seed: int = 0, width: float = 1) -> DictionaryAtoms:
    gen = torch.Generator().manual_seed(seed)
    shapes = {p: {s: atom_shape(p, s, image_size, width) for s in SCALES} for p in PARTS}
    atoms = {p: {s: torch.randn(k, *shape, generator=gen) for s, shape in row.items()} 
             for p, row in shapes.items()}
    return DictionaryAtoms(atoms, image_size, width=width)


def assert_same(a: DictionaryAtoms, b: DictionaryAtoms) -> None:
    assert a.image_size == b.image_size and a.width == b.width
    for part, scale, atoms in a.items():
        assert torch.equal(atoms, b.atoms[part][scale]), (part, scale)


# --- building -----------------------------------------------------------------------------------------------


def test_every_atom_has_the_documented_shape(dictionary):
    # the official sizes at 512 px (40/40/25/55 at 256, halved and floored per scale), scaled to 64 px
    sides = {256: (5, 5, 3, 6), 128: (2, 2, 1, 3), 64: (1, 1, 1, 1), 32: (1, 1, 1, 1)}
    for part, scale, atoms in dictionary.items():
        side = sides[scale][PARTS.index(part)]
        assert atoms.shape == (K, CHANNELS[scale], side, side) and atoms.dtype == torch.float32
    assert atom_shape("mouth", 256, 512) == (128, 55, 55) and atom_shape("nose", 32, 512) == (512, 3, 3)


@pytest.mark.parametrize(("part", "scale"), [("mouth", 256), ("left_eye", 128)])
def test_atoms_are_the_kmeans_centres_of_the_part_features(batches, dictionary, part, scale):
    atoms = dictionary.atoms[part][scale]
    samples = all_samples(batches, part, scale).double()
    centres = atoms.flatten(1).double()
    # Lloyd's fixed point: every atom is the mean of the samples nearest to it
    index, _ = assign(samples, centres)
    for j in range(K):
        assert (index == j).any(), f"atom {j} has no samples"
        torch.testing.assert_close(centres[j], samples[index == j].mean(0), rtol=1e-4, atol=1e-4)
    # as good a clustering as scipy's K-means (k-means++ seeding, best of 10 seeds) on the same features,
    # within what separates one local minimum of K-means from another here (scipy's own runs spread by 50 %)
    runs = sorted(
        inertia(samples, torch.from_numpy(kmeans2(samples.numpy(), K, iter=50, minit="++", seed=s)[0]))
        for s in range(10)
    )
    ours = inertia(samples, centres)
    print(f"{part}@{scale}: inertia {ours:.1f}; scipy kmeans2 over 10 seeds: best {runs[0]:.1f}, "
          f"median {runs[5]:.1f}")
    assert ours <= 1.15 * runs[0]
    first_k = inertia(samples, samples[:K])  # any K samples as atoms are much worse
    assert ours < 0.8 * first_k


def test_the_same_seed_gives_the_same_atoms_and_another_seed_others(batches, dictionary):
    again, other = build(batches, seed=0), build(batches, seed=1)
    assert_same(dictionary, again)
    assert any(not torch.equal(a, other.atoms[p][s]) for p, s, a in dictionary.items())


def test_the_builder_streams_samples_are_only_buffered_for_the_seeding(batches):
    builder = DictionaryBuilder(StubVGG(), SIZE, k=K, init_size=12, passes=1, lloyd_passes=1)
    kmeans = builder.kmeans["nose", 64]
    builder.add(*batches[0])
    assert kmeans.centres is None and sum(map(len, kmeans.buffer)) == BATCH
    builder.add(*batches[1])  # 16 >= 12 samples: seeded, buffer dropped
    assert kmeans.centres is not None and kmeans.buffer == []
    for batch in batches[2:]:
        builder.add(*batch)
        assert kmeans.buffer == [] and kmeans.centres.shape == (K, 512)


def test_mini_batch_passes_alone_and_lloyd_passes_alone_both_cluster(batches):
    samples = all_samples(batches, "mouth", 256)
    minibatch = build(batches, passes=3, lloyd_passes=0).atoms["mouth"][256].flatten(1)
    lloyd = build(batches, passes=0, lloyd_passes=5).atoms["mouth"][256].flatten(1)
    for centres in (minibatch, lloyd):
        assert inertia(samples, centres) < 0.8 * inertia(samples, samples[:K])


def test_fewer_faces_than_atoms_is_a_clear_error(batches):
    with pytest.raises(DataError, match="8 samples for k=12 atoms"):
        build(batches[:1], k=12)


def test_template_boxes_give_samples_of_each_face():
    x = torch.rand(2, 3, SIZE, SIZE) * 2 - 1
    samples = part_samples(StubVGG()(x), template_boxes(2, SIZE), SIZE)
    assert sorted(samples) == sorted((p, s) for p in PARTS for s in SCALES)
    assert samples["mouth", 256].shape == (2, 128 * 6 * 6)
    with pytest.raises(ValueError, match="expected 4 VGG features"):
        part_samples(StubVGG()(x)[:3], template_boxes(2, SIZE), SIZE)


def test_kmeans_plus_plus_draws_distinct_samples_far_apart():
    gen = torch.Generator().manual_seed(0)
    clusters = torch.tensor([[0.0, 0.0], [100.0, 0.0], [0.0, 100.0]])
    samples = (clusters[:, None] + torch.randn(3, 20, 2, generator=gen)).flatten(0, 1)
    chosen = kmeans_plus_plus(samples, 3, gen)
    assert sorted(assign(chosen, clusters)[0].tolist()) == [0, 1, 2]  # one seed in each cluster


# --- files --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["dict.safetensors", "dict.pth", "DictionaryCenter64"])
def test_the_three_layouts_round_trip(tmp_path, name):
    dictionary = random_dictionary()
    dictionary.metadata = {"seed": "0"}
    path = save_dictionary(dictionary, tmp_path / name)
    read = load_dictionary(path, image_size=SIZE)
    assert_same(dictionary, read)
    if name.endswith(".safetensors"):
        assert read.metadata["seed"] == "0" and load_dictionary(path).image_size == SIZE


def test_a_narrow_dictionary_keeps_its_width(tmp_path):
    """A dictionary of a VGG 1/8 as wide (tiny test configs): its atoms are narrow, the safetensors file says
    its width (a file without it is width 1), the layouts without one are read at the width asked for."""
    narrow = random_dictionary(width=0.125)
    assert narrow.atoms["mouth"][256].shape == (3, 16, 6, 6) and narrow.atoms["nose"][32].shape[1] == 64
    read_wide = {  # what reading it at width 1 says, per layout
        "dict.safetensors": "a dictionary of a VGG of width 0.125, expected width 1.0",
        "dict.pth": r"left_eye atoms at scale 256 are \(3, 16, 5, 5\), expected \(K, 128, 5, 5\)",
        "DictionaryCenter64": r"shape \(3, 400\), expected a \(K, 3200\) array",
    }
    for name, text in read_wide.items():
        path = save_dictionary(narrow, tmp_path / name)
        assert_same(narrow, load_dictionary(path, SIZE, 0.125))
        with pytest.raises(DataError, match=text):
            load_dictionary(path, SIZE, 1.0)
    assert load_dictionary(tmp_path / "dict.safetensors").width == 0.125
    wide_atoms = r"are \(3, 128, 5, 5\), expected \(K, 16, 5, 5\) for 64 px faces, width 0.125"
    with pytest.raises(DataError, match=wide_atoms):
        DictionaryAtoms(random_dictionary().atoms, SIZE, width=0.125)
    from safetensors.torch import save_file

    wide = random_dictionary()
    tensors = {f"{part}.{scale}": atoms for part, scale, atoms in wide.items()}
    save_file(tensors, str(tmp_path / "old.safetensors"), {"format": FORMAT, "image_size": "64"})
    assert_same(wide, load_dictionary(tmp_path / "old.safetensors"))  # written before widths: width 1


def test_the_official_folder_is_read_as_the_official_code_reads_it(tmp_path):
    """DictionaryCenter512/{part}_{scale}_center.npy: (K, C·a·a) rows, reshaped to (K, C, a, a)."""
    expected = random_dictionary(k=2, image_size=512)
    for part, scale, atoms in expected.items():
        np.save(tmp_path / f"{part}_{scale}_center.npy", atoms.numpy().reshape(2, -1).astype(np.float64))
    read = load_dictionary(tmp_path)
    assert read.image_size == 512 and read.atoms["left_eye"][256].shape == (2, 128, 40, 40)
    assert_same(expected, read)
    written = save_dictionary(read, tmp_path / "again")
    assert np.load(written / "mouth_32_center.npy").shape == (2, 512 * 6 * 6)


def test_the_basicsr_file_is_read_with_its_nested_layout(tmp_path):
    expected = random_dictionary(k=2, image_size=512)
    nested = {str(s): {p: expected.atoms[p][s] for p in PARTS} for s in SCALES}
    torch.save(nested, tmp_path / "DFDNet_dict_512-f79685f0.pth")
    assert_same(expected, load_dictionary(tmp_path / "DFDNet_dict_512-f79685f0.pth"))
    written = save_dictionary(expected, tmp_path / "out.pth")
    assert torch.load(written, weights_only=True)["256"]["left_eye"].shape == (2, 128, 40, 40)


def bad_files(tmp_path) -> dict[str, tuple]:
    """name → (path to load, text the message must hold)."""
    good = save_dictionary(random_dictionary(), tmp_path / "good")
    (good / "nose_64_center.npy").unlink()
    missing_file = (good, "nose_64_center.npy: not found (expected a (K, 512) array")
    wrong = save_dictionary(random_dictionary(image_size=512), tmp_path / "wrong")  # 512 px atoms, read as 64
    (tmp_path / "garbage.safetensors").write_bytes(b"not a safetensors file")
    from safetensors.torch import save_file

    save_file({"nose.64": torch.zeros(1)}, str(tmp_path / "foreign.safetensors"))
    torch.save({"params": {}}, tmp_path / "other.pth")
    (tmp_path / "words.npy").write_text("hello")
    return {
        "nothing": (tmp_path / "absent", "DFDNet dictionary not found (expected a .safetensors file"),
        "missing file": missing_file,
        "wrong size": (wrong, "left_eye_256_center.npy: float32 array of shape (3, 204800), expected a "
                       "(K, 3200) array: K atoms of 128 × 5 × 5 for 64 px faces"),
        "garbage": (tmp_path / "garbage.safetensors", "not a readable safetensors file"),
        "no metadata": (tmp_path / "foreign.safetensors", "not a facezoo DFDNet dictionary"),
        "other .pth": (tmp_path / "other.pth", "no '256' entry of parts (expected BasicSR's layout"),
        "suffix": (tmp_path / "words.npy", "expected a .safetensors file, BasicSR's .pth or the official"),
    }


def test_a_bad_file_or_folder_is_one_line_naming_it(tmp_path):
    for what, (path, text) in bad_files(tmp_path).items():
        with pytest.raises(DataError) as err:
            load_dictionary(path, image_size=SIZE)
        message = str(err.value)
        assert "\n" not in message and str(path) in message and text in message, (what, message)


def test_atoms_of_the_wrong_shape_or_a_missing_part_are_refused(tmp_path):
    atoms = random_dictionary().atoms
    atoms["mouth"][128] = torch.zeros(3, 256, 2, 2)
    expected = r"mouth atoms at scale 128 are \(3, 256, 2, 2\), expected \(K, 256, 3, 3\) for 64 px faces"
    with pytest.raises(DataError, match=expected):
        DictionaryAtoms(atoms, SIZE)
    del atoms["nose"]
    with pytest.raises(DataError, match="no nose atoms at scale 256"):
        DictionaryAtoms(atoms, SIZE)
    path = save_dictionary(random_dictionary(), tmp_path / "d.safetensors")
    with pytest.raises(DataError, match="a dictionary of 64 px faces, expected 512 px"):
        load_dictionary(path, image_size=512)
