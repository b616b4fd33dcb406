"""Checkpoint zips: export a run folder, and import an uploaded zip safely. Nothing is unpickled.

    blob = export_zip(Path("runs/mnist"))        # mnist/config.json, model.safetensors, metrics*
    blob = export_zip(path, full=True)           # a backup: + steps.jsonl and the training state
    ck = check_zip(blob)                         # validated members (CheckpointError otherwise)
    path = extract_zip(blob, Path("runs/copy"))  # unpack to a temp folder, check it, publish

A zip may hold its files at the top level or inside one folder. Member names are only matched
against known file names, never used as paths, so `../` tricks cannot escape; even so, unsafe
names, symlinks, pickles and anything that is not JSON or safetensors make the whole zip refused.
"""

from __future__ import annotations

import io
import os
import shutil
import struct
import tempfile
import time
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from vae.checkpoint import (
    CONFIG_FILE,
    METRICS_JSON,
    METRICS_JSONL,
    PICKLE_SUFFIXES,
    STATE_FILE,
    STATE_META_FILE,
    WEIGHTS_FILE,
    CheckpointError,
    atomic_write_json,
    check_train_state,
    load_run,
    write_error,
)
from vae.record import RecordError, RunDir, check_logs

MAX_ZIP_BYTES = 50 * 1024 * 1024  # compressed: server.maxUploadSize in .streamlit/config.toml
MAX_UNZIPPED_BYTES = 200 * 1024 * 1024  # sum of the members we extract
MEMBERS = (CONFIG_FILE, WEIGHTS_FILE, METRICS_JSON, METRICS_JSONL)  # a model zip
STEPS_FILE = RunDir(".").steps_log.name
BACKUP_MEMBERS = (*MEMBERS, STEPS_FILE, STATE_FILE, STATE_META_FILE)  # + curves, resumable state

ALLOWED_SUFFIXES = (".json", ".jsonl", ".safetensors")  # other files of these kinds are skipped
IGNORED = ("__MACOSX/", ".DS_Store")
COMPRESSIONS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)  # what `zip` and export_zip write
# what reading a damaged archive raises (zipfile's own, zlib's, truncations, bad headers)
ZIP_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    struct.error,
    EOFError,
    NotImplementedError,
    RuntimeError,
    ValueError,
    OverflowError,
    IndexError,
    KeyError,
)
IMPORT_PREFIX = ".import-"  # the hidden staging folder of an import in progress
STALE_IMPORT_S = 3600.0  # a staging folder untouched this long belongs to a killed import


@dataclass
class ZipCheckpoint:
    """A checked archive: the open zip, the members to take by file name, and its folder name."""

    zf: zipfile.ZipFile
    members: dict[str, zipfile.ZipInfo]
    folder: str | None  # the one folder the files sit in, if any (a default run name)
    size: int  # uncompressed bytes of `members`


def check_zip(
    data: bytes,
    *,
    max_zip_bytes: int = MAX_ZIP_BYTES,
    max_unzipped_bytes: int = MAX_UNZIPPED_BYTES,
) -> ZipCheckpoint:
    """Validate an uploaded checkpoint zip without extracting anything."""
    if len(data) > max_zip_bytes:
        raise CheckpointError(
            f"the zip is {len(data) >> 20} MiB; the limit is {max_zip_bytes >> 20} MiB"
        )
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        infos = zf.infolist()
    except (*ZIP_ERRORS, OSError):
        raise CheckpointError("the upload is not a zip archive (or a damaged one)") from None
    picked: dict[str, zipfile.ZipInfo] = {}
    folders: set[str] = set()
    total = 0
    for info in infos:
        name = info.filename
        if info.is_dir() or name.startswith(IGNORED[0]) or name.endswith(IGNORED[1]):
            continue
        parts = name.replace("\\", "/").split("/")
        if name.startswith(("/", "\\")) or ".." in parts or ":" in parts[0] or "" in parts:
            raise CheckpointError(f"the zip holds an unsafe path {name!r}; refusing it")
        if (info.external_attr >> 16) & 0o170000 == 0o120000:
            raise CheckpointError(f"the zip holds a symlink {name!r}; refusing it")
        if info.flag_bits & 0x1:
            raise CheckpointError(f"{name!r} in the zip is encrypted; zip it without a password")
        if info.compress_type not in COMPRESSIONS:
            raise CheckpointError(
                f"{name!r} in the zip uses a compression method this app does not read; zip "
                "it with the usual deflate compression"
            )
        base = parts[-1]
        suffix = Path(base).suffix.lower()
        if suffix in PICKLE_SUFFIXES:
            raise CheckpointError(
                f"the zip holds {name!r}, a pickle-based file. Pickles can run arbitrary code, "
                "so they are never loaded; export the model as config.json + model.safetensors "
                "(`python -m vae.convert` converts your own trusted state_dict on your machine)"
            )
        if suffix not in ALLOWED_SUFFIXES:
            raise CheckpointError(
                f"unexpected file {name!r} in the zip: it may hold only JSON and safetensors "
                f"files ({', '.join(MEMBERS)})"
            )
        if len(parts) > 2:
            raise CheckpointError(f"{name!r} is nested too deep; put the files in one folder")
        if base not in BACKUP_MEMBERS:
            continue  # e.g. status.json: harmless, not needed
        if base in picked:
            raise CheckpointError(f"the zip holds more than one {base}")
        picked[base] = info
        folders.add(parts[0] if len(parts) == 2 else "")
        total += info.file_size
    for need in (CONFIG_FILE, WEIGHTS_FILE):
        if need not in picked:
            raise CheckpointError(
                f"the zip has no {need}; it needs config.json + model.safetensors"
            )
    if len(folders) > 1:
        raise CheckpointError("the zip's files are spread over several folders; use one")
    if total > max_unzipped_bytes:
        raise CheckpointError(
            f"the zip unpacks to {total >> 20} MiB; the limit is {max_unzipped_bytes >> 20} MiB"
        )
    folder = folders.pop() or None
    return ZipCheckpoint(zf, picked, folder, total)


