"""`facezoo-weights download` / `verify` (src/weights/download.py) against a local HTTP server on 127.0.0.1
that serves files the tests make, registered as known weights: atomic landing, resume with Range, rejection
of wrong bytes, one-line errors. No real network."""

import hashlib
import io
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch

from facezoo.utils.errors import FacezooError
from facezoo.weights import download as dl
from facezoo.weights.resolver import KNOWN_WEIGHTS, WeightSpec, main


def weight_bytes(seed: int = 0) -> bytes:
    """A small real weight file (torch.save of a state dict), as bytes."""
    buffer = io.BytesIO()
    torch.save({"w": torch.arange(4000, dtype=torch.float32) + seed}, buffer)
    return buffer.getvalue()


GOOD = weight_bytes()
GOOD_SHA = hashlib.sha256(GOOD).hexdigest()


class Server:
    """Serves `files` (name -> bytes) as `content_type`; `cut_after` sends only that many bytes of a
    full-length reply; `ignore_range` answers Range with the whole file; `requests` records (path, Range)."""

    def __init__(self):
        self.files, self.requests = {}, []
        self.cut_after, self.ignore_range, self.content_type = None, False, "application/octet-stream"
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep the test output clean
                pass

            def do_GET(self):
                name, asked = self.path.lstrip("/"), self.headers.get("Range")
                server.requests.append((name, asked))
                if name not in server.files:
                    self.send_error(404, "Not Found")
                    return
                data, start = server.files[name], 0
                if asked and not server.ignore_range:
                    start = int(re.fullmatch(r"bytes=(\d+)-", asked).group(1))
                    if start >= len(data):
                        self.send_error(416, "Range Not Satisfiable")
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Type", server.content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body if server.cut_after is None else body[: server.cut_after])
                self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.01,), daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(monkeypatch):
    served = Server()
    monkeypatch.setenv(dl.MIRROR_ENV, served.url)
    yield served
    served.close()


@pytest.fixture
def pretrained(tmp_path, monkeypatch):
    folder = tmp_path / "pretrained"
    monkeypatch.setenv("FACEZOO_PRETRAINED", str(folder))
    return folder


def register(monkeypatch, key: str, filename: str, sha256: str | None) -> WeightSpec:
    spec = WeightSpec(
        key, filename, "the tests", "a tiny test file", f"https://example.invalid/{filename}", sha256
    )
    monkeypatch.setitem(KNOWN_WEIGHTS, key, spec)
    return spec


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_good_download_lands_verified(server, pretrained, monkeypatch):
    register(monkeypatch, "tiny", "tiny.pth", GOOD_SHA)
    server.files["tiny.pth"] = GOOD
    path, how = dl.download("tiny")
    assert path == pretrained / "tiny.pth" and path.read_bytes() == GOOD
    assert how == "sha256 ok" and leftovers(pretrained) == []
    assert server.requests == [("tiny.pth", None)]
    path, how = dl.download("tiny.pth")  # by file name; present and verified: not fetched again
    assert how.startswith("already present") and len(server.requests) == 1


def test_interrupted_download_resumes_with_range(server, pretrained, monkeypatch):
    register(monkeypatch, "tiny", "tiny.pth", GOOD_SHA)
    server.files["tiny.pth"] = GOOD
    half = len(GOOD) // 2
    server.cut_after = half
    with pytest.raises(FacezooError, match=r"tiny\.pth: .* stopped after .*run the command again") as info:
        dl.download("tiny")
    assert "\n" not in str(info.value)
    assert not (pretrained / "tiny.pth").exists()  # nothing lands before it is complete and verified
    assert (pretrained / ".tiny.pth.part").read_bytes() == GOOD[:half]
    server.cut_after = None
    path, _ = dl.download("tiny")
    assert server.requests[-1] == ("tiny.pth", f"bytes={half}-")
    assert path.read_bytes() == GOOD and leftovers(pretrained) == []


