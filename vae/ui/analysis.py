"""Model analyses for the Diagnostics and Demos pages, numpy out, cached per model.

    epochs, steps = training_logs(run)            # metrics.jsonl and steps.jsonl records
    count, activity = active_units(run)           # Burda et al. 2015, on the dataset
    r = iwae_nll(run, n=500, k=100, progress=cb)  # on demand: {"nll", "seconds", ...}
    m = mig(run, table)                           # shapes: MIG and the MI matrix
    scores = ood_scores(run, n=500)               # {"test images": ELBOs, "noise": ...}

Cached results are keyed by the run folder and its weights' (mtime, size), like `vae.ui.cache`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st

from vae.checkpoint import Run
from vae.record import RecordError, RunDir, binarize_rule, read_logs, read_metrics
from vae.ui import data, models
from vae.ui.cache import LatentTable


def training_logs(run: Run) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The run's per-epoch (metrics.jsonl) and per-step (steps.jsonl) records, as the files are
    now: read again whenever either file changes (a run still training), else remembered."""
    rd = RunDir(run.path)
    return _logs(str(run.path), (_file_stamp(rd.epochs_log), _file_stamp(rd.steps_log)))


def _file_stamp(path: Path) -> tuple[int, int] | None:
    try:
        s = path.stat()
    except OSError:
        return None
    return s.st_mtime_ns, s.st_size


@st.cache_data(show_spinner=False, max_entries=16)
def _logs(path: str, stamps: tuple) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    return read_logs(path)


def stored_metrics(run: Run) -> dict[str, Any]:
    """metrics.json as it is on disk now ({} when missing or unreadable)."""
    try:
        return read_metrics(run.path)  # checked as RunRecord.read checks it
    except RecordError:
        return {}


@st.cache_data(show_spinner="Measuring latent activity…", max_entries=16)
def _active(path: str, version: tuple[int, int]) -> tuple[int, np.ndarray]:
    from vae.metrics import active_units as _au

    run = models.load(Path(path))
    count, activity = _au(run.model, data.load(run).x)
    return count, activity.numpy()


def active_units(run: Run) -> tuple[int, np.ndarray]:
    """(number of active units, activity (D,)) over the run's dataset (see `vae.metrics`)."""
    return _active(str(run.path), models.stamp(run.path))


def iwae_nll(
    run: Run,
    n: int = 500,
    k: int = 100,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, float]:
    """IWAE NLL (nats) of the first `n` images of the dataset with k samples each, and the
    single-sample -ELBO of the same images for comparison (the NLL should be the lower one).

    Images are binarized once (seeded) when the run was trained binarized
    (`vae.record.binarize_rule`), as in `python -m vae.evaluate`.
    Returns {"nll", "neg_elbo", "seconds", "n", "k"}.
    """
    import torch

    from vae.metrics import evaluate_elbo
    from vae.metrics import iwae_nll as _iwae
    from vae.objectives import dynamic_binarize

    ds = data.load(run)
    x = ds.x[: max(1, min(int(n), len(ds)))]
    if binarize_rule(run.train.binarize, run.config.likelihood, ds.binary_like):  # as trained
        x = dynamic_binarize(x, torch.Generator().manual_seed(seed))
    t0 = time.perf_counter()
    nll = _iwae(
        run.model, x, k=int(k), batch_size=max(1, min(50, x.shape[0])), seed=seed, progress=progress
    )
    secs = time.perf_counter() - t0
    neg_elbo = -evaluate_elbo(run.model, x, seed=seed)["elbo"]
    return {"nll": float(nll), "neg_elbo": neg_elbo, "seconds": secs, "n": int(x.shape[0]), "k": k}


@st.cache_data(show_spinner="Computing mutual information…", max_entries=16)
def _mig(path: str, version: tuple[int, int], n: int, _table: LatentTable) -> dict[str, Any]:
    from vae.metrics import mig as _m

    ds = data.load(models.load(Path(path)))
    return _m(_table.mean, _table.factors, list(ds.factor_sizes or []))


def mig(run: Run, table: LatentTable) -> dict[str, Any] | None:
    """MIG (Chen et al. 2018) over the table's images, or None without factors / < 2 dims."""
    if table.factors is None or run.config.latent_dim < 2:
        return None
    return _mig(str(run.path), models.stamp(run.path), len(table), table)


@st.cache_data(show_spinner="Scoring normal and unusual images…", max_entries=16)
def _ood(path: str, version: tuple[int, int], n: int, seed: int) -> dict[str, np.ndarray]:
    from vae.anomaly import ood_sets
    from vae.metrics import per_image_elbo

    run = models.load(Path(path))
    ds = data.load(run)
    sets = ood_sets(ds.x, ds.name, seed=seed, n=n)
    out = {"test images": per_image_elbo(run.model, ds.x[:n], seed=seed).numpy()}
    for name, x in sets.items():
        out[name] = per_image_elbo(run.model, x, seed=seed).numpy()
    return out


def ood_scores(run: Run, n: int = 500, seed: int = 0) -> dict[str, np.ndarray]:
    """Per-image ELBOs of `n` test images (first entry) and of each unusual set."""
    return _ood(str(run.path), models.stamp(run.path), int(n), int(seed))


def ood_examples(run: Run, n: int = 6, seed: int = 0) -> dict[str, np.ndarray]:
    """A few images of each unusual set, (n, C, H, W) numpy, for a preview."""
    from vae.anomaly import ood_sets

    ds = data.load(run)
    return {k: v[:n].numpy() for k, v in ood_sets(ds.x, ds.name, seed=seed, n=n).items()}
