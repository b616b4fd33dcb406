"""Job state, read back from a run folder's files: `JobStatus`, `job_status`, the runs root."""

from __future__ import annotations

import os
import re
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vae.checkpoint import CONFIG_FILE, WEIGHTS_FILE, CheckpointError, read_json, train_state_meta
from vae.errors import ExplorerError
from vae.jobs.proc import pid_alive
from vae.record import RecordError, RunDir, read_config_file

_FILES = RunDir(".")
JOB_FILE = _FILES.job.name
EXIT_FILE = _FILES.exit.name
STATUS_FILE = _FILES.status.name
STOP_FILE = _FILES.stop.name
LOG_FILE = _FILES.log.name
LOCK_FILE = ".jobs.lock"


NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


ACTIVE = ("starting", "running", "stopping", "mapping")  # mapping: making the maps at the end


TERMINAL = ("finished", "stopped", "failed")


class JobError(ExplorerError, ValueError):
    """A job cannot be started, stopped, renamed or deleted. The message is for the user."""


def runs_root() -> Path:
    """`$VAE_RUNS_DIR`, default ./runs (the same folder the app's model picker scans)."""
    return Path(os.environ.get("VAE_RUNS_DIR") or "runs")


def max_jobs_per_device() -> int:
    text = os.environ.get("VAE_MAX_JOBS", "1")
    try:
        n = int(text)
    except ValueError:
        raise JobError(f"VAE_MAX_JOBS must be a whole number, got {text!r}") from None
    if n < 1:
        raise JobError(f"VAE_MAX_JOBS must be at least 1, got {n}")
    return n


def check_name(name: str) -> str:
    """A run name is a safe folder name: letters, digits, `_ . -`, at most 64, no leading dot."""
    name = (name or "").strip()
    if not name:
        raise JobError("give the run a name")
    if not NAME_RE.fullmatch(name):
        raise JobError(
            f"{name!r} is not a valid run name: use letters, digits, '-', '_' and '.', start "
            "with a letter or digit, at most 64 characters"
        )
    return name


def device_slot(device: str) -> str:
    """The device a job will occupy, as `cpu`, `mps` or `cuda:i` (`auto` is resolved here)."""
    from vae.device import resolve_device

    dev = resolve_device(device)  # ValueError with a clear message when unavailable
    if dev.type == "cuda":
        return f"cuda:{dev.index or 0}"
    return dev.type


@dataclass
class JobStatus:
    """What a run folder says about its job. `state` is one of ACTIVE, TERMINAL or `ready`
    (a run without a job record, e.g. imported or trained elsewhere)."""

    name: str
    path: Path
    state: str
    epoch: int = 0
    epochs: int = 0
    step: int = 0
    total_steps: int = 0
    eta_s: float | None = None
    pid: int | None = None
    device: str = ""
    message: str = ""  # plain-language reason when failed or stopped
    started: float | None = None
    updated: float | None = None
    returncode: int | None = None
    has_model: bool = False
    can_resume: bool = False

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    @property
    def progress(self) -> float:
        return min(1.0, self.step / self.total_steps) if self.total_steps else 0.0


def _read(path: Path) -> dict[str, Any]:
    try:
        return read_json(path)
    except CheckpointError:
        return {}


def humanize(message: str) -> str:
    """Trainer and Python error messages in plain language."""
    low = message.lower()
    if "out of memory" in low or "outofmemoryerror" in low:
        return (
            "The device ran out of memory. Try a smaller batch size or a smaller model, or "
            f"train on another device. ({message.strip()[:300]})"
        )
    if "loss became" in low:
        return f"Training diverged: {message}"
    return message


def _exit_reason(returncode: int | None) -> str:
    if returncode is None:
        return "it may have been killed, or the machine restarted"
    if returncode < 0:
        try:
            sig = signal.Signals(-returncode).name
        except ValueError:
            sig = f"signal {-returncode}"
        why = " (often the system running out of memory)" if sig == "SIGKILL" else ""
        return f"it was killed by {sig}{why}"
    return f"it exited with code {returncode}"


