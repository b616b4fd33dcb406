"""One run record: the files of a run folder, and the numbers every page and CLI reads from them.

    rd = RunDir(path)                 # every file name of a run folder, in one place
    rec = RunRecord.read(path)        # config.json + metrics.json, every field checked, typed
    rec.train.binarize, rec.headline()  # the one binarize rule, the one headline number
    epochs, steps = read_logs(path)   # metrics.jsonl and steps.jsonl (unusable lines skipped)
    check_logs(path)                  # ... or refused, for an upload
    confined_data_dir(path, name, d)  # the only data an uploaded or imported run may read

This is the one place where a run folder's files are read: safely (`vae.runjson`: regular files,
bounded sizes, strict JSON) and checked field by field (`vae.runschema`), so a stranger's run
folder is a `RecordError` with a clear message, never a crash in a page. Nothing here imports
torch or Streamlit, so the library, the jobs and the app agree on what a run folder holds.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vae.config import ConfigError, ModelConfig, TrainConfig
from vae.runjson import (  # noqa: F401  (RecordError, read_json_object, read_jsonl re-exported)
    MAX_CONFIG_BYTES,
    MAX_LOG_BYTES,
    RecordError,
    jsonl_lines,
    read_json_object,
    read_jsonl,
    read_regular,
)
from vae.runschema import check_config, check_metrics, log_problem


@dataclass(frozen=True)
class RunDir:
    """The files of one run folder. Writers and readers use these paths, never literals."""

    path: Path

    def __init__(self, path: str | Path) -> None:
        object.__setattr__(self, "path", Path(path))

    config = property(lambda self: self.path / "config.json")
    weights = property(lambda self: self.path / "model.safetensors")
    preview = property(lambda self: self.path / "preview.safetensors")  # a recent step's weights
    metrics = property(lambda self: self.path / "metrics.json")
    epochs_log = property(lambda self: self.path / "metrics.jsonl")
    steps_log = property(lambda self: self.path / "steps.jsonl")
    status = property(lambda self: self.path / "status.json")
    state = property(lambda self: self.path / "train_state.safetensors")
    state_meta = property(lambda self: self.path / "train_state.json")
    stop = property(lambda self: self.path / "STOP")
    log = property(lambda self: self.path / "log.txt")
    job = property(lambda self: self.path / "job.json")
    request = property(lambda self: self.path / "job_config.json")  # what the app asked to train
    exit = property(lambda self: self.path / "exit.json")
    cache = property(lambda self: self.path / ".cache")
    origin = property(lambda self: self.path / "origin.json")  # written by an upload or import


# --- the one binarize rule ---------------------------------------------------------------------
def binarize_rule(setting: bool | None, likelihood: str, binary_like: bool) -> bool:
    """Whether images are dynamically binarized (Salakhutdinov & Murray 2008) for this run.

    `TrainConfig.binarize` decides when set; `None` (auto) binarizes for a Bernoulli likelihood
    on binary-like data (values near 0 and 1, such as MNIST). Training, evaluation and the
    app's analyses all call this, so a `--binarize no` run is evaluated as it was trained.
    """
    if setting is not None:
        return bool(setting)
    return likelihood == "bernoulli" and bool(binary_like)


# --- the one headline number -------------------------------------------------------------------
@dataclass(frozen=True)
class Headline:
    """The number that sums a run up: IWAE NLL when evaluated, else the final test ELBO."""

    name: str  # "NLL" or "ELBO"
    value: float
    source: str  # e.g. "IWAE, k = 1000, test split" or "test ELBO, last epoch"

    @property
    def lower_is_better(self) -> bool:
        return self.name == "NLL"

    def short(self) -> str:
        """'NLL 85.4' or 'ELBO -24.2' (for picker labels and tables)."""
        return f"{self.name} {self.value:.1f}"

    def long(self) -> str:
        """With the unit and the direction, e.g. 'NLL 85.4 nats (lower is better)'."""
        better = "lower" if self.lower_is_better else "higher"
        return f"{self.short()} nats ({better} is better)"

    def nll(self) -> str:
        """One figure comparable across models, lower is better: 'NLL 85.4' when estimated,
        'NLL ≤ 24.2' from an ELBO (−ELBO is an upper bound on −log p(x), Kingma & Welling 2013)."""
        if self.lower_is_better:
            return f"NLL {self.value:.1f}"
        return f"NLL ≤ {-self.value:.1f}"


def _num(v: Any) -> float | None:
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        return None
    try:
        return float(v)
    except OverflowError:  # an int beyond float range
        return None


def headline(metrics: dict[str, Any]) -> Headline | None:
    """IWAE NLL from `vae.evaluate --save` ({"evaluation": {split: {"iwae_nll": ...}}}, the test
    split first), else a stored `test_nll`, else the final `test_elbo`; None without any."""
    ev = metrics.get("evaluation")
    if isinstance(ev, dict):
        for split, res in sorted(ev.items(), key=lambda kv: kv[0] != "test"):
            v = _num(res.get("iwae_nll")) if isinstance(res, dict) else None
            if v is not None and math.isfinite(v):
                k = res.get("iw_samples")
                return Headline("NLL", v, f"IWAE, k = {k}, {split} split" if k else f"{split}")
    v = _num(metrics.get("test_nll"))
    if v is not None and math.isfinite(v):
        return Headline("NLL", v, "test NLL")
    v = _num(metrics.get("test_elbo"))
    if v is not None and math.isfinite(v):
        return Headline("ELBO", v, "test ELBO, last epoch")
    return None


# --- reading -----------------------------------------------------------------------------------
def read_config_file(path: str | Path) -> tuple[dict[str, Any], ModelConfig, TrainConfig]:
    """(config.json as read, its model config, its train config), every field checked.
    Raises RecordError, whose message names config.json and the field."""
    meta = read_json_object(RunDir(path).config, MAX_CONFIG_BYTES)
    model, train = check_config(meta)
    return meta, model, train


def read_metrics(path: str | Path) -> dict[str, Any]:
    """metrics.json, its fields checked; {} when the run has none. Raises RecordError."""
    rd = RunDir(path)
    if not os.path.lexists(rd.metrics):
        return {}
    return check_metrics(read_json_object(rd.metrics))


def read_logs(path: str | Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(per-epoch records of metrics.jsonl, per-step records of steps.jsonl): the lines a chart
    can draw; a torn or unusable line is skipped, and a per-dimension KL of another length than
    the first is dropped. A log that is not a regular file or too large is a RecordError."""
    rd = RunDir(path)
    epochs = [r for r in read_jsonl(rd.epochs_log) if not log_problem(r, "epochs")]
    steps = [r for r in read_jsonl(rd.steps_log) if not log_problem(r, "steps")]
    dims = next((len(r["test_kl_per_dim"]) for r in epochs if "test_kl_per_dim" in r), None)
    for i, r in enumerate(epochs):
        if "test_kl_per_dim" in r and len(r["test_kl_per_dim"]) != dims:
            epochs[i] = {k: v for k, v in r.items() if k != "test_kl_per_dim"}
    return epochs, steps


