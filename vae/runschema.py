"""What each field of a run's JSON files may hold, checked by kind and range.

    model, train = check_config(meta)   # config.json: every section and field
    check_metrics(metrics)              # metrics.json
    log_problem(record, "steps")        # why a steps.jsonl / metrics.jsonl line is unusable, or ''

A run folder may be a stranger's upload, and every page reads these files, so a value of the
wrong kind (a string where an object or a number belongs, NaN, a huge list) is refused here, with
a message naming the file and the field, instead of failing later inside a page. Fields that no
code reads may hold any JSON; the parser (`vae.runjson`) already bounds their size and nesting.
"""

from __future__ import annotations

import math
import re
from typing import Any

from vae.config import ConfigError, ModelConfig, TrainConfig
from vae.runjson import RecordError

FORMAT_VERSION = 1  # of config.json; a newer one is refused with "upgrade the package"
TOP_KEYS = {"format_version", "model", "dataset", "train", "command", "created", "extra"}
INKS = ("ink-high", "ink-low")  # vae.data's INK_HIGH, INK_LOW
MAX_TEXT = 4096  # a name, a path, a label
MAX_ITEMS = 100_000  # label names, KL per dimension, activity
DATASET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}")  # shown in labels and captions


def _short(v: Any, n: int = 40) -> str:
    text = repr(v)
    return text if len(text) <= n else text[: n - 1] + "…"