def log_tail(run_dir: Path, lines: int = 30, max_bytes: int = 16_384) -> str:
    """The last lines of log.txt ('' when there is none)."""
    try:
        with open(Path(run_dir) / LOG_FILE, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    text = text.replace("\r", "\n")
    return "\n".join([ln for ln in text.splitlines() if ln.strip()][-lines:])


def _log_error(run_dir: Path) -> str:
    """The `error: ...` line (bad data, bad config) the latest launch printed, if any."""
    for line in reversed(log_tail(run_dir, 200).splitlines()):
        if line.startswith("=== "):  # the header of the latest launch
            break
        if line.startswith("error: "):
            return line.removeprefix("error: ")
    return ""


def _trained_on(run_dir: Path) -> str:
    """The device in the run's config.json ('' when it has none, or cannot be read)."""
    try:
        return read_config_file(run_dir)[0].get("train", {}).get("device", "")  # checked: a str
    except RecordError:
        return ""


def job_status(run_dir: str | os.PathLike) -> JobStatus:
    """The state of a run folder's job, from its files and the liveness of its process."""
    run_dir = Path(run_dir)
    status, job = _read(run_dir / STATUS_FILE), _read(run_dir / JOB_FILE)
    done = _read(run_dir / EXIT_FILE)
    pid = job.get("pid") if job else status.get("pid")
    alive = pid_alive(pid, job.get("proc_start")) if job else pid_alive(pid)
    mine = bool(status) and status.get("pid") == pid  # status.json written by this process
    said = status.get("state") if mine else None
    stop_asked = (run_dir / STOP_FILE).exists()
    returncode = done.get("returncode") if done.get("pid") == pid else None
    has_model = (run_dir / CONFIG_FILE).is_file() and (run_dir / WEIGHTS_FILE).is_file()
    s = JobStatus(
        name=run_dir.name,
        path=run_dir,
        state="ready",
        pid=pid,
        device=str(job.get("device") or _trained_on(run_dir)),
        started=job.get("started"),
        updated=status.get("updated") if mine else None,
        returncode=returncode,
        has_model=has_model,
    )  # fmt: skip
    if status:  # a resumed job shows where the previous one got to until it writes its own
        s.epoch, s.epochs = int(status.get("epoch", 0)), int(status.get("epochs", 0))
        s.step, s.total_steps = int(status.get("step", 0)), int(status.get("total_steps", 0))
        s.eta_s = status.get("eta_s") if mine else None
    if job and not mine:
        s.epochs = int(job.get("epochs", 0)) or s.epochs
    if said == "mapping" and not alive:  # killed while making the map: the run itself ended
        said = (status.get("final") or {}).get("state") or "finished"
        s.message = str((status.get("final") or {}).get("message") or "")
    if alive:
        if said in TERMINAL:
            s.state = said  # written its last word, exiting now
        elif said == "mapping":
            s.state = "mapping"
        elif said == "running":
            s.state = "stopping" if stop_asked else "running"
        else:
            s.state = "stopping" if stop_asked else "starting"
    elif said in TERMINAL:
        s.state = said
    elif stop_asked and said is None and job:
        s.state = "stopped"
        s.message = "Stopped before training began."
    elif job or said == "running":
        s.state = "failed"
        s.message = _log_error(run_dir) or (
            f"The training process ended unexpectedly: {_exit_reason(returncode)}."
        )
    if s.state == "failed" and not s.message:
        s.message = humanize(str(status.get("message") or "")) or "Training failed."
    if s.state == "stopped" and not s.message:
        s.message = f"Stopped at epoch {s.epoch} of {s.epochs}, step {s.step}."
    if s.state in ("failed", "stopped") and has_model and "checkpoint" not in s.message:
        s.message = f"{s.message} The last good checkpoint is kept.".strip()
    s.can_resume = (
        not s.active
        and s.state in ("stopped", "failed")
        and has_model
        and train_state_meta(run_dir) is not None
    )
    return s


def run_dirs(root: str | os.PathLike | None = None) -> list[Path]:
    """Run folders under the runs root (hidden folders, e.g. half-imported zips, are skipped)."""
    root = Path(root or runs_root())
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def active_jobs(root: str | os.PathLike | None = None) -> list[JobStatus]:
    return [s for s in map(job_status, run_dirs(root)) if s.active]
