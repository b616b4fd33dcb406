"""The epoch's running loss sums, buffered on the training device so a step never waits."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from vae.objectives import ELBOTerms
from vae.train.stopping import check_finite

EMPTY_SUMS = {"loss": 0.0, "elbo": 0.0, "recon": 0.0, "kl": 0.0, "n": 0}
KEYS = ("loss", "elbo", "recon", "kl")  # every objective's terms
TC_KEYS = ("mi", "tc", "dwkl")  # β-TCVAE's parts of the KL, summed too


def sum_keys(objective: str) -> tuple[str, ...]:
    """The terms a run with this `TrainConfig.objective` sums and logs."""
    return KEYS + TC_KEYS if objective == "btcvae" else KEYS


class RunningSums:
    """The epoch's sums of loss, ELBO, reconstruction and KL (and β-TCVAE's MI, TC and
    dimension-wise KL when `keys` has them), with the steps' terms buffered on the training device.

    A step only writes its terms into a device buffer, so it never waits for the GPU;
    `flush()` adds them up and reads everything with one transfer every `log_every` steps, at
    the end of an epoch and before a stop, and names the first step whose loss was not finite.
    Sums are float64: products of float32 terms and batch sizes add up exactly, so a resumed run
    gets the same epoch means whatever its flush points were.
    """

    def __init__(
        self, device: torch.device, acc: dict[str, Any], window: int, keys: tuple[str, ...] = KEYS
    ) -> None:
        self.keys = keys
        self.dtype = torch.float32 if device.type == "mps" else torch.float64  # mps: no float64
        # a β-TCVAE sum that the saved state lacks starts at 0
        self.totals = {k: float(acc[k] if k in KEYS else acc.get(k, 0.0)) for k in keys}
        self.n = int(acc["n"])
        self.buf = torch.zeros(max(1, window), len(keys), device=device)  # (window, K) per step
        self.counts: list[int] = []  # batch size of each buffered step
        self.first_step = 0
        self.latest = dict.fromkeys(keys, math.nan)  # the terms of the last step read

    def add(self, terms: ELBOTerms, n: int, step: int) -> None:
        """Buffer one step's terms (batch means over `n` images); `step` counts from 1."""
        if not self.counts:
            self.first_step = step
        with torch.no_grad():
            parts = [getattr(terms, k).float() for k in self.keys]
            torch.stack(parts, out=self.buf[len(self.counts)])  # (K,)
        self.counts.append(n)
        self.n += n

    def full(self) -> bool:
        return len(self.counts) >= len(self.buf)

    def flush(self, epoch: int, run_dir: Path, lr: float) -> None:
        """Add the buffered steps to the sums; raise TrainingError at a non-finite loss."""
        k = len(self.counts)
        if k == 0:
            return
        n_keys = len(self.keys)
        steps = self.buf[:k].to(self.dtype)  # (k, K)
        w = torch.tensor(self.counts, dtype=self.dtype, device=steps.device)  # (k,)
        old = torch.tensor([self.totals[key] for key in self.keys], dtype=self.dtype)  # (K,)
        sums = old.to(steps.device) + (steps * w[:, None]).sum(0)  # (K,)
        vals = torch.cat([steps[:, 0], steps[-1], sums]).tolist()  # (k + 2K,): the one transfer
        self.counts = []
        check_finite(vals[:k], self.first_step, epoch, run_dir, lr)
        self.latest = dict(zip(self.keys, vals[k : k + n_keys], strict=True))
        self.totals = dict(zip(self.keys, vals[k + n_keys :], strict=True))

    def as_dict(self) -> dict[str, Any]:
        """The sums as of the last flush (call it right after one), for records and resuming."""
        return {**self.totals, "n": self.n}

    def means(self) -> dict[str, float]:
        """The epoch's per-image means as of the last flush: {"loss": ..., "elbo": ..., ...}."""
        n = max(self.n, 1)
        return {k: v / n for k, v in self.totals.items()}
