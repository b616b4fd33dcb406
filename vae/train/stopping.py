"""Ways a run stops early: gracefully (SIGTERM/SIGINT or a STOP file) or on a NaN/Inf loss.

A graceful stop finishes the step, saves a resumable checkpoint and exits with state "stopped".
A non-finite loss raises `TrainingError` before anything is saved, so the last good checkpoint
stays in place.
"""

from __future__ import annotations

import math
import signal
import threading
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from vae.errors import ExplorerError
from vae.record import RunDir


class TrainingError(ExplorerError, RuntimeError):
    """Training cannot go on (NaN loss, bad data, bad config). The message is for the user."""


class StopFlag:
    """Set by SIGTERM/SIGINT or by a STOP file in the run folder: finish the step, save, exit."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.set = False
        self._old: dict[int, Any] = {}

    def install(self) -> None:
        if threading_main():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._old[sig] = signal.signal(sig, self._handle)

    def uninstall(self) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)

    def _handle(self, signum: int, frame: Any) -> None:
        self.set = True

    def check(self) -> bool:
        if not self.set and RunDir(self.run_dir).stop.exists():
            self.set = True
        return self.set


def threading_main() -> bool:
    """Signal handlers can only be installed from the main thread (not from the app's threads)."""
    return threading.current_thread() is threading.main_thread()


def should_stop(stop: StopFlag, distributed: bool, device: torch.device) -> bool:
    """All ranks stop together: rank 0's flag (or any rank's signal) is shared each step."""
    flag = stop.check()
    if not distributed:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)  # (1,)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def check_finite(
    losses: list[float], first_step: int, epoch: int, run_dir: Path, lr: float
) -> None:
    """Raise TrainingError at the first non-finite loss; `losses[i]` is step `first_step + i`."""
    for i, loss in enumerate(losses):
        if not math.isfinite(loss):
            raise TrainingError(
                f"the loss became {loss} at step {first_step + i} (epoch {epoch + 1}). "
                f"Training stopped; the last good checkpoint in {run_dir} is kept. Try a "
                f"lower --lr (now {lr}), a KL warm-up, or check the data for NaNs."
            )
