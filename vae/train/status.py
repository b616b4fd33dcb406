"""What a run tells the app while it trains, through files in its folder (`vae.record.RunDir`):

    status.json   state, epoch, step, ETA and pid, rewritten atomically (StatusWriter)
    steps.jsonl   one StepInfo line every `log_every` steps
    STOP          written by the app (`vae.jobs.stop`): finish the step, save, exit
    preview.safetensors  the weights every few seconds, for the live view (`train/preview.py`)
    log.txt       the trainer's stdout and stderr, captured by `vae.jobs`

The file-name constants stay for `from vae.train import STATUS_FILE` and friends.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from vae.checkpoint import (
    append_jsonl,
    atomic_write_bytes,
    atomic_write_json,
    clean_stale_temps,
    write_error,
)
from vae.record import RunDir, read_jsonl

STATUS_FILE = RunDir(".").status.name  # "status.json"
STEPS_FILE = RunDir(".").steps_log.name  # "steps.jsonl"
LOG_FILE = RunDir(".").log.name  # "log.txt"
STOP_FILE = RunDir(".").stop.name  # "STOP"


@dataclass
class StepInfo:
    """One line of steps.jsonl (plus its "time"), and what `train(on_step=...)` receives."""

    step: int
    epoch: int
    total_steps: int
    loss: float
    elbo: float
    recon: float
    kl: float
    beta: float
    mi: float | None = None  # β-TCVAE runs: the KL's three parts (vae.objectives.kl_decomposition)
    tc: float | None = None
    dwkl: float | None = None


def open_run_dir(run_dir: Path, resume: bool) -> None:
    """Make the folder; a fresh run drops the logs of an earlier one; an old STOP is removed, an
    old preview (the weights of a process that is gone, maybe past the checkpoint), and the temp
    files of saves that were killed. Raises `WriteError` when the folder cannot be written."""
    rd = RunDir(run_dir)
    try:
        rd.path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise write_error(e, rd.status) from None
    clean_stale_temps(rd.path)
    old = [rd.stop, rd.preview] + ([] if resume else [rd.epochs_log, rd.steps_log])
    for f in old:
        try:
            if f.exists():  # unlink(missing_ok) still fails on a read-only file system
                f.unlink(missing_ok=True)
        except OSError as e:
            raise write_error(e, f) from None


def drop_logs_after(run_dir: Path, step: int) -> None:
    """Remove the lines of steps.jsonl and metrics.jsonl past `step` (a run resumed from `step`
    trains those steps again, and would log them twice) and a torn last line (a kill mid-append),
    which the next line would otherwise be glued to."""
    for path in (RunDir(run_dir).steps_log, RunDir(run_dir).epochs_log):
        try:
            data = path.read_bytes()
            torn = bool(data) and not data.endswith(b"\n")
        except FileNotFoundError:
            continue
        records = read_jsonl(path)
        keep = [r for r in records if not (isinstance(r.get("step"), int) and r["step"] > step)]
        if len(keep) < len(records) or torn:
            atomic_write_bytes(path, "".join(json.dumps(r) + "\n" for r in keep).encode())


def append_step(run_dir: Path, info: StepInfo) -> None:
    record = {k: v for k, v in asdict(info).items() if v is not None}  # no TC terms: no keys
    append_jsonl(RunDir(run_dir).steps_log, {**record, "time": time.time()})


class StatusWriter:
    """`status.json`: state, epoch, step, ETA and pid, for the app to poll. Throttled to ~2/s."""

    def __init__(self, run_dir: Path, enabled: bool, epochs: int, total_steps: int) -> None:
        self.run_dir, self.enabled = run_dir, enabled
        self.epochs, self.total_steps = epochs, total_steps
        self.last = 0.0
        self.first_step: int | None = None

    def eta(self, elapsed_s: float, step: int) -> float:
        """Seconds left at this process's pace (steps done since its first status write)."""
        done = step - (self.first_step or 0)
        return elapsed_s / max(done, 1) * (self.total_steps - step)

    def write(
        self,
        state: str,
        epoch: int,
        step: int,
        eta_s: float | None,
        message: str = "",
        final: dict | None = None,
    ) -> None:
        if not self.enabled:
            return
        if self.first_step is None:
            self.first_step = step
        now = time.time()
        if state == "running" and now - self.last < 0.5 and step < self.total_steps:
            return
        self.last = now
        atomic_write_json(
            RunDir(self.run_dir).status,
            {
                "state": state,
                "epoch": epoch,
                "epochs": self.epochs,
                "step": step,
                "total_steps": self.total_steps,
                "eta_s": None if eta_s is None else round(eta_s, 1),
                "pid": os.getpid(),
                "updated": now,
                "message": message,
                **({"final": final} if final else {}),
            },
        )