def _copy_capped(src: io.BufferedIOBase, dst: io.BufferedIOBase, limit: int, name: str) -> int:
    """Copy at most `limit` bytes; a member that inflates beyond its declared size is refused."""
    done = 0
    while block := src.read(1 << 20):
        done += len(block)
        if done > limit:
            raise CheckpointError(f"{name} unpacks to more than its declared size; refusing it")
        dst.write(block)
    return done


def extract_zip(
    data: bytes,
    dest: Path,
    *,
    max_zip_bytes: int = MAX_ZIP_BYTES,
    max_unzipped_bytes: int = MAX_UNZIPPED_BYTES,
    origin: str = "import",
) -> Path:
    """Unpack a checkpoint zip into the new folder `dest` and return it.

    The files go to a hidden temp folder next to `dest`, marked as from a stranger (origin.json
    says `origin`, "import" or "upload": its data may only be built-in or inside the folder), the
    run is loaded with `vae.checkpoint.load_run` (every JSON field, shapes, finite weights, no
    data outside it) and its logs checked, and only then renamed to `dest`, so a bad or
    half-written upload is never visible. Raises CheckpointError, or WriteError
    (nothing left behind) when `dest`'s folder is read-only, full or a file.
    """
    ck = check_zip(data, max_zip_bytes=max_zip_bytes, max_unzipped_bytes=max_unzipped_bytes)
    dest = Path(dest)
    if dest.exists():
        raise CheckpointError(f"{dest.name} already exists")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        # one level down, so that folder scanners (which look for <dir>/config.json) never see it
        tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=IMPORT_PREFIX))
    except OSError as e:
        raise write_error(e, dest) from None
    staged = tmp / "run"
    try:
        try:
            staged.mkdir()
            for base, info in ck.members.items():
                with ck.zf.open(info) as src, open(staged / base, "wb") as dst:
                    _copy_capped(src, dst, info.file_size, info.filename)
            atomic_write_json(RunDir(staged).origin, {"origin": origin, "created": _now()})
        except CheckpointError:
            raise
        except OSError as e:
            raise write_error(e, dest) from None
        except ZIP_ERRORS as e:  # a bad CRC, a truncated or garbled member
            raise CheckpointError(
                f"the zip is damaged: {str(e)[:200] or type(e).__name__}"
            ) from None
        try:
            load_run(staged, confined=True)  # validate before it becomes visible
            check_logs(staged)
            if (staged / STATE_FILE).exists() or (staged / STATE_META_FILE).exists():
                check_train_state(staged)  # a backup: its resumable state must be whole
        except RecordError as e:
            raise CheckpointError(f"this checkpoint cannot be used: {e}") from None
        except CheckpointError as e:  # name the files as they are in the zip, not the temp path
            msg = str(e).replace(f"{staged}{os.sep}", "").replace(str(staged), "the zip")
            raise CheckpointError(f"this checkpoint cannot be used: {msg}") from None
        try:
            os.rename(staged, dest)
        except OSError as e:
            if dest.exists():
                raise CheckpointError(f"{dest.name} already exists") from None
            raise write_error(e, dest) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def clean_stale_imports(folder: str | os.PathLike, max_age_s: float = STALE_IMPORT_S) -> list[Path]:
    """Remove the staging folders that killed imports left in `folder` (none of their files
    touched for `max_age_s`). Returns what was removed; never raises."""
    removed: list[Path] = []
    try:
        staging = [p for p in Path(folder).iterdir() if p.name.startswith(IMPORT_PREFIX)]
    except OSError:
        return removed
    now = time.time()
    for d in staging:
        try:
            if not d.is_dir() or d.is_symlink():
                continue
            newest = max(p.lstat().st_mtime for p in (d, *d.rglob("*")))
        except OSError:
            continue  # gone meanwhile
        if now - newest >= max_age_s:
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d)
    return removed


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())


def export_zip(run_dir: str | os.PathLike, *, full: bool = False) -> bytes:
    """A zip of a run's config, weights and metrics, inside a folder named after the run.

    `full` makes a backup that imports as a resumable run with its learning curves: the step
    log and the training state (optimizer, RNG and data order) too.
    """
    run_dir = Path(run_dir)
    for need in (CONFIG_FILE, WEIGHTS_FILE):
        if not (run_dir / need).is_file():
            raise CheckpointError(f"{run_dir} has no {need} to export")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        for base in BACKUP_MEMBERS if full else MEMBERS:
            path = run_dir / base
            if path.is_file():
                zf.write(path, f"{run_dir.name}/{base}")
    return buf.getvalue()
