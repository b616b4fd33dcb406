"""The temp files of killed saves go the next time the folder is opened, and only those: a
fresh one, or one a live writer holds locked, stays."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import pytest

from tests.faults.conftest import TINY, cfg, tmp_files
from vae import jobs
from vae.archive import IMPORT_PREFIX, clean_stale_imports
from vae.checkpoint import STALE_TMP_S, _lock, atomic_write_bytes, clean_stale_temps
from vae.train import train


def temp_file(folder: Path, name: str, age_s: float) -> Path:
    """A temp file as the atomic writer names it, last written `age_s` ago."""
    fd, path = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
    os.write(fd, b"half a save")
    os.close(fd)
    old = time.time() - age_s
    os.utime(path, (old, old))
    return Path(path)


def test_old_temp_files_go_and_fresh_or_locked_ones_stay(tmp_path):
    stale = temp_file(tmp_path, "model.safetensors", 2 * STALE_TMP_S)
    fresh = temp_file(tmp_path, "config.json", 1.0)
    other = tmp_path / ".notes.tmp"  # not the writer's naming: not ours to remove
    other.write_text("x")
    os.utime(other, (0, 0))
    live = temp_file(tmp_path, "train_state.safetensors", 2 * STALE_TMP_S)
    fd = os.open(live, os.O_RDWR)
    _lock(fd)  # as atomic_write_bytes holds it while it writes
    try:
        assert clean_stale_temps(tmp_path) == [stale]
    finally:
        os.close(fd)
    assert not stale.exists() and fresh.exists() and other.exists() and live.exists()
    assert clean_stale_temps(tmp_path) == [live]  # its writer is gone now
    assert clean_stale_temps(tmp_path / "missing") == []  # never raises


def test_the_writer_holds_its_lock_while_it_writes(tmp_path, monkeypatch):
    """The cleaner meets a writer mid-write (an old temp file, as after a long stall): it stays."""
    seen = {}
    real_fsync = os.fsync

    def fsync_then_clean(fd):
        (tmp,) = tmp_path.glob(".model.safetensors.*.tmp")
        os.utime(tmp, (0, 0))  # looks ancient
        seen["removed"] = clean_stale_temps(tmp_path)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync_then_clean)
    atomic_write_bytes(tmp_path / "model.safetensors", b"weights")
    assert seen["removed"] == [] and (tmp_path / "model.safetensors").read_bytes() == b"weights"
    assert tmp_files(tmp_path) == []


def test_opening_a_run_cleans_what_killed_saves_left(tmp_path):
    run = tmp_path / "run"
    train(TINY, cfg(epochs=1), run, progress_bar=False, max_steps=3)
    stale = temp_file(run, "train_state.safetensors", 2 * STALE_TMP_S)
    fresh = temp_file(run, "model.safetensors", 0.0)  # maybe another process's save right now
    train(TINY, cfg(epochs=1), run, resume=True, progress_bar=False)
    assert not stale.exists() and fresh.exists()
    assert tmp_files(run) == [fresh.name]


def test_listing_the_runs_cleans_killed_saves_and_imports(tmp_path, make_run):
    root = tmp_path / "runs"
    run = make_run("runs/one", steps=5)
    stale = temp_file(run, "metrics.json", 2 * STALE_TMP_S)
    fresh = temp_file(run, "status.json", 0.0)
    old_import = Path(tempfile.mkdtemp(dir=root, prefix=IMPORT_PREFIX))
    (old_import / "run").mkdir()
    (old_import / "run" / "model.safetensors").write_bytes(b"half")
    for p in (old_import / "run" / "model.safetensors", old_import / "run", old_import):
        os.utime(p, (0, 0))
    live_import = Path(tempfile.mkdtemp(dir=root, prefix=IMPORT_PREFIX))  # unpacking now
    assert [r.name for r in jobs.list_runs(root)] == ["one"]
    assert not stale.exists() and fresh.exists()
    assert not old_import.exists() and live_import.exists()
    assert clean_stale_imports(tmp_path / "missing") == []


@pytest.mark.parametrize("fails", ["write", "replace"])
def test_a_failed_write_leaves_no_temp_file_and_the_old_file(tmp_path, monkeypatch, fails):
    import errno

    target = tmp_path / "model.safetensors"
    atomic_write_bytes(target, b"old")

    def no_space(*a, **k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync" if fails == "write" else "replace", no_space)
    with pytest.raises(OSError, match=f"cannot write model.safetensors to {tmp_path}: the disk"):
        atomic_write_bytes(target, b"new" * 1000)
    monkeypatch.undo()
    assert target.read_bytes() == b"old" and tmp_files(tmp_path) == []