def check_logs(path: str | Path) -> None:
    """Refuse (RecordError) a run whose logs hold a line that is not a usable record. A torn
    last line (a job killed mid-append) is allowed. For uploads and imports."""
    rd = RunDir(path)
    for log, kind in ((rd.epochs_log, "epochs"), (rd.steps_log, "steps")):
        if not os.path.lexists(log):
            continue
        data = read_regular(log, MAX_LOG_BYTES)
        lines = jsonl_lines(data, log.name)
        torn = not data.endswith(b"\n")
        for n, (i, rec, why) in enumerate(lines):
            if rec is None:
                if torn and n == len(lines) - 1:
                    continue
                raise RecordError(why)
            problem = log_problem(rec, kind)
            if problem:
                raise RecordError(f"{log.name} line {i}: {problem}")


BUILTIN_DATASETS = ("digits", "shapes", "mnist", "fashion-mnist")  # never read from a run's path


def is_confined(path: str | Path) -> bool:
    """Whether a run folder came from an upload or an import (it holds origin.json): its data
    may only be a built-in dataset or files inside the folder itself."""
    return os.path.lexists(RunDir(path).origin)


def confined_data_dir(path: str | Path, datasets: tuple, data_dir: str | None) -> str | None:
    """The data folder an uploaded or imported run may read, given the names its config gives
    its dataset (dataset.name, train.dataset): None when all are built-in (the server's own
    copy, whatever the config says) or none is recorded; otherwise the recorded path, relative
    to the run folder, once it resolves (symlinks and `..` followed) to a place inside the run
    folder. Raises RecordError for anything outside it."""
    if all(d in BUILTIN_DATASETS for d in datasets) or not data_dir:
        return None
    root = os.path.realpath(path)
    real = os.path.realpath(os.path.join(root, data_dir))  # an absolute data_dir replaces root
    if os.path.commonpath([root, real]) != root:
        raise RecordError(
            "config.json: train.data_dir must be inside the upload (an uploaded or imported run "
            "may use only the built-in datasets or data inside its own folder)"
        )
    return real


def train_config(d: Any) -> TrainConfig:
    """The saved train section as a TrainConfig; unknown or bad keys fall back to defaults (old
    runs and hand-written configs carry partial sections)."""
    if not isinstance(d, dict):
        return TrainConfig()
    known = {k: v for k, v in d.items() if k in TrainConfig.__dataclass_fields__}
    try:
        return TrainConfig.from_dict(known)
    except (ConfigError, TypeError, ValueError):
        return TrainConfig(dataset=str(known.get("dataset") or "digits"))


@dataclass
class RunRecord:
    """What a run folder's config.json and metrics.json say, every field checked, typed."""

    dir: RunDir
    model: ModelConfig
    train: TrainConfig
    dataset: dict[str, Any]
    command: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    created: str = ""

    @classmethod
    def read(cls, path: str | Path) -> RunRecord:
        """Read config.json (required) and metrics.json (optional). Raises RecordError when
        either is unreadable or holds a field of the wrong kind or out of range."""
        meta, model, train = read_config_file(path)
        metrics = read_metrics(path)
        dataset = meta.get("dataset", {})
        command, created = meta.get("command", ""), meta.get("created", "")
        return cls(RunDir(path), model, train, dataset, command, metrics, created)

    def headline(self) -> Headline | None:
        return headline(self.metrics)

    def binarize(self, binary_like: bool) -> bool:
        return binarize_rule(self.train.binarize, self.model.likelihood, binary_like)

    @property
    def epochs(self) -> int:
        """Epochs trained, from metrics.json (0 when it does not say)."""
        return int(self.metrics.get("epochs", 0))
