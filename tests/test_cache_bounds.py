"""The disk caches stay within a size bound: the least recently used entries are evicted, the
ones in use are kept, and uploaded models are bounded as whole folders."""

from __future__ import annotations

import os
import time

import numpy as np

from vae import diskcache


def _file(path, size: int, age_s: float):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(os.urandom(size))
    t = time.time() - age_s
    os.utime(path, (t, t))
    return path


def test_prune_evicts_the_least_recently_used_first(tmp_path):
    old = _file(tmp_path / "a.npz", 400, 3000)
    mid = _file(tmp_path / "sub" / "b.safetensors", 400, 2000)
    new = _file(tmp_path / "c.npz", 400, 1000)
    live = _file(tmp_path / "d.npz", 400, 1)  # in use: never evicted
    removed = diskcache.prune(tmp_path, max_bytes=900)
    assert removed == [old, mid]  # oldest first, until 800 bytes remain
    assert new.exists() and live.exists()
    assert diskcache.prune(tmp_path, max_bytes=100) == [new]  # the live file stays over the bound
    assert live.exists()


def test_a_cache_hit_counts_as_a_use(tmp_path, monkeypatch):
    monkeypatch.setenv("VAE_CACHE_DIR", str(tmp_path / "user"))
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.safetensors").write_bytes(b"weights")
    calls = []

    def compute():
        calls.append(1)
        return {"x": np.arange(5, dtype=np.float32)}

    diskcache.cached_arrays(run, "latents", 1, "k", compute)
    (f,) = (run / ".cache").glob("latents-*.npz")
    t = time.time() - 5000
    os.utime(f, (t, t))
    diskcache.cached_arrays(run, "latents", 1, "k", compute)
    assert len(calls) == 1 and time.time() - f.stat().st_mtime < 60  # read, and marked used


def test_writing_an_entry_bounds_its_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("VAE_CACHE_DIR", str(tmp_path / "user"))
    monkeypatch.setattr(diskcache, "MAX_FOLDER_BYTES", 5000)
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.safetensors").write_bytes(b"weights")
    stale = _file(run / ".cache" / "tsne-old.safetensors", 6000, 9000)
    diskcache.cached_arrays(run, "latents", 1, "k", lambda: {"x": np.zeros(10, np.float32)})
    assert not stale.exists()
    assert any((run / ".cache").glob("latents-*.npz"))


def test_uploads_are_bounded_as_whole_folders(tmp_path, monkeypatch):
    from vae.ui import models

    monkeypatch.setenv("VAE_CACHE_DIR", str(tmp_path))
    up = tmp_path / "uploads"
    folders = []
    for i, age in enumerate([3000, 2000, 1000]):
        d = up / f"u{i}"
        _file(d / "model.safetensors", 500, age)
        _file(d / "config.json", 10, age)
        t = time.time() - age
        os.utime(d, (t, t))
        folders.append(d)
    keep = up / "new"
    _file(keep / "model.safetensors", 500, 0)
    _file(keep / "config.json", 10, 0)
    removed = models.bound_uploads(keep, max_bytes=1100)
    assert removed == folders[:2]  # the two oldest, whole
    assert folders[2].is_dir() and keep.is_dir()
