"""`facezoo-weights download NAME...` and `facezoo-weights verify`: the only module of facezoo that opens a
URL, and only when the user runs that command (nothing else ever downloads; the resolver only searches).

- `download(name)`: fetch a `KNOWN_WEIGHTS` file from its official `url` (or `$FACEZOO_WEIGHTS_MIRROR/<file
  name>`, a mirror holding the files under the resolver's names) into the pretrained folder. The bytes go to
  `.<name>.part` beside the target; a `.part` left by an interrupted run is resumed with an HTTP Range request
  (a server that ignores Range sends the whole file: it restarts). The file is then checked (`check`) and only
  then renamed onto its name (`os.replace`, atomic); a file that fails the check is deleted, `.part` included.
- `check(spec, path)`: the full sha256 when published (`spec.sha256`), else the sha256 prefix a torch hub name
  carries (`vgg19-dcbb9e9d.pth`: the first 8 hex digits); a file with neither must load with
  `torch.load(weights_only=True)` (GFP-GAN's landmarks with their own reader) and, for a StyleGAN2 prior, be
  recognised as one by `releases.recognise`: weaker than a hash, and said so.
- `verify()`: `check` every known file present in the resolver's folders; one line each.

A wrong hash, an HTTP error or a lost connection is one `FacezooError` line (exit 2 through the CLI).
"""

import hashlib
import http.client
import logging
import os
import re
import urllib.error
import urllib.request
from pathlib import Path

from facezoo.cli import run_cli
from facezoo.utils.console import progress
from facezoo.utils.errors import FacezooError, WriteError
from facezoo.weights.resolver import KNOWN_WEIGHTS, WeightSpec, pretrained_dir, resolve, search_dirs

MIRROR_ENV = "FACEZOO_WEIGHTS_MIRROR"
TIMEOUT_S = 60  # seconds without a byte before the connection counts as lost
CHUNK = 1 << 20
_HUB_PREFIX = re.compile(r"-([0-9a-f]{8,})\.")  # torch hub: name-<sha256 prefix>.ext (at least 8 hex digits)
_DRIVE = re.compile(r"https://drive\.google\.com/(?:file/d/|open\?id=)([\w-]+)")
_STYLEGAN2_PRIORS = ("stylegan2_512_gfpgan", "stylegan2_1024_ffhq")


class HashMismatch(FacezooError):
    """A file's sha256 is not the published one."""


def expected_sha256(spec: WeightSpec) -> str | None:
    """The published sha256, else the prefix in a torch hub style name, else None."""
    found = _HUB_PREFIX.search(spec.filename)
    return spec.sha256 or (found.group(1) if found else None)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _loads(spec: WeightSpec, path: Path) -> None:
    from facezoo.datamodules.boxes import load_gfpgan_landmarks
    from facezoo.weights.releases import recognise
    from facezoo.weights.state_dict import load_state_dict

    if spec.key == "gfpgan_component_boxes":
        load_gfpgan_landmarks(path)
    elif spec.key in _STYLEGAN2_PRIORS:
        if (method := recognise(path)) != "stylegan2":
            raise FacezooError(f"{path}: holds a {method} network, not a StyleGAN2 generator")
    else:
        load_state_dict(path, mmap=True)


def check(spec: WeightSpec, path: Path) -> str:
    """How `path` (the file of `spec`) was verified; a wrong hash raises `HashMismatch`, an unreadable file a
    `FacezooError`."""
    expected = expected_sha256(spec)
    if expected is None:
        _loads(spec, path)
        return "loads; no published sha256"
    found = sha256_of(path)
    if not found.startswith(expected):
        what = "sha256" if len(expected) == 64 else "sha256 prefix (from its name)"
        raise HashMismatch(f"{spec.filename}: wrong {what}: expected {expected}, found {found}")
    return "sha256 ok" if len(expected) == 64 else f"sha256 prefix {expected} ok"


def source_url(spec: WeightSpec) -> str:
    """Where `download` fetches `spec` from: the mirror when `$FACEZOO_WEIGHTS_MIRROR` is set, else the
    official URL (a Google Drive file link as Drive's direct download, past its large-file confirmation)."""
    mirror = os.environ.get(MIRROR_ENV)
    if mirror:
        return f"{mirror.rstrip('/')}/{spec.filename}"
    if spec.url is None:
        raise FacezooError(f"{spec.filename}: no download URL known; put the file in {pretrained_dir()}/")
    drive = _DRIVE.match(spec.url)
    if drive:
        return f"https://drive.usercontent.google.com/download?id={drive.group(1)}&export=download&confirm=t"
    return spec.url


def _open(url: str, offset: int, name: str):
    headers = {"User-Agent": "facezoo-weights"} | ({"Range": f"bytes={offset}-"} if offset else {})
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=TIMEOUT_S)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:  # nothing after `offset`: the partial file is complete (check decides)
            return None
        raise FacezooError(f"{name}: {url} answered HTTP {err.code} {err.reason}") from None
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", None) or err
        raise FacezooError(f"{name}: could not download {url} ({reason})") from None