def test_server_ignoring_range_restarts(server, pretrained, monkeypatch):
    register(monkeypatch, "tiny", "tiny.pth", GOOD_SHA)
    server.files["tiny.pth"], server.ignore_range = GOOD, True
    pretrained.mkdir()
    (pretrained / ".tiny.pth.part").write_bytes(GOOD[:100])
    path, _ = dl.download("tiny")
    assert server.requests == [("tiny.pth", "bytes=100-")]
    assert path.read_bytes() == GOOD and leftovers(pretrained) == []


def test_complete_part_is_verified_without_refetching(server, pretrained, monkeypatch):
    register(monkeypatch, "tiny", "tiny.pth", GOOD_SHA)
    server.files["tiny.pth"] = GOOD
    pretrained.mkdir()
    (pretrained / ".tiny.pth.part").write_bytes(GOOD)  # the server answers 416 to bytes=<size>-
    path, how = dl.download("tiny")
    assert path.read_bytes() == GOOD and how == "sha256 ok" and leftovers(pretrained) == []


@pytest.mark.parametrize("named_by_prefix", [False, True])
def test_corrupted_file_is_rejected_and_not_kept(server, pretrained, monkeypatch, named_by_prefix):
    filename = f"tiny-{GOOD_SHA[:8]}.pth" if named_by_prefix else "tiny.pth"
    register(monkeypatch, "tiny", filename, None if named_by_prefix else GOOD_SHA)
    bad = weight_bytes(seed=1)
    server.files[filename] = bad
    with pytest.raises(dl.HashMismatch) as info:
        dl.download("tiny")
    message = str(info.value)
    assert filename in message and hashlib.sha256(bad).hexdigest() in message
    assert (GOOD_SHA[:8] if named_by_prefix else GOOD_SHA) in message and "\n" not in message
    assert list(pretrained.iterdir()) == []  # neither the file nor its .part


def test_prefix_in_the_name_is_verified(server, pretrained, monkeypatch):
    filename = f"tiny-{GOOD_SHA[:8]}.pth"
    register(monkeypatch, "tiny", filename, None)
    server.files[filename] = GOOD
    _, how = dl.download("tiny")
    assert how == f"sha256 prefix {GOOD_SHA[:8]} ok"


def test_without_hash_the_file_must_load(server, pretrained, monkeypatch):
    register(monkeypatch, "tiny", "tiny.pth", None)
    server.files["tiny.pth"] = GOOD
    _, how = dl.download("tiny")
    assert how.startswith("loads")
    register(monkeypatch, "page", "page.pth", None)
    server.files["page.pth"] = b"<html>not a weight file</html>"
    with pytest.raises(FacezooError, match=r"^page\.pth from http://.* failed its check and was deleted: "):
        dl.download("page")
    assert leftovers(pretrained) == [] and not (pretrained / "page.pth").exists()
    server.content_type = "text/html; charset=utf-8"  # e.g. a confirmation page instead of the file
    with pytest.raises(FacezooError, match=r"^page\.pth: .* sent a web page, not the file"):
        dl.download("page")
    assert leftovers(pretrained) == [] and not (pretrained / "page.pth").exists()


def test_http_error_is_one_line(server, pretrained, monkeypatch):
    register(monkeypatch, "tiny", "tiny.pth", GOOD_SHA)
    with pytest.raises(
        FacezooError, match=r"^tiny\.pth: http://127\.0\.0\.1:\d+/tiny\.pth answered HTTP 404 "
    ):
        dl.download("tiny")
    assert not pretrained.exists() or list(pretrained.iterdir()) == []


def test_unreachable_server_is_one_line(pretrained, monkeypatch):
    register(monkeypatch, "tiny", "tiny.pth", GOOD_SHA)
    closed = Server()
    closed.close()  # its port now refuses connections
    monkeypatch.setenv(dl.MIRROR_ENV, closed.url)
    with pytest.raises(FacezooError, match=r"tiny\.pth: could not download .*refused") as info:
        dl.download("tiny")
    assert "\n" not in str(info.value)


