"""Anomaly detection with the ELBO: inputs unlike the training data should get a low ELBO.

    sets = ood_sets(x_test, "digits")            # {"noise": (N, C, H, W), "inverted": ..., ...}
    scores = per_image_elbo(model, sets["noise"])   # vae.metrics
    r = detection(test_elbo, scores, false_alarm=0.05)   # threshold, detection rate, AUROC

Known caveat: likelihood models can give *higher* scores to some out-of-distribution inputs
than to their own test set (Nalisnick et al. 2019, "Do Deep Generative Models Know What They
Don't Know?"), typically simple, low-variance images. The demo shows whatever the numbers are.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F


def _resize(x: torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
    """Images (N, c, h, w) in [0, 1] -> (N, C, H, W): area resampling, grey <-> colour."""
    c, h, w = shape
    if x.shape[-2:] != (h, w):
        x = F.interpolate(x, size=(h, w), mode="area" if x.shape[-1] > w else "bilinear")
    if x.shape[1] != c:
        x = x.mean(1, keepdim=True).expand(-1, c, -1, -1) if c == 3 else x.mean(1, keepdim=True)
    return x.clamp(0, 1).contiguous()


def foreign_images(dataset: str, shape: tuple[int, int, int], n: int, seed: int = 0):
    """`n` images of another dataset resized to `shape`: shapes for image models of digits,
    sklearn digits for a shapes model. Returns (name, (n, C, H, W))."""
    if dataset == "shapes":
        from vae.data.digits import load_digits

        x, name = load_digits("all").x, "digits"
    else:
        from vae.data.shapes import load_shapes

        size = int(min(64, max(16, shape[1])))
        x, name = load_shapes("test", image_size=size, seed=seed).x, "shapes"
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(x.shape[0], generator=g)[:n]
    return name, _resize(x[idx], shape)


def ood_sets(
    x: torch.Tensor, dataset: str, seed: int = 0, n: int | None = None
) -> dict[str, torch.Tensor]:
    """Out-of-distribution versions of test images x (N, C, H, W), each (n, C, H, W).

    - noise: uniform pixel noise;
    - inverted: 1 - x (ink and background swapped);
    - rotated: x turned by 90 degrees (flipped upside down when not square);
    - a foreign dataset (see `foreign_images`).
    """
    n = x.shape[0] if n is None else min(n, x.shape[0])
    g = torch.Generator().manual_seed(seed)
    xs = x[torch.randperm(x.shape[0], generator=g)[:n]].float()  # (n, C, H, W)
    shape = tuple(x.shape[1:])
    rotated = torch.rot90(xs, 1, dims=(-2, -1)) if shape[1] == shape[2] else xs.flip(-2)
    name, foreign = foreign_images(dataset, shape, n, seed)
    return {
        "noise": torch.rand(xs.shape, generator=g),
        "inverted": 1.0 - xs,
        "rotated 90°": rotated.contiguous(),
        name: foreign,
    }


def detection(
    in_scores: np.ndarray, out_scores: np.ndarray, false_alarm: float = 0.05
) -> dict[str, Any]:
    """Flag an input when its ELBO is below the `false_alarm` quantile of the test ELBOs.

    Returns the threshold, the share of out-of-distribution inputs flagged (detection rate),
    the share of test images flagged (≈ false_alarm), and the AUROC of -ELBO as a score.
    """
    from sklearn.metrics import roc_auc_score

    a = np.asarray(in_scores, dtype=np.float64).reshape(-1)
    b = np.asarray(out_scores, dtype=np.float64).reshape(-1)
    if a.size == 0 or b.size == 0:
        raise ValueError("need scores for both the test set and the anomalies")
    if not 0.0 < false_alarm < 1.0:
        raise ValueError("false_alarm must be in (0, 1)")
    threshold = float(np.quantile(a, false_alarm))
    labels = np.r_[np.zeros(a.size), np.ones(b.size)]
    return {
        "threshold": threshold,
        "detected": float((b < threshold).mean()),
        "false_alarms": float((a < threshold).mean()),
        "auroc": float(roc_auc_score(labels, -np.r_[a, b])),
    }
