"""Run folders: `config.json` + `model.safetensors` (+ `train_state.safetensors`, metrics).

Nothing here unpickles. Every write goes to a temp file `.NAME.XXXX.tmp` in the same folder, then
`os.replace`, so a job killed mid-save leaves the previous file intact; the temp files such a
kill leaves are removed by `clean_stale_temps` when the folder is next opened. A write that
fails (disk full, read-only folder, a file where a folder should be) removes its temp file and
raises `WriteError`, whose message names the folder and the reason.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import math
import os
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load, save

from vae.config import ModelConfig, TrainConfig
from vae.errors import ExplorerError
from vae.model import VAE, unwrap
from vae.record import (  # noqa: F401  (read_jsonl re-exported)
    RunDir,
    confined_data_dir,
    is_confined,
    read_config_file,
    read_jsonl,
    read_metrics,
    train_config,
)
from vae.runjson import MAX_JSON_BYTES, RecordError, open_regular, parse_json, read_json_object
from vae.runschema import FORMAT_VERSION, TOP_KEYS  # noqa: F401  (re-exported)

_FILES = RunDir(".")  # the file names of a run folder have one home: vae.record.RunDir
CONFIG_FILE = _FILES.config.name
WEIGHTS_FILE = _FILES.weights.name
PREVIEW_FILE = _FILES.preview.name
STATE_FILE = _FILES.state.name
STATE_META_FILE = _FILES.state_meta.name
METRICS_JSONL = _FILES.epochs_log.name
METRICS_JSON = _FILES.metrics.name
PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".bin")
MAX_WEIGHTS_BYTES = 2 * 1024**3
MAX_WEIGHTS_HEADER_BYTES = 1 << 20  # a VAE's tensor names and shapes take a few KB
WEIGHT_DTYPES = {"F16": 2, "BF16": 2, "F32": 4, "F64": 8}  # safetensors dtype -> bytes


class CheckpointError(ExplorerError, ValueError):
    """A checkpoint is missing, unsafe, malformed or incompatible. The message says why."""


class WriteError(ExplorerError, OSError):
    """A file could not be written: the disk is full, the folder is read-only, or a file is where
    a folder should be. The message names the folder; `errno` is the system's error number."""

    def __str__(self) -> str:  # the message alone, not OSError's "[Errno 28] ..."
        from vae.errors import public_text

        return public_text(str(self.args[0]) if self.args else "")


# --- atomic file writes --------------------------------------------------------------------------
TMP_SUFFIX = ".tmp"
TMP_RE = re.compile(r"\..+\.[A-Za-z0-9_]{6,}\.tmp")  # `.NAME.XXXXXXXX.tmp`, as mkstemp names it
STALE_TMP_S = 60.0  # a temp file untouched this long, and not locked, belongs to no live writer

_REASONS = {
    errno.ENOSPC: "the disk is full",
    getattr(errno, "EDQUOT", -1): "the disk quota is used up",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied (the folder is read-only for this user)",
    errno.EPERM: "permission denied (the folder is read-only for this user)",
}


def os_error_reason(e: OSError) -> str:
    """A plain reason for an OSError: 'the disk is full', 'permission denied (...)', ..."""
    return _REASONS.get(e.errno or 0) or (e.strerror or str(e) or type(e).__name__).lower()


def _file_in_the_way(folder: Path) -> Path | None:
    """The first of `folder` and its parents that exists but is not a folder."""
    for p in (folder, *folder.parents):
        if p.exists() or p.is_symlink():
            return None if p.is_dir() else p
    return None


def write_problem(e: OSError, folder: str | os.PathLike) -> str:
    """Why writing into `folder` failed: 'the disk is full', '<path> is a file, not a folder'..."""
    folder = Path(folder)
    blocker = _file_in_the_way(folder)
    if blocker is not None or e.errno in (errno.ENOTDIR, errno.EEXIST):
        return f"{blocker or folder} is a file, not a folder"
    return os_error_reason(e)


