"""Property-based checks of what users hand the app: any bytes as an image (and its
preprocessing), as an MNIST IDX file, or as a picture in an image folder give a valid result or
the project's own error type, never a crash."""

from __future__ import annotations

import gzip
import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from vae.data import DatasetError
from vae.data.folder import load_folder
from vae.data.mnist import IMAGE_MAGIC, LABEL_MAGIC, MAX_IDX_BYTES, read_idx
from vae.imageio import ImageError, open_image
from vae.preprocess import PreprocessError, preprocess

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
MNIST_INFO = {"name": "mnist", "image_shape": [1, 28, 28], "preprocessing": {"ink": "high"}}
SHAPES_INFO = {"name": "shapes", "image_shape": [1, 32, 32], "preprocessing": {"ink": "high"}}


def _check_input(x) -> None:
    a = x.numpy() if hasattr(x, "numpy") else np.asarray(x)
    assert a.ndim == 4 and a.shape[0] == 1
    assert np.isfinite(a).all() and a.min() >= 0.0 and a.max() <= 1.0


@FUZZ
@given(blob=st.binary(max_size=2048))
def test_any_bytes_as_an_image(blob):
    try:
        img = open_image(blob, "upload.png")
    except ImageError:
        return
    for info in (MNIST_INFO, SHAPES_INFO):
        try:
            _check_input(preprocess(img, info).x)
        except PreprocessError:
            pass


@st.composite
def images(draw):
    mode = draw(st.sampled_from(["L", "RGB", "RGBA", "I;16", "I", "F", "P", "1", "LA", "CMYK"]))
    w, h = draw(st.integers(1, 80)), draw(st.integers(1, 80))
    raw = np.random.default_rng(draw(st.integers(0, 2**16))).integers(0, 256, (h, w, 4), np.uint8)
    img = Image.fromarray(raw, "RGBA")
    if mode in ("I;16", "I", "F"):
        arr = raw[..., 0].astype({"I;16": np.uint16, "I": np.int32, "F": np.float32}[mode])
        arr = arr * draw(st.sampled_from([1, 257]))
        img = Image.fromarray(arr.astype(np.uint16) if mode == "I;16" else arr)
    else:
        img = img.convert(mode)
    fmt = draw(
        st.sampled_from(["PNG", "GIF", "BMP", "WEBP", "JPEG"] if mode != "CMYK" else ["JPEG"])
    )
    buf = io.BytesIO()
    try:
        img.save(buf, format=fmt)
    except (OSError, ValueError, KeyError):  # a mode that format cannot hold: another draw
        buf = io.BytesIO()
        img.convert("RGB").save(buf, format="PNG")
    return buf.getvalue()


@FUZZ
@given(blob=images())
def test_any_real_image_is_prepared_or_refused_clearly(blob):
    img = open_image(blob, "photo")
    for info in (MNIST_INFO, SHAPES_INFO):
        try:
            _check_input(preprocess(img, info).x)
        except PreprocessError:
            pass


@FUZZ
@given(
    payload=st.binary(max_size=600),
    gz=st.booleans(),
    magic=st.sampled_from([IMAGE_MAGIC, LABEL_MAGIC]),
)
def test_any_bytes_as_an_idx_file(tmp_path_factory, payload, gz, magic):
    path = tmp_path_factory.mktemp("idx") / "train-images-idx3-ubyte.gz"
    head = magic.to_bytes(4, "big") if payload[:1] == b"\0" else b""  # sometimes a valid magic
    path.write_bytes(gzip.compress(head + payload) if gz else head + payload)
    try:
        a = read_idx(path, magic)
    except DatasetError:
        return
    assert a.dtype == np.uint8 and a.ndim == (3 if magic == IMAGE_MAGIC else 1)


def test_an_idx_gzip_bomb_is_refused_without_inflating_it(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    with gzip.open(path, "wb") as f:  # 100 MB of zeros after a valid header: 0.1 MB on disk
        f.write(
            IMAGE_MAGIC.to_bytes(4, "big")
            + (10**6).to_bytes(4, "big")
            + (28).to_bytes(4, "big") * 2
        )
        chunk = bytes(1 << 20)
        for _ in range((MAX_IDX_BYTES >> 20) + 36):
            f.write(chunk)
    assert path.stat().st_size < 1 << 20
    with pytest.raises(DatasetError, match="inflates to more than 64 MB"):
        read_idx(path, IMAGE_MAGIC)


@pytest.mark.filterwarnings("ignore:skipped .* unreadable image")  # the loader's own warning
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(blobs=st.lists(st.binary(max_size=300), min_size=1, max_size=4), good=st.integers(0, 6))
def test_an_image_folder_with_any_files(tmp_path_factory, blobs, good):
    root = tmp_path_factory.mktemp("folder")
    for cls in ("a", "b"):
        (root / cls).mkdir()
    for i, blob in enumerate(blobs):
        (root / "ab"[i % 2] / f"junk{i}.png").write_bytes(blob)
    for i in range(good):  # and some real pictures
        Image.fromarray(np.full((12, 10), 40 * i, np.uint8)).save(root / "ab"[i % 2] / f"ok{i}.png")
    try:
        ds = load_folder(root, "all", image_size=16)
    except DatasetError:
        return
    x = ds.x.numpy()
    assert x.shape[1:] == (1, 16, 16) and np.isfinite(x).all() and 0 <= x.min() <= x.max() <= 1
