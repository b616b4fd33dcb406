"""Starting, resuming and stopping jobs: `python -m vae.train` in its own session."""

from __future__ import annotations

import fcntl
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from vae.checkpoint import atomic_write_json, train_state_meta, write_problem
from vae.config import ModelConfig, TrainConfig
from vae.jobs.proc import lower_priority, proc_start, wait_and_record
from vae.jobs.state import (
    EXIT_FILE,
    JOB_FILE,
    LOCK_FILE,
    LOG_FILE,
    STATUS_FILE,
    STOP_FILE,
    JobError,
    JobStatus,
    _read,
    active_jobs,
    check_name,
    device_slot,
    job_status,
    max_jobs_per_device,
    runs_root,
)
from vae.record import RecordError, RunDir, RunRecord, is_confined
from vae.threads import job_threads

REPO_ROOT = Path(__file__).resolve().parents[2]


def make_maps_args() -> list[str]:
    """A job that ends with a checkpoint makes its t-SNE map too (vae.mapping), so that Explore
    opens on it at once; `VAE_JOB_MAPS=0` turns that off."""
    return [] if os.environ.get("VAE_JOB_MAPS", "1") == "0" else ["--make-maps", "tsne"]


@contextmanager
def runs_lock(root: Path) -> Iterator[None]:
    """Exclusive lock on `<root>/.jobs.lock` for check-then-launch decisions across sessions.
    A runs folder that cannot be written (read-only, a file) is a JobError naming it."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        f = open(root / LOCK_FILE, "a")  # noqa: SIM115 - closed below
    except OSError as e:
        raise JobError(
            f"the runs folder {root} cannot be written: {write_problem(e, root)}"
        ) from None
    with f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _check_capacity(root: Path, slot: str) -> None:
    busy = [s for s in active_jobs(root) if s.device == slot]
    limit = max_jobs_per_device()
    if len(busy) >= limit:
        names = ", ".join(s.name for s in busy)
        raise JobError(
            f"{slot} is busy with {names} (at most {limit} job{'s' * (limit > 1)} per device; "
            "set VAE_MAX_JOBS to change this). Wait for it to finish, stop it, or pick "
            "another device."
        )


def default_threads(slot: str) -> int | None:
    """A job's threads: `vae.threads.job_threads` (the one thread policy)."""
    return job_threads(slot)


def train_command(
    model_cfg: ModelConfig,
    cfg: TrainConfig,
    out: Path,
    *,
    threads: int | None = None,
    log_every: int = 20,
) -> list[str]:
    """Write the configs to `<out>/job_config.json` and return the `python -m vae.train
    --config-json` command that trains exactly them (no argv to rebuild, nothing to drift)."""
    from vae.train.cli import write_config_json

    request = RunDir(out).request
    write_config_json(request, model_cfg, cfg, out)
    cmd = [sys.executable, "-m", "vae.train", "--config-json", str(request)]
    if threads:
        cmd += ["--threads", str(threads)]
    return cmd + ["--no-progress", "--log-every", str(log_every), *make_maps_args()]


def _nice_once_running(proc: subprocess.Popen, run_dir: Path) -> None:
    """Lower a CPU job's priority once it trains: its start-up (imports, data) stays quick,
    and from then on the app server wins the CPU whenever it needs it."""
    while proc.poll() is None:
        status = _read(run_dir / STATUS_FILE)
        if status.get("pid") == proc.pid and status.get("state") == "running":
            lower_priority(proc.pid)
            return
        time.sleep(0.2)


def _launch(run_dir: Path, cmd: list[str], slot: str, kind: str, epochs: int) -> JobStatus:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    (run_dir / EXIT_FILE).unlink(missing_ok=True)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    with open(run_dir / LOG_FILE, "ab") as log:
        log.write(f"=== {stamp} {kind}: {shlex.join(cmd)}\n".encode())
        log.flush()
        try:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # survives the app; a Ctrl-C in the app's terminal too
            )
        except OSError as e:
            raise JobError(f"could not start the training process: {e}") from None
    atomic_write_json(
        run_dir / JOB_FILE,
        {
            "pid": proc.pid,
            "proc_start": proc_start(proc.pid),
            "device": slot,
            "kind": kind,
            "epochs": epochs,
            "started": time.time(),
            "command": shlex.join(cmd),
        },
    )
    threading.Thread(target=wait_and_record, args=(proc, run_dir), daemon=True).start()
    if slot == "cpu":
        threading.Thread(target=_nice_once_running, args=(proc, run_dir), daemon=True).start()
    return job_status(run_dir)


