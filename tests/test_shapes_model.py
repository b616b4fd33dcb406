"""The shipped β-TCVAE shapes model disentangles: MIG ≥ 0.30 on the shapes test split.

MIG is computed here by hand from a contingency table (plug-in mutual information in nats,
Chen et al. 2018, Eq. 6), not through `vae.metrics`, so a slip there cannot pass unseen.
"""

from pathlib import Path

import numpy as np
import torch

from vae.checkpoint import load_run, read_json
from vae.data import load_dataset
from vae.objectives import dynamic_binarize

FOLDER = Path(__file__).resolve().parents[1] / "assets" / "shapes-conv"


def _bins(values: np.ndarray, n: int = 20) -> np.ndarray:
    """Equal-width bin index over the values' own range, (N,)."""
    lo, hi = values.min(), values.max()
    return np.clip(((values - lo) / (hi - lo) * n).astype(int), 0, n - 1)


def _mi(a: np.ndarray, b: np.ndarray) -> float:
    """Plug-in I(a; b) in nats from the joint histogram of two integer codes."""
    joint = np.zeros((a.max() + 1, b.max() + 1))
    np.add.at(joint, (a, b), 1.0)
    p = joint / joint.sum()
    pa, pb = p.sum(1, keepdims=True), p.sum(0, keepdims=True)
    nz = p > 0
    return float((p[nz] * np.log(p[nz] / (pa @ pb)[nz])).sum())


def test_shipped_shapes_model_has_mig_above_030_on_the_test_split():
    torch.set_num_threads(2)
    run = load_run(FOLDER)
    ds = load_dataset("shapes", "test", image_size=32)
    assert run.train.objective == "btcvae"
    x = dynamic_binarize(ds.x, torch.Generator().manual_seed(0))  # as `vae.evaluate` does
    with torch.no_grad():
        mean = run.model.encode(x).mean.double().numpy()  # (N, D)
    factors = np.asarray(ds.factors)  # (N, K)
    assert mean.shape == (2700, 10) and factors.shape[0] == 2700

    codes = [_bins(mean[:, d]) for d in range(mean.shape[1])]
    gaps = {}
    for k, name in enumerate(ds.factor_names):
        v = factors[:, k]
        entropy = _mi(v, v)
        mis = sorted((_mi(v, c) for c in codes), reverse=True)
        gaps[name] = (mis[0] - mis[1]) / entropy
    score = float(np.mean(list(gaps.values())))

    assert score >= 0.30, gaps
    for name in ("scale", "x", "y"):  # one latent each for position and size
        assert gaps[name] >= 0.3, gaps
    stored = read_json(FOLDER / "metrics.json")["evaluation"]["test"]
    assert stored["n"] == 2700
    assert abs(stored["mig"] - score) < 1e-3
    for name, value in gaps.items():
        assert abs(stored["mig_per_factor"][name] - value) < 1e-3
