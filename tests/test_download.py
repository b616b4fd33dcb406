"""MNIST download through a loopback HTTP server serving $VAE_DATA_DIR; never the internet."""

from __future__ import annotations

import functools
import gzip
import hashlib
import os
import shutil
import socket
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from vae.data import DatasetError
from vae.data.mnist import ALL_FILES, SPECS, load_idx_dataset, md5_ok
from vae.data.status import dataset_status, download


@pytest.fixture(scope="module")
def shared() -> Path:
    root = os.environ.get("VAE_DATA_DIR")
    if not root:
        pytest.skip("VAE_DATA_DIR is not set; the download tests serve real MNIST from it")
    if any(not (Path(root) / "mnist" / f).is_file() for f in ALL_FILES):
        pytest.skip(f"MNIST IDX files are not in {root}/mnist")
    return Path(root)


class Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep pytest output clean
        pass


class Corrupting(Quiet):
    """Serves every file with a few bytes flipped (same length, so Content-Length is right)."""

    def copyfile(self, source, outputfile) -> None:
        data = bytearray(source.read())
        for i in range(len(data) // 2, len(data) // 2 + 8):
            data[i] ^= 0xFF
        outputfile.write(bytes(data))


class Truncating(Quiet):
    """Announces the full Content-Length, sends half the bytes, then closes the connection."""

    def copyfile(self, source, outputfile) -> None:
        data = source.read()
        outputfile.write(data[: len(data) // 2])
        self.close_connection = True


class TruncatingNoLength(Quiet):
    """Streams half of each file with no Content-Length: only the checksum can tell."""

    def do_GET(self) -> None:
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "application/gzip")
        self.end_headers()
        self.wfile.write(data[: len(data) // 2])
        self.close_connection = True


def serve(directory: Path, handler: type[SimpleHTTPRequestHandler]) -> Iterator[str]:
    server = ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(handler, directory=str(directory))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/mnist/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def mirror(shared: Path) -> Iterator[str]:
    yield from serve(shared, Quiet)


@pytest.fixture
def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/mnist/"  # nothing listens there any more


def leftovers(root: Path) -> list[str]:
    folder = root / "mnist"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_download_all_then_load(tmp_path, mirror, shared):
    calls: list[tuple[int, int | None]] = []
    folder = download(
        "mnist", tmp_path, progress=lambda d, t: calls.append((d, t)), mirrors=[mirror]
    )
    assert folder == tmp_path / "mnist" and leftovers(tmp_path) == sorted(ALL_FILES)
    sizes = [(shared / "mnist" / f).stat().st_size for f in ALL_FILES]
    for f in ALL_FILES:  # byte-identical copies, one of them (train images) re-gzipped
        assert (folder / f).read_bytes() == (shared / "mnist" / f).read_bytes()
    done = [d for d, _ in calls]
    assert len(calls) > 10 and done == sorted(done) and done[0] > 0
    assert all(t is not None and t >= d for d, t in calls)
    assert calls[-1] == (sum(sizes), sum(sizes))
    assert dataset_status("mnist", tmp_path)["available"]
    test = load_idx_dataset("mnist", "test", tmp_path, download=False)
    assert test.x.shape == (10000, 1, 28, 28) and test.y.shape == (10000,)
    assert float(test.x.max()) == 1.0 and set(test.y.tolist()) == set(range(10))


def test_md5_accepts_gz_or_decompressed(tmp_path, shared):
    src = shared / "mnist" / "t10k-labels-idx1-ubyte.gz"
    expected = SPECS["mnist"].md5[src.name]
    gz_md5 = hashlib.md5(src.read_bytes()).hexdigest()
    assert md5_ok(src, expected, gz_md5)  # the canonical .gz
    regz = tmp_path / src.name
    regz.write_bytes(gzip.compress(gzip.decompress(src.read_bytes()), compresslevel=1, mtime=1))
    regz_md5 = hashlib.md5(regz.read_bytes()).hexdigest()
    assert regz_md5 != expected[0] and md5_ok(regz, expected, regz_md5)  # same content
    bad = tmp_path / "bad.gz"
    bad.write_bytes(gzip.compress(gzip.decompress(src.read_bytes())[:-1]))
    assert not md5_ok(bad, expected, hashlib.md5(bad.read_bytes()).hexdigest())


def test_env_var_mirrors_and_fallback(tmp_path, mirror, closed_port_url, monkeypatch):
    monkeypatch.setenv("VAE_MNIST_MIRRORS", f"{closed_port_url}, {mirror}")
    ds = load_idx_dataset("mnist", "test", tmp_path, download=True)  # first mirror is down
    assert len(ds) == 10000
    assert leftovers(tmp_path) == ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]


@pytest.mark.parametrize("handler", [Corrupting, Truncating, TruncatingNoLength])
def test_bad_download_leaves_nothing(tmp_path, shared, handler):
    for url in serve(shared, handler):
        with pytest.raises(DatasetError, match="corrupt or incomplete and was deleted"):
            load_idx_dataset("mnist", "test", tmp_path, mirrors=[url])
    assert leftovers(tmp_path) == []  # no partial file and no temp file


def test_unreachable_mirror_is_a_clear_offline_error(tmp_path, closed_port_url):
    with pytest.raises(DatasetError) as err:
        load_idx_dataset("mnist", "train", tmp_path, mirrors=[closed_port_url], timeout=5)
    msg = str(err.value)
    assert "offline" in msg and "by hand" in msg and closed_port_url in msg
    assert str((tmp_path / "mnist").resolve()) in msg and "train-images-idx3-ubyte.gz" in msg
    assert leftovers(tmp_path) == []


def test_only_missing_files_are_fetched(tmp_path, shared, closed_port_url):
    (tmp_path / "mnist").mkdir()
    for f in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(shared / "mnist" / f, tmp_path / "mnist" / f)
    ds = load_idx_dataset("mnist", "test", tmp_path, mirrors=[closed_port_url])  # no fetch
    assert len(ds) == 10000