def write_error(e: OSError, path: str | os.PathLike) -> WriteError:
    """The WriteError for failing to write the file `path`: names its folder and the reason."""
    path = Path(path)
    if isinstance(e, WriteError):
        return e
    err = WriteError(f"cannot write {path.name} to {path.parent}: {write_problem(e, path.parent)}")
    err.errno, err.filename = e.errno, str(path.parent)
    return err


def _lock(fd: int) -> None:
    """Hold an advisory lock on a temp file while it is written (POSIX; elsewhere only the age
    of a temp file tells `clean_stale_temps` that its writer is gone)."""
    try:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except (ImportError, OSError):
        pass


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` through a locked temp file in the same folder and `os.replace`.
    On any failure the temp file is removed and `path` is left as it was; an OSError comes back
    as a `WriteError` naming the folder."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
    except OSError as e:
        raise write_error(e, path) from None
    try:
        with os.fdopen(fd, "wb") as f:
            _lock(f.fileno())
            os.chmod(tmp, 0o644)  # mkstemp makes 0600; a checkpoint is meant to be shared
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise write_error(e, path) from None
        raise


def clean_stale_temps(folder: str | os.PathLike, max_age_s: float = STALE_TMP_S) -> list[Path]:
    """Remove the `.NAME.XXXX.tmp` files that killed writers left in `folder`: those untouched
    for `max_age_s` and not locked by a writer. Returns what was removed; never raises."""
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        if not TMP_RE.fullmatch(entry.name):
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            if now - entry.stat(follow_symlinks=False).st_mtime < max_age_s or _locked(entry.path):
                continue
            os.unlink(entry.path)
            removed.append(Path(entry.path))
        except OSError:
            continue  # gone meanwhile, or not ours to remove
    return removed


def _locked(path: str) -> bool:
    """Whether a live writer holds the lock of `_lock` on the file."""
    try:
        import fcntl
    except ImportError:
        return False
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return True  # cannot tell: leave it
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except OSError:
        return True
    finally:
        os.close(fd)  # closing releases the lock


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, allow_nan=False) + "\n").encode())


def atomic_save_tensors(
    path: str | os.PathLike,
    tensors: dict[str, torch.Tensor],
    metadata: dict[str, str] | None = None,
) -> None:
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    atomic_write_bytes(path, save(tensors, metadata=metadata))


def append_jsonl(path: str | os.PathLike, record: dict[str, Any]) -> None:
    """Append one JSON line. Readers skip a torn last line, so no temp file is needed; a write
    that fails (disk full) is cut off again, so the next line starts on a line of its own."""
    line = (json.dumps(record) + "\n").encode()
    try:
        with open(path, "ab", buffering=0) as f:
            start = f.seek(0, os.SEEK_END)
            try:
                done = 0
                while done < len(line):
                    done += f.write(line[done:]) or 0
            except OSError:
                try:
                    f.truncate(start)
                except OSError:
                    pass
                raise
    except OSError as e:
        raise write_error(e, path) from None


def read_json(path: str | os.PathLike, limit: int = MAX_JSON_BYTES) -> dict[str, Any]:
    """A JSON object file of a run folder, read safely (`vae.runjson`: a regular file, at most
    `limit` bytes, strict JSON). Raises CheckpointError naming the file, not its folder."""
    try:
        return read_json_object(path, limit)
    except RecordError as e:
        raise CheckpointError(str(e)) from None


# --- saving ---------------------------------------------------------------------------------------
def save_model(
    run_dir: str | os.PathLike,
    model: VAE,
    *,
    dataset: dict[str, Any] | None = None,
    train: dict[str, Any] | None = None,
    command: str = "",
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write weights first, then the config, both atomically."""
    run_dir = Path(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise write_error(e, run_dir / WEIGHTS_FILE) from None
    state = {k: v.float() for k, v in unwrap(model).state_dict().items()}
    atomic_save_tensors(run_dir / WEIGHTS_FILE, state, {"format_version": str(FORMAT_VERSION)})
    cfg = {
        "format_version": FORMAT_VERSION,
        "model": unwrap(model).config.to_dict(),
        "dataset": dataset or {},
        "train": train or {},
        "command": command,
        "created": _now(),
    }
    if extra:
        cfg["extra"] = extra
    atomic_write_json(run_dir / CONFIG_FILE, cfg)
    return run_dir


def save_preview(run_dir: str | os.PathLike, model: VAE, *, step: int, epoch: int) -> bool:
    """The weights of a recent training step as `preview.safetensors`, with the step and epoch
    in its metadata: what the live view draws between checkpoints (nothing resumes from it).
    Skipped, returning False, when a weight is NaN/Inf."""
    state = {k: v.detach().float().cpu() for k, v in unwrap(model).state_dict().items()}
    if not all(torch.isfinite(v).all() for v in state.values()):
        return False
    meta = {"format_version": str(FORMAT_VERSION), "step": str(step), "epoch": str(epoch)}
    atomic_save_tensors(Path(run_dir) / PREVIEW_FILE, state, meta)
    return True


def _now() -> str:
    import datetime as dt

    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


# --- loading --------------------------------------------------------------------------------------
@dataclass
class Run:
    """A loaded run: the model (eval mode), its `config.json` contents and the metadata of the
    weights file it was loaded from (a preview's "step" and "epoch")."""

    path: Path
    model: VAE
    meta: dict[str, Any]
    weights_meta: dict[str, str] = field(default_factory=dict)
    confined: bool = False  # an uploaded or imported run: its data only from inside its folder

    @property
    def config(self) -> ModelConfig:
        return self.model.config

    @property
    def dataset(self) -> dict[str, Any]:
        return self.meta.get("dataset", {})

    @property
    def train(self) -> TrainConfig:
        """The saved train section, typed (defaults for what an old or hand-made config lacks)."""
        return train_config(self.meta.get("train"))

    @property
    def data_dir(self) -> str | None:
        """The data folder its dataset is read from: the recorded train.data_dir, except for an
        uploaded or imported run (`confined`), which gets none for a built-in dataset and only a
        place inside its own folder otherwise (`vae.record.confined_data_dir`; RecordError)."""
        if not self.confined:
            return self.train.data_dir
        names = (self.dataset.get("name", self.train.dataset), self.train.dataset)
        return confined_data_dir(self.path, names, self.train.data_dir)


def refuse_pickle(path: Path) -> None:
    """Raise if `path` is, or a folder holds only, a pickle-based checkpoint."""
    msg = (
        "{p} looks like a PyTorch pickle checkpoint. Pickle checkpoints are refused because "
        "loading a pickle can run arbitrary code, so VAE Latent Explorer never does. If it is "
        "your own trusted state_dict, convert it on your machine with `python -m vae.convert "
        "{p} --out <folder> --dataset <name> --arch <mlp|conv> --latent-dim <n>` (the options "
        "of the model that saved it), then add <folder>, which holds config.json + "
        "model.safetensors."
    )
    if path.is_file():
        try:
            with open_regular(path, MAX_WEIGHTS_BYTES << 2) as f:
                head = f.read(4)
        except (RecordError, OSError):
            head = b""
        if path.suffix.lower() in PICKLE_SUFFIXES or head[:1] == b"\x80" or head[:2] == b"PK":
            raise CheckpointError(msg.format(p=path))
    if path.is_dir() and not (path / WEIGHTS_FILE).exists():
        pickles = [p for p in path.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES]
        if pickles:
            raise CheckpointError(msg.format(p=pickles[0]))


