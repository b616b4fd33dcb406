"""Faults on demand: a disk that fills up, a folder that refuses writes, a real read-only mount.

    full_disk("model.safetensors")   # writes to that file's temp file fail with ENOSPC midway
    read_only(folder)                # every write inside `folder` fails with EACCES
    ro_run([...cmd...], folder)      # run a command with `folder` mounted read-only (or skip)

Tests run as root in CI, where a chmod 0o555 folder stays writable, so `read_only` raises the
errors a read-only folder gives from the calls that write; `ro_run` gets the real thing from a
read-only bind mount in a private mount namespace (`unshare`), and skips where that is refused.
"""

from __future__ import annotations

import builtins
import errno
import io
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from vae import ModelConfig, TrainConfig

ROOT = Path(__file__).resolve().parents[2]
TINY = ModelConfig(image_shape=(1, 8, 8), arch="mlp", hidden=(32,), latent_dim=4)
STEPS_PER_EPOCH = 23  # sklearn digits' train split (1527 images) in batches of 64


def cfg(**kw) -> TrainConfig:
    base = {"dataset": "digits", "epochs": 3, "batch_size": 64, "lr": 3e-3, "seed": 1}
    base["device"] = "cpu"
    return TrainConfig(**{**base, **kw})


def cli_flags(run: Path, epochs: int = 3) -> list[str]:
    """`python -m vae.train` flags that train `TINY` with `cfg()` into `run`."""
    return [
        "--dataset", "digits", "--epochs", str(epochs), "--batch-size", "64", "--lr", "0.003",
        "--seed", "1", "--hidden", "32", "--latent-dim", "4", "--device", "cpu",
        "--no-progress", "--preview-every-s", "0", "--out", str(run),
    ]  # fmt: skip


def tmp_files(folder: Path) -> list[str]:
    """Temp files of the atomic writer (`.NAME.XXXX.tmp`) and import staging folders."""
    return sorted(
        str(p.relative_to(folder))
        for p in folder.rglob("*")
        if p.name.endswith(".tmp") or p.name.startswith(".import-")
    )


class _FullFile:
    """A file on a disk with `room` bytes left: a write past that writes what fits, then fails."""

    def __init__(self, f, room: int) -> None:
        self.f, self.room = f, room

    def write(self, data: bytes) -> int:
        n = max(0, min(len(data), self.room))
        self.f.write(data[:n])
        self.f.flush()
        self.room -= n
        if n < len(data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return n

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.f.close()

    def __getattr__(self, name):
        return getattr(self.f, name)


@pytest.fixture
def full_disk(monkeypatch):
    """`full_disk(*names, room=64)`: from now on, the atomic writer's temp files for those file
    names (all, when none given) hit ENOSPC after `room` bytes. Returns the list of the temp
    files it failed, for the test to check they are gone."""
    failed: list[Path] = []

    def install(*names: str, room: int = 64) -> list[Path]:
        paths: dict[int, str] = {}
        real_mkstemp, real_fdopen = tempfile.mkstemp, os.fdopen

        def mkstemp(*a, **k):
            fd, path = real_mkstemp(*a, **k)
            paths[fd] = path
            return fd, path

        def fdopen(fd, *a, **k):
            f = real_fdopen(fd, *a, **k)
            path = paths.pop(fd, None)
            target = Path(path).name.split(".")[1:-2] if path else []  # .NAME.XXXX.tmp
            if path and (not names or ".".join(target) in names):
                failed.append(Path(path))
                return _FullFile(f, room)
            return f

        monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
        monkeypatch.setattr(os, "fdopen", fdopen)
        return failed

    return install


@pytest.fixture
def read_only(monkeypatch):
    """`read_only(folder)`: every call that would create, change or remove something inside
    `folder` (or make `folder` itself) raises PermissionError(EACCES), as a read-only folder
    does for a user who is not root. Reading still works."""

    def install(folder: Path) -> None:
        folder = Path(folder).resolve()

        def inside(p) -> bool:
            try:
                return Path(os.path.abspath(os.fspath(p))).is_relative_to(folder)
            except TypeError:  # a file descriptor
                return False

        def deny(p):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(p))

        def guard(real, *, writes=lambda *a, **k: True, which=(0,)):
            def call(*a, **k):
                if writes(*a, **k) and any(inside(a[i]) for i in which if i < len(a)):
                    deny(a[which[0]])
                return real(*a, **k)

            return call

        wflags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
        monkeypatch.setattr(os, "open", guard(os.open, writes=lambda p, fl, *a, **k: fl & wflags))
        wmode = lambda f, mode="r", *a, **k: any(c in mode for c in "wax+")  # noqa: E731
        monkeypatch.setattr(builtins, "open", guard(builtins.open, writes=wmode))
        monkeypatch.setattr(io, "open", guard(io.open, writes=wmode))  # Path.open's
        for name in ("unlink", "rmdir", "chmod", "utime"):
            monkeypatch.setattr(os, name, guard(getattr(os, name)))
        new = lambda p, *a, **k: not os.path.lexists(p)  # noqa: E731 - else EEXIST, as ever
        monkeypatch.setattr(os, "mkdir", guard(os.mkdir, writes=new))
        for name in ("replace", "rename"):
            monkeypatch.setattr(os, name, guard(getattr(os, name), which=(0, 1)))

    return install


def ro_run(cmd: list[str], folder: Path, **kw) -> subprocess.CompletedProcess:
    """Run `cmd` with `folder` bind-mounted read-only in a mount namespace of its own (nothing
    outside the command sees the mount, and it goes when the command ends). Skips the test when
    this machine refuses such namespaces."""
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("no `unshare` here to mount a folder read-only")
    user = [] if os.geteuid() == 0 else ["-r"]  # a user namespace makes the mount allowed
    mount = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" "$0"'
    probe = [unshare, *user, "-m", "sh", "-c", mount + ' && ! touch "$0/.probe"', str(folder)]
    if subprocess.run(probe, capture_output=True).returncode != 0:
        pytest.skip("this machine does not allow a read-only bind mount (unshare -m refused)")
    script = mount + ' && exec "$@"'
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [unshare, *user, "-m", "sh", "-c", script, str(folder), *cmd],
        capture_output=True, text=True, cwd=ROOT, env=env, **kw,
    )  # fmt: skip


PY = sys.executable