def start(
    name: str,
    model_cfg: ModelConfig,
    cfg: TrainConfig,
    root: str | os.PathLike | None = None,
    *,
    threads: int | None = None,
    log_every: int = 20,
) -> JobStatus:
    """Start training a new run `<root>/<name>` in the background. Raises JobError."""
    root = Path(root or runs_root()).resolve()
    name = check_name(name)
    try:
        slot = device_slot(cfg.device)
    except ValueError as e:
        raise JobError(str(e)) from None
    with runs_lock(root):
        run_dir = root / name
        if run_dir.exists():
            raise JobError(
                f"a run named {name!r} already exists; pick another name, or resume or delete it"
            )
        _check_capacity(root, slot)
        try:
            run_dir.mkdir(parents=True)
            cmd = train_command(
                model_cfg, cfg, run_dir, threads=threads or default_threads(slot),
                log_every=log_every,
            )  # fmt: skip
            return _launch(run_dir, cmd, slot, "start", cfg.epochs)
        except OSError as e:  # a full disk: the half-made run folder goes, so the name is free
            shutil.rmtree(run_dir, ignore_errors=True)
            raise JobError(
                f"could not start {name} in the runs folder {root}: {write_problem(e, root)}"
            ) from None


def resume(
    name: str,
    root: str | os.PathLike | None = None,
    *,
    epochs: int | None = None,
    lr: float | None = None,
    threads: int | None = None,
    log_every: int = 20,
) -> JobStatus:
    """Continue a stopped (or failed) run from its train_state; `epochs` may extend a run."""
    root = Path(root or runs_root()).resolve()
    run_dir = root / check_name(name)
    with runs_lock(root):
        s = job_status(run_dir)
        if s.active:
            raise JobError(f"{name} is already {s.state}")
        meta = train_state_meta(run_dir)
        if not meta or not s.has_model:
            raise JobError(f"{name} has no training state to resume from")
        try:
            train_cfg = RunRecord.read(run_dir).train
        except RecordError as e:
            raise JobError(f"{name} cannot be resumed: {e}") from None
        if is_confined(run_dir) and train_cfg.data_dir:  # the trainer would read that folder
            raise JobError(
                f"{name} was imported, and its config.json names a data folder (train.data_dir) "
                "it may not read here; explore it, or train a new run on your own data"
            )
        total = int(epochs or train_cfg.epochs)
        if int(meta.get("epoch", 0)) >= total:
            raise JobError(
                f"{name} has already trained {meta.get('epoch')} of {total} epochs; ask for more "
                "epochs to continue it"
            )
        try:
            slot = device_slot(train_cfg.device or "auto")
        except ValueError as e:
            raise JobError(f"{e}; this run was trained on {train_cfg.device}") from None
        _check_capacity(root, slot)
        # the previous job's stop request is answered: left in place, it would show the new
        # job as "stopping" until the trainer starts and clears it
        (run_dir / STOP_FILE).unlink(missing_ok=True)
        cmd = [sys.executable, "-m", "vae.train", "--resume", str(run_dir), "--no-progress"]
        cmd += ["--log-every", str(log_every), *make_maps_args()]
        if epochs:
            cmd += ["--epochs", str(int(epochs))]
        if lr:
            cmd += ["--lr", repr(float(lr))]
        threads = threads or default_threads(slot)
        if threads:
            cmd += ["--threads", str(threads)]
        try:
            return _launch(run_dir, cmd, slot, "resume", total)
        except OSError as e:
            raise JobError(
                f"could not resume {name} in {run_dir}: {write_problem(e, run_dir)}"
            ) from None


def stop(name: str, root: str | os.PathLike | None = None) -> JobStatus:
    """Ask a job to stop: the trainer finishes its step, saves a checkpoint and exits.

    Writes the STOP file and sends SIGTERM; a job still importing simply ends.
    """
    run_dir = Path(root or runs_root()) / check_name(name)
    s = job_status(run_dir)
    if not s.active:
        raise JobError(f"{name} is not running ({s.state})")
    (run_dir / STOP_FILE).touch()
    try:
        os.kill(s.pid, signal.SIGTERM)  # type: ignore[arg-type]
    except (ProcessLookupError, PermissionError, TypeError):
        pass
    return job_status(run_dir)
