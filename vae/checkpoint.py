"""Run folders: `config.json` + `model.safetensors` (+ `train_state.*`, `metrics.json[l]`).

Nothing here unpickles. Every write goes to a temp file in the same folder, then `os.replace`,
so a job killed mid-save leaves the previous file intact.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save

from vae.config import ConfigError, ModelConfig, TrainConfig
from vae.errors import ExplorerError
from vae.model import VAE, unwrap
from vae.record import RunDir, read_jsonl, train_config  # noqa: F401  (read_jsonl re-exported)

FORMAT_VERSION = 1
_FILES = RunDir(".")  # the file names of a run folder have one home: vae.record.RunDir
CONFIG_FILE = _FILES.config.name
WEIGHTS_FILE = _FILES.weights.name
PREVIEW_FILE = _FILES.preview.name
STATE_FILE = _FILES.state.name
STATE_META_FILE = _FILES.state_meta.name
METRICS_JSONL = _FILES.epochs_log.name
METRICS_JSON = _FILES.metrics.name
PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".bin")
TOP_KEYS = {"format_version", "model", "dataset", "train", "command", "created", "extra"}
MAX_WEIGHTS_BYTES = 2 * 1024**3


class CheckpointError(ExplorerError, ValueError):
    """A checkpoint is missing, unsafe, malformed or incompatible. The message says why."""


# --- atomic file writes --------------------------------------------------------------------------
def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a checkpoint is meant to be shared
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
    """Append one JSON line. Readers skip a torn last line, so no temp file is needed."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()


def read_json(path: str | os.PathLike) -> dict[str, Any]:
    try:
        obj = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{path} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path} is not valid JSON: {e}") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} must hold a JSON object")
    return obj


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
    run_dir.mkdir(parents=True, exist_ok=True)
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
        head = path.open("rb").read(4)
        if path.suffix.lower() in PICKLE_SUFFIXES or head[:1] == b"\x80" or head[:2] == b"PK":
            raise CheckpointError(msg.format(p=path))
    if path.is_dir() and not (path / WEIGHTS_FILE).exists():
        pickles = [p for p in path.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES]
        if pickles:
            raise CheckpointError(msg.format(p=pickles[0]))


def read_config(run_dir: str | os.PathLike) -> dict[str, Any]:
    """Read and validate `config.json` (no weights)."""
    run_dir = Path(run_dir)
    meta = read_json(run_dir / CONFIG_FILE)
    unknown = sorted(set(meta) - TOP_KEYS)
    if unknown:
        raise CheckpointError(f"{run_dir / CONFIG_FILE}: unknown keys {unknown}")
    version = meta.get("format_version")
    if not isinstance(version, int):
        raise CheckpointError(f"{run_dir / CONFIG_FILE}: missing integer 'format_version'")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{run_dir} was written by a newer VAE Latent Explorer (format {version}, this "
            f"version reads up to {FORMAT_VERSION}). Upgrade the package to load it."
        )
    try:
        ModelConfig.from_dict(meta.get("model"))
    except ConfigError as e:
        raise CheckpointError(f"{run_dir / CONFIG_FILE}: bad model config: {e}") from None
    return meta


