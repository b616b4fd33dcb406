"""The epoch's running loss sums, buffered on the training device so a step never waits."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from vae.objectives import ELBOTerms
from vae.train.stopping import check_finite

EMPTY_SUMS = {"loss": 0.0, "elbo": 0.0, "recon": 0.0, "kl": 0.0, "n": 0}


class RunningSums:
    """The epoch's sums of loss, ELBO, reconstruction and KL, with the steps' terms buffered on
    the training device.

    A step only writes its four terms into a device buffer, so it never waits for the GPU;
    `flush()` adds them up and reads everything with one transfer every `log_every` steps, at
    the end of an epoch and before a stop, and names the first step whose loss was not finite.
    Sums are float64: products of float32 terms and batch sizes add up exactly, so a resumed run
    gets the same epoch means whatever its flush points were.
    """

    KEYS = ("loss", "elbo", "recon", "kl")

    def __init__(self, device: torch.device, acc: dict[str, Any], window: int) -> None:
        self.dtype = torch.float32 if device.type == "mps" else torch.float64  # mps: no float64
        self.totals = {k: float(acc[k]) for k in self.KEYS}
        self.n = int(acc["n"])
        self.buf = torch.zeros(max(1, window), 4, device=device)  # (window, 4) terms per step
        self.counts: list[int] = []  # batch size of each buffered step
        self.first_step = 0
        self.latest: list[float] = [math.nan] * 4  # (loss, elbo, recon, kl) of the last step read

    def add(self, terms: ELBOTerms, n: int, step: int) -> None:
        """Buffer one step's terms (batch means over `n` images); `step` counts from 1."""
        if not self.counts:
            self.first_step = step
        with torch.no_grad():
            parts = [terms.loss, terms.elbo, terms.recon, terms.kl]
            torch.stack([t.float() for t in parts], out=self.buf[len(self.counts)])  # (4,)
        self.counts.append(n)
        self.n += n

    def full(self) -> bool:
        return len(self.counts) >= len(self.buf)

    def flush(self, epoch: int, run_dir: Path, lr: float) -> None:
        """Add the buffered steps to the sums; raise TrainingError at a non-finite loss."""
        k = len(self.counts)
        if k == 0:
            return
        steps = self.buf[:k].to(self.dtype)  # (k, 4)
        w = torch.tensor(self.counts, dtype=self.dtype, device=steps.device)  # (k,)
        old = torch.tensor([self.totals[key] for key in self.KEYS], dtype=self.dtype)  # (4,)
        sums = old.to(steps.device) + (steps * w[:, None]).sum(0)  # (4,)
        vals = torch.cat([steps[:, 0], steps[-1], sums]).tolist()  # (k + 8,): the one transfer
        self.counts = []
        check_finite(vals[:k], self.first_step, epoch, run_dir, lr)
        self.latest = vals[k : k + 4]
        self.totals = dict(zip(self.KEYS, vals[k + 4 :], strict=True))

    def as_dict(self) -> dict[str, Any]:
        """The sums as of the last flush (call it right after one), for records and resuming."""
        return {**self.totals, "n": self.n}

    def means(self) -> dict[str, float]:
        """The epoch's per-image means as of the last flush: {"loss": ..., "elbo": ..., ...}."""
        n = max(self.n, 1)
        return {k: v / n for k, v in self.totals.items()}
