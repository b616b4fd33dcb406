"""One run record: the files of a run folder, and the numbers every page and CLI reads from them.

    rd = RunDir(path)                 # every file name of a run folder, in one place
    rec = RunRecord.read(path)        # config.json + metrics.json, typed
    rec.train.binarize, rec.headline()  # the one binarize rule, the one headline number
    epochs, steps = read_logs(path)   # metrics.jsonl and steps.jsonl

Nothing here imports torch or Streamlit, so the library, the jobs and the app agree on what a run
folder holds and on the numbers shown for it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vae.config import ConfigError, ModelConfig, TrainConfig
from vae.errors import ExplorerError


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
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


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
class RecordError(ExplorerError, ValueError):
    """A run folder's JSON is missing, malformed or of the wrong kind."""


def read_json_object(path: Path) -> dict[str, Any]:
    try:
        obj = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RecordError(f"{Path(path).name} does not exist") from None
    except (OSError, ValueError, RecursionError) as e:
        raise RecordError(f"{Path(path).name} is not readable JSON: {e}") from None
    if not isinstance(obj, dict):
        raise RecordError(f"{Path(path).name} must hold a JSON object")
    return obj


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """All complete JSON object lines of a log; a missing file is empty, a torn line skipped."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (FileNotFoundError, IsADirectoryError):
        return []
    out = []
    for line in text.splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict):
            out.append(rec)
    return out


def read_logs(path: str | Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(per-epoch records of metrics.jsonl, per-step records of steps.jsonl)."""
    rd = RunDir(path)
    return read_jsonl(rd.epochs_log), read_jsonl(rd.steps_log)


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
    """What a run folder's config.json and metrics.json say, typed."""

    dir: RunDir
    model: ModelConfig
    train: TrainConfig
    dataset: dict[str, Any]
    command: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def read(cls, path: str | Path) -> RunRecord:
        """Read config.json (required) and metrics.json (optional, {} when unreadable)."""
        rd = RunDir(path)
        cfg = read_json_object(rd.config)
        try:
            model = ModelConfig.from_dict(cfg.get("model"))
        except ConfigError as e:
            raise RecordError(f"config.json: bad model config: {e}") from None
        dataset = cfg.get("dataset") if isinstance(cfg.get("dataset"), dict) else {}
        try:
            metrics = read_json_object(rd.metrics)
        except RecordError:
            metrics = {}
        command = cfg.get("command") if isinstance(cfg.get("command"), str) else ""
        return cls(rd, model, train_config(cfg.get("train")), dataset, command, metrics)

    def headline(self) -> Headline | None:
        return headline(self.metrics)

    def binarize(self, binary_like: bool) -> bool:
        return binarize_rule(self.train.binarize, self.model.likelihood, binary_like)

    @property
    def epochs(self) -> int:
        """Epochs trained, from metrics.json (0 when it does not say, or says nonsense)."""
        v = self.metrics.get("epochs")
        return int(v) if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else 0