def _is_number(v: Any, finite: bool = True) -> bool:
    """A JSON number (not a bool) that converts to a float: an int within ±1e300, a float that
    is finite unless `finite` is False."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    if isinstance(v, int):
        return -(10**300) <= v <= 10**300
    return not finite or math.isfinite(v)


def _is_whole(v: Any, lo: int = 0, hi: int = 2**63 - 1) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi


def _is_text(v: Any, n: int = MAX_TEXT) -> bool:
    return isinstance(v, str) and len(v) <= n


def _texts(v: Any) -> bool:
    return isinstance(v, list) and len(v) <= MAX_ITEMS and all(_is_text(s, 200) for s in v)


def _numbers(v: Any, finite: bool = True) -> bool:
    return isinstance(v, list) and len(v) <= MAX_ITEMS and all(_is_number(x, finite) for x in v)


def _scalar(v: Any) -> bool:
    return v is None or isinstance(v, bool) or _is_number(v) or _is_text(v)


def _need(ok: bool, where: str, what: str, v: Any) -> None:
    if not ok:
        raise RecordError(f"{where} must be {what}, got {_short(v)}")


# --- config.json ---------------------------------------------------------------------------------
def check_config(
    meta: dict[str, Any], name: str = "config.json"
) -> tuple[ModelConfig, TrainConfig]:
    """Check every field of a config.json object; returns its (model, train) configs. Raises
    RecordError naming `name` and the field. A missing train section means the defaults."""
    unknown = sorted(set(meta) - TOP_KEYS)
    if unknown:
        raise RecordError(f"{name}: unknown keys {[_short(k) for k in unknown[:5]]}")
    version = meta.get("format_version")
    if not _is_whole(version):
        raise RecordError(f"{name}: missing integer 'format_version', got {_short(version)}")
    if version > FORMAT_VERSION:
        raise RecordError(
            f"{name} was written by a newer VAE Latent Explorer (format {version}, this "
            f"version reads up to {FORMAT_VERSION}). Upgrade the package to load it."
        )
    if version < 1:
        raise RecordError(f"{name}: format_version must be 1..{FORMAT_VERSION}, got {version}")
    try:
        model = ModelConfig.from_dict(meta.get("model"))
    except ConfigError as e:
        raise RecordError(f"{name}: bad model config: {e}") from None
    train = _check_train(meta.get("train", {}), name)
    _check_dataset(meta.get("dataset", {}), model, name)
    _need(
        _is_text(meta.get("command", ""), 100_000),
        f"{name}: command",
        "a text",
        meta.get("command"),
    )
    _need(
        _is_text(meta.get("created", ""), 64),
        f"{name}: created",
        "a date text",
        meta.get("created"),
    )
    _need(isinstance(meta.get("extra", {}), dict), f"{name}: extra", "an object", meta.get("extra"))
    return model, train


def _check_train(d: Any, name: str) -> TrainConfig:
    _need(isinstance(d, dict), f"{name}: train", "an object", d)
    known = {k: v for k, v in d.items() if k in TrainConfig.__dataclass_fields__}
    try:
        return TrainConfig.from_dict(known)  # fields it no longer has are ignored
    except ConfigError as e:
        raise RecordError(f"{name}: bad train config: {e}") from None


def _check_dataset(d: Any, model: ModelConfig, name: str) -> None:
    where = f"{name}: dataset"
    _need(isinstance(d, dict), where, "an object", d)
    if "name" in d:
        ok = isinstance(d["name"], str) and DATASET_NAME.fullmatch(d["name"]) is not None
        _need(ok, f"{where}.name", "a dataset name (letters, digits, _ . + -)", d["name"])
    if "image_shape" in d:
        shape = d["image_shape"]
        ok = isinstance(shape, list) and shape == list(model.image_shape)
        _need(ok, f"{where}.image_shape", f"the model's {list(model.image_shape)}", shape)
    for key in ("label_names", "factor_names"):
        if d.get(key) is not None:
            _need(_texts(d[key]), f"{where}.{key}", "a list of short texts or null", d[key])
    sizes = d.get("factor_sizes")
    if sizes is not None:
        ok = isinstance(sizes, list) and len(sizes) <= 64 and all(_is_whole(n, 1) for n in sizes)
        _need(ok, f"{where}.factor_sizes", "a list of whole numbers or null", sizes)
    prep = d.get("preprocessing", {})
    _need(isinstance(prep, dict), f"{where}.preprocessing", "an object", prep)
    if "ink" in prep:
        _need(prep["ink"] in INKS, f"{where}.preprocessing.ink", f"one of {INKS}", prep["ink"])
    if "binary_like" in prep:
        _need(isinstance(prep["binary_like"], bool), f"{where}.preprocessing.binary_like",
              "true or false", prep["binary_like"])  # fmt: skip
    if "split_seed" in prep:
        _need(_is_whole(prep["split_seed"], 0, 2**32 - 1), f"{where}.preprocessing.split_seed",
              "a whole number", prep["split_seed"])  # fmt: skip
    for key, v in prep.items():
        _need(_scalar(v), f"{where}.preprocessing.{_short(key, 30)}", "a number or a text", v)
    for key, v in d.items():
        if key not in ("label_names", "factor_names", "factor_sizes", "preprocessing"):
            _need(_scalar(v) or key == "image_shape", f"{where}.{_short(key, 30)}", "a value", v)


# --- metrics.json --------------------------------------------------------------------------------
_METRIC_WHOLE = ("epochs", "step", "world_size")
_METRIC_NONNEG = ("wall_time_s", "train_time_s", "train_samples_per_s", "time_s")
_METRIC_TEXT = ("state", "device")


def check_metrics(m: dict[str, Any], name: str = "metrics.json") -> dict[str, Any]:
    """Check the fields of metrics.json that pages read; returns `m`. Raises RecordError."""
    for key in _METRIC_WHOLE:
        if key in m:
            _need(_is_whole(m[key]), f"{name}: {key}", "a whole number >= 0", m[key])
    for key in _METRIC_NONNEG:
        if key in m:
            ok = _is_number(m[key]) and m[key] >= 0
            _need(ok, f"{name}: {key}", "a number >= 0", m[key])
    for key in _METRIC_TEXT:
        if key in m:
            _need(_is_text(m[key], 64), f"{name}: {key}", "a short text", m[key])
    for key, v in m.items():
        if key.endswith("_per_dim"):
            _need(_numbers(v), f"{name}: {_short(key, 30)}", "a list of numbers", v)
        elif key.startswith(("train_", "test_")) or key == "beta":
            _need(_is_number(v), f"{name}: {_short(key, 30)}", "a number", v)
    ev = m.get("evaluation")
    if ev is not None:
        _need(isinstance(ev, dict), f"{name}: evaluation", "an object", ev)
        for split, res in ev.items():
            where = f"{name}: evaluation.{_short(split, 30)}"
            _need(isinstance(res, dict), where, "an object", res)
            for key in ("iwae_nll", "elbo", "recon", "kl"):
                if key in res:
                    _need(_is_number(res[key]), f"{where}.{key}", "a number", res[key])
            if "iw_samples" in res:
                ok = _is_whole(res["iw_samples"], 1)
                _need(ok, f"{where}.iw_samples", "a whole number >= 1", res["iw_samples"])
    return m


# --- metrics.jsonl and steps.jsonl ---------------------------------------------------------------
_LOG_NEEDS = {  # kind -> (whole-number keys, number keys) every line must have
    "epochs": (("epoch",), ()),
    "steps": (("step", "epoch"), ("elbo", "recon", "kl")),
}


_LOG_NUMBERS = ("loss", "beta", "time", "time_s", "mi", "tc", "dwkl")  # mi, tc, dwkl: β-TCVAE


def log_problem(rec: dict[str, Any], kind: str) -> str:
    """Why one record of a log ("epochs": metrics.jsonl, "steps": steps.jsonl) cannot be drawn,
    or ''. Losses may be NaN (a diverged run logs them as they were). An epoch's test values
    are drawn at its step, so a record with them needs one."""
    wholes, numbers = _LOG_NEEDS[kind]
    if kind == "epochs" and any(k.startswith("test_") for k in rec):
        wholes = (*wholes, "step")
    for key in wholes:
        if not _is_whole(rec.get(key)):
            return f"{key} must be a whole number >= 0, got {_short(rec.get(key))}"
    for key in numbers:
        if not _is_number(rec.get(key), finite=False):
            return f"{key} must be a number, got {_short(rec.get(key))}"
    for key, v in rec.items():
        if key.endswith("_per_dim"):
            if not (_numbers(v, finite=False) and len(v) <= 128):
                return f"{_short(key, 30)} must be a list of at most 128 numbers"
        elif key.startswith(("train_", "test_")) or key in _LOG_NUMBERS:
            if not _is_number(v, finite=False):
                return f"{_short(key, 30)} must be a number, got {_short(v)}"
        elif key in ("step", "total_steps", "epoch") and not _is_whole(v):
            return f"{key} must be a whole number >= 0, got {_short(v)}"
    return ""