def read_config(run_dir: str | os.PathLike) -> dict[str, Any]:
    """Read `config.json` and check every field (no weights): `vae.record.read_config_file`.
    Raises CheckpointError naming config.json and the field."""
    try:
        return read_config_file(run_dir)[0]
    except RecordError as e:
        raise CheckpointError(str(e)) from None


def load_run(
    run_dir: str | os.PathLike,
    device: str | torch.device = "cpu",
    *,
    weights: str = WEIGHTS_FILE,
    confined: bool | None = None,
) -> Run:
    """Load a run folder safely. Raises `CheckpointError` with a plain explanation. `weights`
    names the weights file in it (PREVIEW_FILE: a training preview's weights). `confined` (an
    uploaded or imported run; default: whether the folder holds origin.json) refuses a config
    whose data lies outside the folder.

    Every JSON field is checked first, then the size of the model from its config, then the
    names, shapes and dtypes in the weights file's header; only then are the weights read and
    the model built, so a small hostile file cannot make it allocate much."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise CheckpointError(f"{run_dir} does not exist")
    refuse_pickle(run_dir)
    if run_dir.is_file():
        raise CheckpointError(f"{run_dir} is a file; a checkpoint is a folder with {CONFIG_FILE}")
    try:
        meta, cfg, train = read_config_file(run_dir)
        read_metrics(run_dir)
        confined = is_confined(run_dir) if confined is None else bool(confined)
        if confined:
            names = (meta.get("dataset", {}).get("name", train.dataset), train.dataset)
            confined_data_dir(run_dir, names, train.data_dir)
    except RecordError as e:
        raise CheckpointError(str(e)) from None
    state, weights_meta = _read_weights(run_dir / weights, weights, cfg)
    model = VAE(cfg)
    model.load_state_dict(state)
    model.to(device).eval()
    return Run(path=run_dir, model=model, meta=meta, weights_meta=weights_meta, confined=confined)


def _read_weights(
    path: Path, name: str, cfg: ModelConfig
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, metadata) of a weights file for a model of `cfg` (`read_weights_file`)."""
    return read_weights_file(path, name, cfg.state_shapes())