def _read(response, stopped: str) -> bytes:
    """The next block of `response`; a lost connection is one FacezooError line starting with `stopped`."""
    try:
        return response.read(CHUNK)
    except (OSError, http.client.HTTPException) as err:
        raise FacezooError(f"{stopped} ({err}); run the command again to resume it") from None


def _fetch(url: str, part: Path, name: str) -> None:
    """Append the bytes of `url` after those `part` holds (all of them when the server ignores Range)."""
    offset = part.stat().st_size if part.is_file() else 0
    response = _open(url, offset, name)
    if response is None:
        return
    with response:
        if response.headers.get_content_type() == "text/html":
            raise FacezooError(
                f"{name}: {url} sent a web page, not the file; get it with a browser into {pretrained_dir()}/"
            )
        resumed = response.status == 206
        if resumed and not response.headers.get("Content-Range", "").startswith(f"bytes {offset}-"):
            part.unlink()
            raise FacezooError(f"{name}: {url} resumed at the wrong offset; run the command again")
        offset = offset if resumed else 0
        length = response.headers.get("Content-Length")
        expected = int(length) if length else None
        received = 0
        try:
            part.parent.mkdir(parents=True, exist_ok=True)
            with (
                open(part, "ab" if resumed else "wb") as f,
                progress(offset + (expected or 0), f"downloading {name}", "bytes") as advance,
            ):
                advance(offset)
                while block := _read(
                    response, f"{name}: the download from {url} stopped after {offset + received} bytes"
                ):
                    f.write(block)
                    received += len(block)
                    advance(len(block))
                f.flush()
                os.fsync(f.fileno())
        except OSError as err:  # writing: a full disk, no permission
            raise WriteError(f"{part}: could not write ({err.strerror or err})") from None
    if expected is not None and received < expected:
        raise FacezooError(
            f"{name}: the download from {url} stopped after {offset + received} of {offset + expected} "
            "bytes; run the command again to resume it"
        )


def spec_named(name: str) -> WeightSpec:
    """The `KNOWN_WEIGHTS` entry of a key or a file name, else one FacezooError listing the keys."""
    for spec in KNOWN_WEIGHTS.values():
        if name in (spec.key, spec.filename):
            return spec
    raise FacezooError(f"{name}: not a known weight file; expected one of {', '.join(KNOWN_WEIGHTS)} or all")


def download(name: str) -> tuple[Path, str]:
    """Download one known file (a key or a file name) into the pretrained folder unless a copy that passes
    `check` is already found; → its path and how it was verified."""
    spec = spec_named(name)
    found = resolve(spec.key, required=False)
    if found is not None:
        try:
            return found, f"already present, {check(spec, found)}"
        except FacezooError as err:
            logging.getLogger("facezoo").warning("%s; downloading it again", err)
    url = source_url(spec)
    target = pretrained_dir() / spec.filename
    part = target.with_name(f".{spec.filename}.part")
    _fetch(url, part, spec.filename)
    try:
        how = check(spec, part)
    except FacezooError as err:
        part.unlink(missing_ok=True)
        raise type(err)(f"{spec.filename} from {url} failed its check and was deleted: {err}") from None
    os.replace(part, target)
    return target, how


def verify() -> int:
    """`check` every known file present in the resolver's folders, one line each; → how many failed."""
    bad, seen = [], 0
    for spec in KNOWN_WEIGHTS.values():
        for path in (folder / spec.filename for folder in search_dirs()):
            if not path.is_file():
                continue
            seen += 1
            try:
                status, how = "ok", check(spec, path)
            except HashMismatch as err:
                status, how = "BAD HASH", str(err)
            except FacezooError as err:
                status, how = "UNREADABLE", str(err)
            print(f"{status:<10}  {spec.key:<22}  {path}  ({how})")
            if status != "ok":
                bad.append(spec.key)
    if not seen:
        print("No known weight file found in " + ", ".join(str(d) for d in search_dirs()))
    return len(bad)


def _download_all(names: list[str]) -> None:
    keys = list(KNOWN_WEIGHTS) if names == ["all"] else [spec_named(n).key for n in names]
    for key in keys:
        path, how = download(key)
        print(f"{KNOWN_WEIGHTS[key].filename}: {path} ({how})")


def _verify_all() -> None:
    bad = verify()
    if bad:
        raise FacezooError(
            f"{bad} weight file(s) failed verification; delete them and run facezoo-weights download NAME"
        )


def command(args) -> int:
    """The `download` / `verify` subcommands of `facezoo-weights` (bad input or a failed check: exit 2)."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # the download's progress lines
    if args.command == "download":
        run_cli(_download_all, args.names)
    else:
        run_cli(_verify_all)
    return 0
