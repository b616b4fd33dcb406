"""A user's `.npz` dataset: an archive that would inflate far beyond its size is refused from the
arrays' headers before anything is allocated, and any bytes give arrays or a DatasetError."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vae.data import DatasetError
from vae.data.npz import declared_bytes, load_npz, read_arrays


def _bomb(path: Path, shape: tuple[int, ...]) -> Path:
    """An .npz whose x is `shape` zeros, deflated: tiny on disk, huge in memory."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "|u1", "fortran_order": False, "shape": shape}
    )
    n = int(np.prod(shape))
    with (
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z,
        z.open("x.npy", "w", force_zip64=True) as f,
    ):
        f.write(header.getvalue())
        chunk = bytes(1 << 20)
        for _ in range(n >> 20):
            f.write(chunk)
        f.write(bytes(n % (1 << 20)))
    return path


def test_a_zip_bomb_is_refused_from_its_headers(tmp_path, monkeypatch):
    path = _bomb(tmp_path / "bomb.npz", (64 * 1024, 64, 64))  # 256 MB of zeros, ~0.25 MB on disk
    assert path.stat().st_size < 2 << 20
    assert declared_bytes(path) == 64 * 1024 * 64 * 64  # read from the header alone
    monkeypatch.setattr(np, "load", lambda *a, **k: pytest.fail("np.load must not be reached"))
    with pytest.raises(DatasetError, match="would take 256 MB in memory; the limit is 100 MB"):
        read_arrays(path, max_bytes=100 << 20)


def test_a_header_that_promises_more_than_the_member_holds_is_refused(tmp_path):
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f4", "fortran_order": False, "shape": (10**6, 28, 28)}
    )
    path = tmp_path / "liar.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("x.npy", header.getvalue() + bytes(100))
    with pytest.raises(DatasetError, match="declares 3,136,000,000 bytes but holds"):
        read_arrays(path)


def test_a_plain_dataset_still_loads(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (20, 8, 8), dtype=np.uint8)
    np.savez_compressed(tmp_path / "ok.npz", x=x, y=np.arange(20) % 2)
    ds = load_npz(tmp_path / "ok.npz", "all")
    assert len(ds) == 20
    np.testing.assert_allclose(ds.x[:, 0].numpy() * 255, x, atol=1e-3)  # the same pixels


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(blob=st.binary(max_size=4096))
def test_any_bytes_give_arrays_or_a_dataset_error(tmp_path, blob):
    path = tmp_path / "fuzz.npz"
    path.write_bytes(blob)
    try:
        out = read_arrays(path)
    except DatasetError:
        return
    assert all(isinstance(v, np.ndarray) for v in out.values())


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_a_real_archive_with_any_bytes_flipped_gives_a_dataset_error_or_arrays(tmp_path, data):
    buf = io.BytesIO()
    np.savez_compressed(buf, x=np.zeros((4, 8, 8), np.uint8), y=np.arange(4))
    raw = bytearray(buf.getvalue())
    for _ in range(data.draw(st.integers(1, 8))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    path = tmp_path / "flipped.npz"
    path.write_bytes(bytes(raw))
    try:
        load_npz(path, "all")
    except DatasetError:
        pass