def read_weights_file(
    path: Path,
    name: str,
    expected: dict[str, tuple[int, ...]],
    *,
    dtypes: dict[str, str] | None = None,
    may_miss: frozenset[str] = frozenset(),
    against: str = "its config",
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, metadata) of a safetensors file that must hold the tensors `expected` names,
    of those shapes (`may_miss` names ones that may be absent: tied copies of another). A
    tensor is float16, bfloat16, float32 or float64, unless `dtypes` names its exact
    safetensors dtype (an integer buffer, say). The header is read and checked before the
    tensors are; one open file throughout, so a file replaced meanwhile is read whole. Raises
    CheckpointError naming `name` (and `against`, what the tensors must match)."""
    bad = f"{name} is not a valid safetensors file"
    try:
        with open_regular(path, MAX_WEIGHTS_BYTES, name) as f:
            size = os.fstat(f.fileno()).st_size
            head = f.read(8)
            n = int.from_bytes(head, "little") if len(head) == 8 else -1
            if not 2 <= n <= min(MAX_WEIGHTS_HEADER_BYTES, size - 8):
                raise CheckpointError(f"{bad}: its header size is {'missing' if n < 0 else n}")
            header_bytes = f.read(n)
            try:
                header = parse_json(header_bytes, "its header")
            except RecordError as e:
                raise CheckpointError(f"{bad}: {e}") from None
            need = _check_header(header, name, expected, dtypes or {}, may_miss, against)
            if 8 + n + need != size:
                raise CheckpointError(
                    f"{bad}: it holds {size:,} bytes, its header says {8 + n + need:,}"
                )
            blob = head + header_bytes + f.read(need)
    except RecordError as e:
        if "does not exist" in str(e):
            raise CheckpointError(f"the run has no {name}") from None
        raise CheckpointError(str(e)) from None
    except OSError as e:
        raise CheckpointError(f"{name} cannot be read: {os_error_reason(e)}") from None
    try:
        state = load(blob)
    except (SafetensorError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{bad}: {e}") from None
    meta = header.get("__metadata__") or {}
    for k, v in state.items():
        if not torch.isfinite(v).all():
            raise CheckpointError(f"{name}: tensor {k} holds NaN/Inf values")
    return state, meta


EXACT_DTYPES = {"I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}  # named by `dtypes`


def _check_header(
    header: Any,
    name: str,
    expected: dict[str, tuple[int, ...]],
    dtypes: dict[str, str],
    may_miss: frozenset[str],
    against: str,
) -> int:
    """Check a safetensors header against the tensors `expected` names; returns the bytes of
    tensor data it declares."""
    if not isinstance(header, dict):
        raise CheckpointError(f"{name} is not a valid safetensors file: its header is no object")
    meta = header.get("__metadata__", {})
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise CheckpointError(f"{name}: its metadata must map names to texts")
    tensors = {k: v for k, v in header.items() if k != "__metadata__"}
    missing = sorted(set(expected) - set(tensors) - may_miss)
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{name} does not match {against}: missing {missing[:5]}, "
            f"unexpected {[k[:60] for k in unexpected[:5]]}"
        )
    total = 0
    for k, info in tensors.items():
        if not isinstance(info, dict):
            raise CheckpointError(f"{name} is not a valid safetensors file: bad entry for {k}")
        dtype, shape = info.get("dtype"), info.get("shape")
        exact = dtypes.get(k)
        if exact is not None and dtype != exact:
            raise CheckpointError(
                f"{name}: tensor {k} has dtype {str(dtype)[:20]}, {against} needs {exact}"
            )
        if exact is None and (not isinstance(dtype, str) or dtype not in WEIGHT_DTYPES):
            raise CheckpointError(
                f"{name}: tensor {k} has dtype {str(dtype)[:20]}; weights must be float16, "
                "bfloat16, float32 or float64 (non-float values are refused)"
            )
        ok = isinstance(shape, list) and all(type(d) is int and d >= 0 for d in shape)
        if not ok or tuple(shape) != expected[k]:
            need = "the config needs" if against == "its config" else f"{against} needs"
            raise CheckpointError(
                f"{name}: tensor {k} has shape {tuple(shape) if ok else '?'}, {need} {expected[k]}"
            )
        total += math.prod(shape) * (EXACT_DTYPES.get(exact) or WEIGHT_DTYPES[dtype])
    return total


def weights_hash(run_dir: str | os.PathLike) -> str:
    """sha256 of the weights file, the identity of a checkpoint for caches."""
    h = hashlib.sha256()
    with open(Path(run_dir) / WEIGHTS_FILE, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# --- training state -------------------------------------------------------------------------------
STATE_META_KEY = "train_state"  # the JSON metadata inside train_state.safetensors' header
MAX_HEADER_BYTES = 100 * 1024 * 1024  # the safetensors format's own limit


def save_train_state(
    run_dir: str | os.PathLike,
    optimizer: torch.optim.Optimizer,
    tensors: dict[str, torch.Tensor],
    meta: dict[str, Any],
) -> None:
    """Optimizer state and RNG tensors, with step, epoch and param groups as JSON in the header's
    metadata: one file, replaced in one `os.replace`, so a kill mid-save leaves the last whole
    state. (Runs saved before kept the JSON beside it, in train_state.json; that file is removed
    here, and `read_train_state` still reads such pairs.)"""
    run_dir = Path(run_dir)
    opt = optimizer.state_dict()
    flat = dict(tensors)
    for idx, st in opt["state"].items():
        for key, val in st.items():
            t = val if torch.is_tensor(val) else torch.tensor(val)
            flat[f"opt.{idx}.{key}"] = t
    doc = dict(meta)
    doc["param_groups"] = opt["param_groups"]
    doc["format_version"] = FORMAT_VERSION
    header = {STATE_META_KEY: json.dumps(doc, allow_nan=False)}
    blob = save({k: v.detach().contiguous().cpu() for k, v in flat.items()}, metadata=header)
    atomic_write_bytes(run_dir / STATE_FILE, blob)
    try:
        (run_dir / STATE_META_FILE).unlink(missing_ok=True)  # an old-layout pair's JSON
    except OSError:
        pass  # harmless: the metadata in the header wins


def _header_metadata(f: io.BufferedIOBase, name: str) -> dict[str, str]:
    """The `__metadata__` of a safetensors header, reading only the header."""
    raw = f.read(8)
    n = int.from_bytes(raw, "little") if len(raw) == 8 else -1
    if not 0 < n <= MAX_HEADER_BYTES:
        raise CheckpointError(f"{name} is not a valid safetensors file (bad header)")
    try:
        header = json.loads(f.read(n))
    except (ValueError, RecursionError):
        raise CheckpointError(f"{name} is not a valid safetensors file (bad header)") from None
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    return meta if isinstance(meta, dict) else {}


def _state_doc(text: Any, where: str) -> dict[str, Any]:
    try:
        doc = json.loads(text) if isinstance(text, str) else None
    except (ValueError, RecursionError):
        doc = None
    if not isinstance(doc, dict):
        raise CheckpointError(f"{where}: the training metadata is not a JSON object")
    for key in ("step", "epoch", "batch_in_epoch"):
        v = doc.get(key)
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise CheckpointError(f"{where}: the training metadata needs a whole number {key!r}")
    if not isinstance(doc.get("param_groups"), list):
        raise CheckpointError(f"{where}: the training metadata has no optimizer param_groups")
    return doc


def train_state_meta(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """Step, epoch and the rest of a run's training metadata, from the state file's header only
    (or an old run's train_state.json); None when the run has no readable training state."""
    run_dir = Path(run_dir)
    try:
        with open(run_dir / STATE_FILE, "rb") as f:
            text = _header_metadata(f, STATE_FILE).get(STATE_META_KEY)
        if text is not None:
            return _state_doc(text, STATE_FILE)
        return _state_doc(json.dumps(read_json(run_dir / STATE_META_FILE)), STATE_META_FILE)
    except (OSError, CheckpointError):
        return None


def read_train_state(run_dir: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(the tensors, the metadata) of a run's training state, checked whole. Reads the one-file
    layout, and the old pair (train_state.safetensors + train_state.json naming its sha256)."""
    run_dir = Path(run_dir)
    blob_path = run_dir / STATE_FILE
    try:
        blob = blob_path.read_bytes()
    except FileNotFoundError:
        if (run_dir / STATE_META_FILE).exists():
            raise CheckpointError(
                f"{run_dir} has {STATE_META_FILE} but no {STATE_FILE} to resume from"
            ) from None
        raise CheckpointError(f"{run_dir} has no {STATE_FILE} to resume from") from None
    except OSError as e:
        raise CheckpointError(f"cannot read {blob_path}: {os_error_reason(e)}") from None
    text = _header_metadata(io.BytesIO(blob), STATE_FILE).get(STATE_META_KEY)
    if text is not None:
        meta = _state_doc(text, STATE_FILE)
    else:  # the old layout: the JSON beside the tensors names their sha256
        if not (run_dir / STATE_META_FILE).exists():
            raise CheckpointError(f"{STATE_FILE} holds no training metadata (step, epoch)")
        meta = _state_doc(json.dumps(read_json(run_dir / STATE_META_FILE)), STATE_META_FILE)
        if hashlib.sha256(blob).hexdigest() != meta.get("sha256"):
            raise CheckpointError(f"{STATE_FILE} does not match {STATE_META_FILE} (torn save?)")
    try:
        flat = load(blob)
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{STATE_FILE} is not a valid safetensors file: {e}") from None
    return flat, meta


def check_train_state(run_dir: str | os.PathLike) -> None:
    """Raise unless the run's training state is whole (one file, or a matching old pair)."""
    read_train_state(run_dir)


def load_train_state(
    run_dir: str | os.PathLike, optimizer: torch.optim.Optimizer
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Restore the optimizer in place; returns (the other tensors, the metadata)."""
    flat, meta = read_train_state(run_dir)
    state: dict[int, dict[str, Any]] = {}
    rest: dict[str, torch.Tensor] = {}
    try:
        for k, v in flat.items():
            if k.startswith("opt."):
                _, idx, key = k.split(".", 2)
                state.setdefault(int(idx), {})[key] = v
            else:
                rest[k] = v
        optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    except (ValueError, KeyError, TypeError, RuntimeError) as e:
        raise CheckpointError(f"{STATE_FILE}: the optimizer state does not fit: {e}") from None
    return rest, meta
