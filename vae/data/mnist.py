"""MNIST (LeCun et al. 1998) and Fashion-MNIST (Xiao et al. 2017) from their canonical IDX files.

The four `.gz` files live in `<data_dir or $VAE_DATA_DIR or ./data>/<name>/`. When they are
missing they are downloaded from a list of mirrors (tried in order; override with the
`VAE_MNIST_MIRRORS` / `VAE_FASHION_MNIST_MIRRORS` environment variables, comma separated, or the
`mirrors` argument). Each download goes to a temp file in the same folder, is checked against the
canonical md5 (of the `.gz`, or of its decompressed content), and only then renamed into place.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vae.data import (
    INK_HIGH,
    DatasetError,
    ImageDataset,
    Progress,
    default_data_dir,
)

FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
ALL_FILES = FILES["train"] + FILES["test"]
IMAGE_MAGIC, LABEL_MAGIC = 2051, 2049  # IDX headers: 0x00000803 (uint8, 3 dims), 0x00000801
ROWS = COLS = 28
TIMEOUT_S = 30.0
BLOCK = 1 << 16


@dataclass(frozen=True)
class IdxSpec:
    title: str
    env: str  # environment variable that overrides the mirror list
    mirrors: tuple[str, ...]
    # file -> (md5 of the canonical .gz, md5 of its decompressed content or None if unknown)
    md5: dict[str, tuple[str, str | None]]
    sizes: dict[str, int]  # canonical .gz sizes in bytes, used only to estimate progress totals
    label_names: tuple[str, ...]
    binary_like: bool


SPECS = {
    "mnist": IdxSpec(
        title="MNIST",
        env="VAE_MNIST_MIRRORS",
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
            "http://yann.lecun.com/exdb/mnist/",
        ),
        md5={
            "train-images-idx3-ubyte.gz": (
                "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                "6bbc9ace898e44ae57da46a324031adb",
            ),
            "train-labels-idx1-ubyte.gz": (
                "d53e105ee54ea40749a09fcbcd1e9432",
                "a25bea736e30d166cdddb491f175f624",
            ),
            "t10k-images-idx3-ubyte.gz": (
                "9fb629c4189551a2d022fa330f9573f3",
                "2646ac647ad5339dbf082846283269ea",
            ),
            "t10k-labels-idx1-ubyte.gz": (
                "ec29112dd5afa0611ce80d1b7f02629c",
                "27ae3e4e09519cfbb04c329615203637",
            ),
        },
        sizes={
            "train-images-idx3-ubyte.gz": 9912422,
            "train-labels-idx1-ubyte.gz": 28881,
            "t10k-images-idx3-ubyte.gz": 1648877,
            "t10k-labels-idx1-ubyte.gz": 4542,
        },
        label_names=tuple(str(i) for i in range(10)),
        binary_like=True,
    ),
    "fashion-mnist": IdxSpec(
        title="Fashion-MNIST",
        env="VAE_FASHION_MNIST_MIRRORS",
        mirrors=(
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
            "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
        ),
        md5={
            "train-images-idx3-ubyte.gz": ("8d4fb7e6c68d591d4c3dfef9ec88bf0d", None),
            "train-labels-idx1-ubyte.gz": ("25c81989df183df01b3e8a0aad5dffbe", None),
            "t10k-images-idx3-ubyte.gz": ("bef4ecab320f06d8554ea6380940ec79", None),
            "t10k-labels-idx1-ubyte.gz": ("bb300cfdad3c16e7a12a480ee83cd310", None),
        },
        sizes={
            "train-images-idx3-ubyte.gz": 26421880,
            "train-labels-idx1-ubyte.gz": 29515,
            "t10k-images-idx3-ubyte.gz": 4422102,
            "t10k-labels-idx1-ubyte.gz": 5148,
        },
        label_names=(
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ),
        binary_like=False,
    ),
}


def spec_for(name: str) -> IdxSpec:
    if name not in SPECS:
        raise DatasetError(f"{name!r} is not an IDX dataset; choose one of {', '.join(SPECS)}")
    return SPECS[name]


def dataset_dir(name: str, data_dir: str | os.PathLike | None = None) -> Path:
    """The folder holding the four `.gz` files of `name`."""
    spec_for(name)
    return Path(data_dir if data_dir is not None else default_data_dir()) / name


def split_files(split: str) -> tuple[str, ...]:
    if split == "all":
        return ALL_FILES
    if split not in FILES:
        raise DatasetError(f"split must be 'train', 'test' or 'all', got {split!r}")
    return FILES[split]


def missing_files(
    name: str, data_dir: str | os.PathLike | None = None, split: str = "all"
) -> list[str]:
    folder = dataset_dir(name, data_dir)
    return [f for f in split_files(split) if not (folder / f).is_file()]


def mirrors_for(name: str, mirrors: Sequence[str] | None = None) -> list[str]:
    """Base URLs to try, in order: the argument, else the environment variable, else canonical."""
    spec = spec_for(name)
    if mirrors is None and os.environ.get(spec.env, "").strip():
        mirrors = os.environ[spec.env].replace(" ", ",").split(",")
    urls = [m.strip() for m in (mirrors if mirrors is not None else spec.mirrors) if m.strip()]
    if not urls:
        raise DatasetError(f"no download mirrors configured for {spec.title} (check ${spec.env})")
    return urls


def manual_hint(name: str, folder: Path) -> str:
    """Where to put the files by hand, for error messages."""
    return (
        f"To install {spec_for(name).title} by hand, download {', '.join(ALL_FILES)} from "
        f"{spec_for(name).mirrors[0]} and put them in {folder.resolve()} (or set VAE_DATA_DIR to "
        f"a folder that holds {name}/)."
    )


# --- download ------------------------------------------------------------------------------------
class _Corrupt(Exception):
    """The bytes arrived but are not the canonical file (bad checksum or truncated)."""


def md5_ok(path: Path, expected: tuple[str, str | None], gz_md5: str) -> bool:
    """Accept the canonical md5 of the .gz, or of its decompressed content (a re-gzipped copy)."""
    if gz_md5 == expected[0]:
        return True
    if expected[1] is None:
        return False
    try:
        raw = gzip.decompress(path.read_bytes())
    except (OSError, EOFError, zlib.error):
        return False
    return hashlib.md5(raw, usedforsecurity=False).hexdigest() == expected[1]


def fetch(
    url: str, dest: Path, expected: tuple[str, str | None], on_bytes: Progress, timeout: float
) -> None:
    """Download `url` to `dest` atomically; `on_bytes(done, content_length_or_None)`."""
    try:
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    except OSError as e:
        raise DatasetError(f"cannot write a download into {dest.parent.resolve()}: {e}") from None
    try:
        h = hashlib.md5(usedforsecurity=False)
        req = urllib.request.Request(url, headers={"User-Agent": "vae-latent-explorer"})
        with os.fdopen(fd, "wb") as f, urllib.request.urlopen(req, timeout=timeout) as resp:
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            done = 0
            try:
                while block := resp.read(BLOCK):
                    f.write(block)
                    h.update(block)
                    done += len(block)
                    on_bytes(done, total)
            except http.client.IncompleteRead as e:
                raise _Corrupt(f"truncated: the connection closed early ({e})") from None
            f.flush()
            os.fsync(f.fileno())
        if total is not None and done != total:
            raise _Corrupt(f"truncated: got {done:,} of {total:,} bytes")
        if not md5_ok(Path(tmp), expected, h.hexdigest()):
            raise _Corrupt(f"checksum mismatch (md5 {h.hexdigest()} of {done:,} bytes)")
        os.replace(tmp, dest)
    finally:
        Path(tmp).unlink(missing_ok=True)


def fetch_any(
    name: str, fname: str, folder: Path, urls: list[str], on_bytes: Progress, timeout: float
) -> None:
    """Try each mirror in turn for one file; raise a DatasetError saying why none worked."""
    spec = spec_for(name)
    failures: list[str] = []
    kinds: set[str] = set()
    for base in urls:
        url = base.rstrip("/") + "/" + fname
        try:
            fetch(url, folder / fname, spec.md5[fname], on_bytes, timeout)
            return
        except _Corrupt as e:
            kinds.add("corrupt")
            failures.append(f"{url}: {e}")
        except (OSError, http.client.HTTPException, ValueError) as e:
            offline = isinstance(e, (ConnectionError, TimeoutError)) or (
                isinstance(e, urllib.error.URLError) and not isinstance(e, urllib.error.HTTPError)
            )
            kinds.add("offline" if offline else "other")
            failures.append(f"{url}: {type(e).__name__}: {getattr(e, 'reason', None) or e}")
    if "corrupt" in kinds:
        what = "the download was corrupt or incomplete and was deleted"
    elif kinds == {"offline"}:
        what = "no mirror could be reached (is this computer offline?)"
    else:
        what = "the download failed"
    raise DatasetError(
        f"Could not download {spec.title} file {fname}: {what}. Tried: {'; '.join(failures)}. "
        + manual_hint(name, folder)
    )


def download_idx(
    name: str,
    data_dir: str | os.PathLike | None = None,
    progress: Progress | None = None,
    *,
    split: str = "all",
    mirrors: Sequence[str] | None = None,
    timeout: float = TIMEOUT_S,
) -> Path:
    """Fetch the missing files of `split` into `dataset_dir(name)` and return that folder.

    `progress(bytes_done, total_or_None)` counts bytes over all files of this call; the total is
    estimated from the canonical sizes until each file's Content-Length is known.
    """
    spec, folder = spec_for(name), dataset_dir(name, data_dir)
    todo = missing_files(name, data_dir, split)
    if not todo:
        return folder
    urls = mirrors_for(name, mirrors)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DatasetError(f"cannot create {folder.resolve()} for {spec.title}: {e}") from None
    sizes = {f: spec.sizes[f] for f in todo}  # refined to the real Content-Length as it arrives
    finished = 0  # bytes of the files already in place

    for fname in todo:

        def on_bytes(
            done: int, total: int | None, fname: str = fname, before: int = finished
        ) -> None:
            if total is not None:
                sizes[fname] = total
            if progress is not None:
                progress(before + done, max(sum(sizes.values()), before + done))

        fetch_any(name, fname, folder, urls, on_bytes, timeout)
        sizes[fname] = (folder / fname).stat().st_size
        finished += sizes[fname]
    return folder


# --- reading IDX ---------------------------------------------------------------------------------
MAX_IDX_BYTES = 64 << 20  # train-images-idx3-ubyte is 47 MB inflated


def read_idx(path: Path, magic: int) -> np.ndarray:
    """Decompress and parse one IDX file: images (N, 28, 28) or labels (N,), uint8."""
    try:
        with gzip.open(path, "rb") as f:  # streamed, and bounded: a small .gz can inflate to GBs
            data = f.read(MAX_IDX_BYTES + 1)
        if len(data) > MAX_IDX_BYTES:
            raise DatasetError(
                f"{path} inflates to more than {MAX_IDX_BYTES >> 20} MB; the largest canonical "
                "IDX file is 47 MB. Delete it and load the dataset again."
            )
    except (OSError, EOFError, zlib.error) as e:
        raise DatasetError(
            f"{path} is not a readable gzip file ({e}); it is corrupt or truncated. Delete it and "
            "load the dataset again to download a fresh copy."
        ) from None
    ndim = 3 if magic == IMAGE_MAGIC else 1
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DatasetError(f"{path} is too short to be an IDX file ({len(data)} bytes)")
    got = int.from_bytes(data[:4], "big")
    if got != magic:
        kind = "images" if magic == IMAGE_MAGIC else "labels"
        raise DatasetError(
            f"{path} has IDX magic number {got}, expected {magic} for {kind}; it is not a "
            "canonical MNIST-format file. Delete it and download it again."
        )
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    if ndim == 3 and dims[1:] != [ROWS, COLS]:
        raise DatasetError(f"{path} holds {dims[1]}x{dims[2]} images; expected {ROWS}x{COLS}")
    if len(data) != header + int(np.prod(dims)):
        raise DatasetError(
            f"{path} is truncated or padded: header says {dims} but the file has "
            f"{len(data) - header:,} data bytes. Delete it and download it again."
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def load_split(name: str, folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    img_file, lab_file = FILES[split]
    images = read_idx(folder / img_file, IMAGE_MAGIC)  # (N, 28, 28) uint8
    labels = read_idx(folder / lab_file, LABEL_MAGIC)  # (N,) uint8
    if len(images) != len(labels):
        raise DatasetError(
            f"{folder}: {img_file} has {len(images):,} images but {lab_file} has "
            f"{len(labels):,} labels; the files do not belong together."
        )
    n_classes = len(spec_for(name).label_names)
    if len(labels) and labels.max() >= n_classes:
        raise DatasetError(f"{folder / lab_file} has label {labels.max()}; expected 0..9")
    return images, labels


def load_idx_dataset(
    name: str,
    split: str = "train",
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
    progress: Progress | None = None,
    *,
    mirrors: Sequence[str] | None = None,
    timeout: float = TIMEOUT_S,
) -> ImageDataset:
    """MNIST or Fashion-MNIST, canonical split (train 60,000 / test 10,000; "all" = both)."""
    spec, folder = spec_for(name), dataset_dir(name, data_dir)
    missing = missing_files(name, data_dir, split)
    if missing and not download:
        have = len(ALL_FILES) - len(missing_files(name, data_dir))
        raise DatasetError(
            f"{spec.title} is not installed ({have} of {len(ALL_FILES)} files in "
            f"{folder.resolve()}; the {split} split needs {', '.join(missing)}). "
            f"Download it (about {sum(spec.sizes.values()) >> 20} MB) with the app's Download "
            "button, or " + manual_hint(name, folder)[0].lower() + manual_hint(name, folder)[1:]
        )
    if missing:
        download_idx(name, data_dir, progress, split=split, mirrors=mirrors, timeout=timeout)
    splits = ("train", "test") if split == "all" else (split,)
    parts = [load_split(name, folder, s) for s in splits]
    images = np.concatenate([p[0] for p in parts]) if len(parts) > 1 else parts[0][0]
    labels = np.concatenate([p[1] for p in parts]) if len(parts) > 1 else parts[0][1]
    x = images.astype(np.float32)
    np.divide(x, 255.0, out=x)
    return ImageDataset(
        name=name,
        x=torch.from_numpy(x).unsqueeze(1),  # (N, 1, 28, 28)
        y=torch.from_numpy(labels.astype(np.int64)),  # (N,)
        label_names=list(spec.label_names),
        ink=INK_HIGH,
        binary_like=spec.binary_like,
    )