def load_run(
    run_dir: str | os.PathLike, device: str | torch.device = "cpu", *, weights: str = WEIGHTS_FILE
) -> Run:
    """Load a run folder safely. Raises `CheckpointError` with a plain explanation. `weights`
    names the weights file in it (PREVIEW_FILE: a training preview's weights)."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise CheckpointError(f"{run_dir} does not exist")
    refuse_pickle(run_dir)
    if run_dir.is_file():
        raise CheckpointError(f"{run_dir} is a file; a checkpoint is a folder with {CONFIG_FILE}")
    meta = read_config(run_dir)
    cfg = ModelConfig.from_dict(meta["model"])
    name, weights = weights, run_dir / weights
    if not weights.exists():
        raise CheckpointError(f"{run_dir} has no {name}")
    if weights.stat().st_size > MAX_WEIGHTS_BYTES:
        raise CheckpointError(f"{weights} is larger than {MAX_WEIGHTS_BYTES >> 30} GiB")
    try:  # tensors and metadata from one open file, even if it is replaced meanwhile
        with safe_open(weights, framework="pt", device="cpu") as f:
            weights_meta = dict(f.metadata() or {})
            state = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{weights} is not a valid safetensors file: {e}") from None
    model = VAE(cfg)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{weights} does not match its config: "
            f"missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    for k, v in state.items():
        if v.shape != expected[k].shape:
            raise CheckpointError(
                f"{weights}: tensor {k} has shape {tuple(v.shape)}, the config needs "
                f"{tuple(expected[k].shape)}"
            )
        if not v.is_floating_point() or not torch.isfinite(v).all():
            raise CheckpointError(f"{weights}: tensor {k} holds NaN/Inf or non-float values")
    model.load_state_dict(state)
    model.to(device).eval()
    return Run(path=run_dir, model=model, meta=meta, weights_meta=weights_meta)


def weights_hash(run_dir: str | os.PathLike) -> str:
    """sha256 of the weights file, the identity of a checkpoint for caches."""
    h = hashlib.sha256()
    with open(Path(run_dir) / WEIGHTS_FILE, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# --- training state -------------------------------------------------------------------------------
def save_train_state(
    run_dir: str | os.PathLike,
    optimizer: torch.optim.Optimizer,
    tensors: dict[str, torch.Tensor],
    meta: dict[str, Any],
) -> None:
    """Optimizer state and RNG tensors as safetensors; step, epoch and param groups as JSON.

    The tensors file is written first; the JSON names its sha256, so a torn pair is detected.
    """
    run_dir = Path(run_dir)
    opt = optimizer.state_dict()
    flat = dict(tensors)
    for idx, st in opt["state"].items():
        for key, val in st.items():
            t = val if torch.is_tensor(val) else torch.tensor(val)
            flat[f"opt.{idx}.{key}"] = t
    blob = save({k: v.detach().contiguous().cpu() for k, v in flat.items()})
    atomic_write_bytes(run_dir / STATE_FILE, blob)
    doc = dict(meta)
    doc["param_groups"] = opt["param_groups"]
    doc["sha256"] = hashlib.sha256(blob).hexdigest()
    doc["format_version"] = FORMAT_VERSION
    atomic_write_json(run_dir / STATE_META_FILE, doc)


def check_train_state(run_dir: str | os.PathLike) -> None:
    """Raise unless the run's training state is a whole, matching safetensors + JSON pair."""
    run_dir = Path(run_dir)
    meta = read_json(run_dir / STATE_META_FILE)
    blob_path = run_dir / STATE_FILE
    if not blob_path.is_file():
        raise CheckpointError(f"{run_dir} has no {STATE_FILE} to resume from")
    if hashlib.sha256(blob_path.read_bytes()).hexdigest() != meta.get("sha256"):
        raise CheckpointError(f"{STATE_FILE} does not match {STATE_META_FILE} (torn save?)")
    try:
        load_file(blob_path)
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{STATE_FILE} is not a valid safetensors file: {e}") from None


def load_train_state(
    run_dir: str | os.PathLike, optimizer: torch.optim.Optimizer
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Restore the optimizer in place; returns (the other tensors, the JSON meta)."""
    run_dir = Path(run_dir)
    meta = read_json(run_dir / STATE_META_FILE)
    blob_path = run_dir / STATE_FILE
    if not blob_path.exists():
        raise CheckpointError(f"{run_dir} has no {STATE_FILE} to resume from")
    blob = blob_path.read_bytes()
    if hashlib.sha256(blob).hexdigest() != meta.get("sha256"):
        raise CheckpointError(f"{blob_path} does not match {STATE_META_FILE} (torn save?)")
    try:
        flat = load_file(blob_path)
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{blob_path} is not a valid safetensors file: {e}") from None
    state: dict[int, dict[str, Any]] = {}
    rest: dict[str, torch.Tensor] = {}
    for k, v in flat.items():
        if k.startswith("opt."):
            _, idx, key = k.split(".", 2)
            state.setdefault(int(idx), {})[key] = v
        else:
            rest[k] = v
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    return rest, meta
