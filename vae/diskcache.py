"""The disk cache that the app and the CLIs share: where it lives, how entries are named, and
`.npz` files written atomically and read back without pickles.

    folder = cache_dir(run.path)          # <run>/.cache if writable, else <user dir>/cache/<id>
    arrays = cached_arrays(run.path, "means", 1, "train-ab12", compute, check=valid)

Entries are named `<kind>-v<version>-<run id>-<key>.npz`; the run id is a content hash of the
weights, so a retrained model never reads stale numbers. A file that cannot be read, or that
`check` rejects, is a miss: it is recomputed and overwritten, never trusted.
"""

from __future__ import annotations

import functools
import io
import logging
import math
import os
import stat
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from vae.checkpoint import WEIGHTS_FILE, atomic_write_bytes, weights_hash

MAX_NPZ_BYTES = 2 * 1024**3  # a cache file larger than this (or claiming to be) is ignored
MAX_FOLDER_BYTES = 512 * 1024**2  # one run's cache folder; the oldest entries go beyond this
MAX_USER_CACHE_BYTES = 2 * 1024**3  # all runs' caches under the user folder together
IN_USE_S = 60.0  # entries written or read this recently are never evicted
Arrays = dict[str, np.ndarray]
_log = logging.getLogger(__name__)


def user_dir() -> Path:
    """Per-user folder for caches and uploaded models (`$VAE_CACHE_DIR` overrides)."""
    return Path(os.environ.get("VAE_CACHE_DIR") or Path.home() / ".cache" / "vae-latent-explorer")


def run_id(run_dir: str | os.PathLike) -> str:
    """A short content hash of the run's weights: the identity of a model in the disk caches."""
    s = (Path(run_dir) / WEIGHTS_FILE).stat()
    return _weights_id(str(Path(run_dir).resolve()), s.st_mtime_ns, s.st_size)


@functools.lru_cache(maxsize=64)
def _weights_id(path: str, mtime_ns: int, size: int) -> str:
    return weights_hash(path)[:16]


def cache_dir(run_dir: str | os.PathLike, ident: str | None = None) -> Path:
    """Where disk caches for a run go: `<run>/.cache` if writable, else the user cache dir.

    `ident` is the run's `run_id` when the caller already has it. Raises OSError when neither
    folder can be made.
    """
    local = Path(run_dir) / ".cache"
    try:
        local.mkdir(exist_ok=True)
        if os.access(local, os.W_OK):
            return local
    except OSError:
        pass
    out = user_dir() / "cache" / (ident or run_id(run_dir))
    out.mkdir(parents=True, exist_ok=True)
    return out


def save_npz(path: str | os.PathLike, arrays: Arrays) -> None:
    """Write `arrays` as an uncompressed `.npz`, atomically (temp file, then os.replace)."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def load_npz(path: str | os.PathLike, max_bytes: int = MAX_NPZ_BYTES) -> Arrays | None:
    """The arrays of an `.npz`, or None if it is missing, unreadable, or not plain arrays.

    Nothing is unpickled (object arrays are refused), and no array is allocated before its
    header is checked against the bytes the archive really holds, so a corrupt or truncated
    file costs at most `max_bytes` of reading, never a crash.
    """
    try:
        if os.stat(path).st_size > max_bytes:
            return None
        out: Arrays = {}
        with zipfile.ZipFile(path) as z:
            members = z.infolist()
            if sum(m.file_size for m in members) > max_bytes:
                return None
            for m in members:
                if not m.filename.endswith(".npy"):
                    return None
                with z.open(m) as f:
                    arr = _read_npy(f, m.file_size)
                if arr is None:
                    return None
                out[m.filename.removesuffix(".npy")] = arr
        return out
    except (OSError, EOFError, ValueError, zipfile.BadZipFile, zipfile.LargeZipFile):
        return None
    except Exception as e:  # noqa: BLE001 - zlib, unicode or header errors: any of them is a miss
        _log.warning("ignoring unreadable cache file %s: %s", path, e)
        return None


def _read_npy(f: io.BufferedIOBase, size: int) -> np.ndarray | None:
    """One `.npy` member of at most `size` bytes, or None if its header and data disagree."""
    fmt = np.lib.format
    read_header = {(1, 0): fmt.read_array_header_1_0, (2, 0): fmt.read_array_header_2_0}
    version = fmt.read_magic(f)
    if version not in read_header:
        return None
    shape, fortran, dtype = read_header[version](f)
    if dtype.hasobject:
        return None
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes > size:
        return None
    data = f.read(nbytes)
    if len(data) != nbytes:
        return None
    arr = np.frombuffer(bytearray(data), dtype=dtype)  # writable: owns a copy of the bytes
    return arr.reshape(shape, order="F" if fortran else "C")


def cached_arrays(
    run_dir: str | os.PathLike,
    kind: str,
    version: int,
    key: str,
    compute: Callable[[], Arrays],
    *,
    check: Callable[[Arrays], bool] | None = None,
    ident: str | None = None,
    refresh: bool = False,
) -> Arrays:
    """`<kind>-v<version>-<run id>-<key>.npz` from the disk cache, else `compute()`d and saved.

    A file `check` rejects is recomputed too; `refresh` skips reading. Files of the same kind for
    other weights (a retrained run) or another version are removed. When the cache cannot be
    written (a read-only disk), the computed arrays are returned anyway, with a warning.
    """
    ident = ident or run_id(run_dir)
    current = f"{kind}-v{version}-{ident}-"
    try:
        f = cache_dir(run_dir, ident) / f"{current}{key}.npz"
    except OSError as e:
        _log.warning("no disk cache for %s: %s", run_dir, e)
        return compute()
    arrays = None if refresh else load_npz(f)
    if arrays is not None and check is not None and not check(arrays):
        arrays = None
    if arrays is not None:
        touch(f)
    if arrays is None:
        arrays = compute()
        try:
            save_npz(f, arrays)
            for stale in f.parent.glob(f"{kind}-v*.npz"):
                if not stale.name.startswith(current):
                    stale.unlink(missing_ok=True)
            bound(f.parent)
        except OSError as e:
            _log.warning("could not write the disk cache %s: %s", f, e)
    return arrays


# --- size bounds ---------------------------------------------------------------------------------
def touch(path: str | os.PathLike) -> None:
    """Mark a cache entry as just used, so eviction takes the least recently used first."""
    try:
        os.utime(path)
    except OSError:
        pass


def prune(folder: str | os.PathLike, max_bytes: int, *, in_use_s: float = IN_USE_S) -> list[Path]:
    """Delete the least recently used files under `folder` until the rest fit in `max_bytes`;
    files used in the last `in_use_s` seconds stay. Returns the files removed."""
    now = time.time()
    files = []
    for p in Path(folder).rglob("*"):
        try:
            st = p.lstat()
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            files.append((st.st_mtime, st.st_size, p))
    total = sum(size for _, size, _ in files)
    removed = []
    for mtime, size, p in sorted(files):  # oldest first
        if total <= max_bytes:
            break
        if now - mtime < in_use_s:
            continue
        try:
            p.unlink()
        except OSError:
            continue
        total -= size
        removed.append(p)
    return removed


def bound(folder: str | os.PathLike) -> None:
    """Keep a cache folder, and the user folder's caches together, within their size bounds."""
    prune(folder, MAX_FOLDER_BYTES)
    root = user_dir() / "cache"
    try:
        inside = Path(folder).resolve().is_relative_to(root.resolve())
    except OSError:
        inside = False
    if inside:
        prune(root, MAX_USER_CACHE_BYTES)