def test_cli_download_error_exits_2_with_one_line(server, pretrained, monkeypatch, capsys):
    register(monkeypatch, "tiny", "tiny.pth", GOOD_SHA)
    with pytest.raises(SystemExit) as info:
        main(["download", "tiny"])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("facezoo: error: tiny.pth:") and "404" in err and "\n" not in err
    with pytest.raises(SystemExit) as info:
        main(["download", "no_such_weights"])
    assert info.value.code == 2 and "tiny" in capsys.readouterr().err  # lists the known keys


def test_cli_download_then_verify(server, pretrained, monkeypatch, capsys):
    register(monkeypatch, "tiny", "tiny.pth", GOOD_SHA)
    server.files["tiny.pth"] = GOOD
    assert main(["download", "tiny"]) == 0
    assert f"tiny.pth: {pretrained / 'tiny.pth'} (sha256 ok)" in capsys.readouterr().out
    assert main(["verify"]) == 0
    assert re.search(r"^ok +tiny +.*tiny\.pth +\(sha256 ok\)$", capsys.readouterr().out, re.M)


def test_verify_flags_bad_files(pretrained, monkeypatch, capsys):
    register(monkeypatch, "good", "good.pth", GOOD_SHA)
    register(monkeypatch, "bad", "bad.pth", GOOD_SHA)
    register(monkeypatch, "broken", "broken.pth", None)
    pretrained.mkdir()
    (pretrained / "good.pth").write_bytes(GOOD)
    (pretrained / "bad.pth").write_bytes(weight_bytes(seed=1))
    (pretrained / "broken.pth").write_bytes(b"garbage")
    assert dl.verify() == 2
    out = capsys.readouterr().out
    assert re.search(r"^ok +good ", out, re.M)
    assert re.search(rf"^BAD HASH +bad +.*expected {GOOD_SHA}", out, re.M)
    assert re.search(r"^UNREADABLE +broken +.*broken\.pth: ", out, re.M)
    with pytest.raises(SystemExit) as info:
        main(["verify"])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("facezoo: error: 2 weight file(s) failed verification") and "\n" not in err


def test_stylegan2_prior_without_hash_must_be_recognised(pretrained, monkeypatch):
    spec = KNOWN_WEIGHTS["stylegan2_1024_ffhq"]
    pretrained.mkdir()
    path = pretrained / spec.filename
    torch.save({"g_ema": {"w": torch.zeros(2)}}, path)  # loads, but is no StyleGAN2 generator
    with pytest.raises(FacezooError, match="no known generator"):
        dl.check(spec, path)


def test_google_drive_links_become_direct_downloads(monkeypatch):
    monkeypatch.delenv(dl.MIRROR_ENV, raising=False)
    spec = KNOWN_WEIGHTS["faceparsing_bisenet"]
    assert spec.url.startswith("https://drive.google.com/file/d/")
    url = dl.source_url(spec)
    assert url.startswith("https://drive.usercontent.google.com/download?id=") and url.endswith("&confirm=t")
    assert dl.source_url(KNOWN_WEIGHTS["vgg19"]) == "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"
    monkeypatch.setenv(dl.MIRROR_ENV, "http://mirror.example/weights/")
    assert dl.source_url(spec) == "http://mirror.example/weights/faceparsing.pth"


def test_registry_urls_and_hashes_are_consistent():
    for spec in KNOWN_WEIGHTS.values():
        assert spec.url and spec.url.startswith("https://"), spec.key
        assert spec.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", spec.sha256), spec.key
        prefix = dl._HUB_PREFIX.search(spec.filename)
        if prefix and spec.sha256:  # a published hash must agree with the prefix torch hub put in the name
            assert spec.sha256.startswith(prefix.group(1)), spec.key
    assert dl.expected_sha256(KNOWN_WEIGHTS["alexnet"]).startswith("7be5be79")
    assert dl.expected_sha256(KNOWN_WEIGHTS["stylegan2_1024_ffhq"]) is None  # 'config-f.pt' is no hash
