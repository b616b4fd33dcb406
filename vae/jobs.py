"""Training jobs for the app: `python -m vae.train` in a background process, watched through files.

    job = start("digits-2d", model_cfg, train_cfg)   # JobError when the name or device is taken
    s = job_status(runs_root() / "digits-2d")        # state, epoch, step, ETA, message, log tail
    stop("digits-2d"); resume("digits-2d"); rename_run("digits-2d", "d2"); delete_run("d2")

A job is a run folder under the runs root (`$VAE_RUNS_DIR`, default ./runs) and a process in its
own session, so it outlives the page, the browser and even the app server. Everything the app
shows is read back from files: the trainer's (status.json, steps.jsonl, metrics.jsonl,
metrics.json, config.json, model.safetensors, train_state.*), `job.json` (pid, process start
time, device, command; written here), `exit.json` (the exit code, when this process saw it end)
and `log.txt` (stdout and stderr). A process that ended without writing a final state (killed
with SIGKILL, out of memory, machine restarted) is reported as failed.

Concurrency: at most `$VAE_MAX_JOBS` (default 1) jobs per device (cpu, each cuda:i, mps). The
check and the launch happen under an exclusive lock on `<runs>/.jobs.lock`, so two app sessions
cannot both pass the limit or take the same name. POSIX only (fcntl, sessions, signals).
"""

from __future__ import annotations

import fcntl
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vae.checkpoint import (
    CONFIG_FILE,
    METRICS_JSON,
    STATE_META_FILE,
    WEIGHTS_FILE,
    CheckpointError,
    atomic_write_json,
    read_json,
)
from vae.config import ModelConfig, TrainConfig
from vae.errors import ExplorerError
from vae.record import headline
from vae.train import LOG_FILE, STATUS_FILE, STOP_FILE

JOB_FILE = "job.json"
EXIT_FILE = "exit.json"
LOCK_FILE = ".jobs.lock"
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
ACTIVE = ("starting", "running", "stopping")
TERMINAL = ("finished", "stopped", "failed")
NICE = 10  # CPU jobs yield to the app server, so the app stays responsive while they train
REPO_ROOT = Path(__file__).resolve().parents[1]


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


# --- state, read from files ----------------------------------------------------------------------
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


def _proc_start(pid: int) -> str | None:
    """Linux: the process start time in clock ticks (field 22 of /proc/<pid>/stat), else None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()[19]


def pid_alive(pid: int | None, start: str | None = None) -> bool:
    """Is `pid` a live (not zombie) process, and the same one that was started (`start`)?

    Without a recorded start time, a Linux process must at least be running `vae.train`.
    """
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # another user's process: not one of ours
    proc = Path(f"/proc/{pid}")
    if not proc.is_dir():
        return True  # no procfs (macOS): signal 0 is all we can check
    try:
        stat = (proc / "stat").read_text()
        cmdline = (proc / "cmdline").read_bytes()
    except OSError:
        return False
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):
        return False  # a zombie: it has ended
    if start is not None:
        return fields[19] == start
    return b"vae.train" in cmdline


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
        device=str(job.get("device") or (_read(run_dir / CONFIG_FILE).get("train") or {})
                   .get("device", "")),
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
    if alive:
        if said in TERMINAL:
            s.state = said  # written its last word, exiting now
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
        and (run_dir / STATE_META_FILE).is_file()
        and has_model
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


# --- starting -----------------------------------------------------------------------------------
@contextmanager
def runs_lock(root: Path) -> Iterator[None]:
    """Exclusive lock on `<root>/.jobs.lock` for check-then-launch decisions across sessions."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / LOCK_FILE, "a") as f:
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
    """CPU jobs leave one core to the app; GPU jobs keep torch's default."""
    return max(1, (os.cpu_count() or 1) - 1) if slot == "cpu" else None


def train_command(
    model_cfg: ModelConfig,
    cfg: TrainConfig,
    out: Path,
    *,
    threads: int | None = None,
    log_every: int = 20,
) -> list[str]:
    """The `python -m vae.train` argument list that rebuilds exactly these configs."""
    m = model_cfg
    cmd = [sys.executable, "-m", "vae.train", "--dataset", cfg.dataset]
    if cfg.data_dir:
        cmd += ["--data-dir", str(cfg.data_dir)]
    if cfg.image_size:
        cmd += ["--image-size", str(cfg.image_size)]
    cmd += [
        "--arch", m.arch, "--latent-dim", str(m.latent_dim),
        "--hidden", *map(str, m.hidden), "--dense", str(m.dense),
        "--likelihood", m.likelihood, "--sigma-mode", m.sigma_mode, "--sigma", repr(m.sigma),
        "--beta", repr(float(cfg.beta)), "--warmup-steps", str(cfg.warmup_steps),
        "--free-bits", repr(float(cfg.free_bits)),
        "--binarize", {None: "auto", True: "yes", False: "no"}[cfg.binarize],
        "--epochs", str(cfg.epochs), "--batch-size", str(cfg.batch_size),
        "--lr", repr(float(cfg.lr)), "--weight-decay", repr(float(cfg.weight_decay)),
        "--grad-clip", repr(float(cfg.grad_clip)), "--device", cfg.device,
        "--seed", str(cfg.seed),
    ]  # fmt: skip
    if cfg.compile:
        cmd.append("--compile")
    if not cfg.amp:
        cmd.append("--no-amp")
    if threads:
        cmd += ["--threads", str(threads)]
    return cmd + ["--no-progress", "--log-every", str(log_every), "--out", str(out)]


def _wait_and_record(proc: subprocess.Popen, run_dir: Path) -> None:
    """Reap the child when it ends (no zombie) and note its exit code for `job_status`."""
    code = proc.wait()
    if not run_dir.is_dir():
        return  # renamed or deleted meanwhile (only possible once the job had ended)
    try:
        atomic_write_json(
            run_dir / EXIT_FILE, {"pid": proc.pid, "returncode": code, "ended": time.time()}
        )
    except OSError:
        pass  # the run folder was deleted or renamed meanwhile


def lower_priority(pid: int, nice: int = NICE) -> None:
    """Nice a job: every thread of it (Linux nice is per thread) and, since its own session is
    its own scheduler autogroup on Linux, where nice only counts inside the group, the group."""
    tasks = Path(f"/proc/{pid}/task")
    tids = [int(t.name) for t in tasks.iterdir()] if tasks.is_dir() else [pid]
    for tid in tids:
        try:
            os.setpriority(os.PRIO_PROCESS, tid, nice)
        except OSError:
            pass
    try:
        Path(f"/proc/{pid}/autogroup").write_text(str(nice))
    except OSError:
        pass  # no autogroups here (macOS, or a kernel without them)


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
            "proc_start": _proc_start(proc.pid),
            "device": slot,
            "kind": kind,
            "epochs": epochs,
            "started": time.time(),
            "command": shlex.join(cmd),
        },
    )
    threading.Thread(target=_wait_and_record, args=(proc, run_dir), daemon=True).start()
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
        run_dir.mkdir(parents=True)
        cmd = train_command(
            model_cfg, cfg, run_dir, threads=threads or default_threads(slot), log_every=log_every
        )
        return _launch(run_dir, cmd, slot, "start", cfg.epochs)


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
        meta = _read(run_dir / STATE_META_FILE)
        if not meta or not s.has_model:
            raise JobError(f"{name} has no training state to resume from")
        train_cfg = _read(run_dir / CONFIG_FILE).get("train") or {}
        total = int(epochs or train_cfg.get("epochs", 0))
        if int(meta.get("epoch", 0)) >= total:
            raise JobError(
                f"{name} has already trained {meta.get('epoch')} of {total} epochs; ask for more "
                "epochs to continue it"
            )
        try:
            slot = device_slot(str(train_cfg.get("device") or "auto"))
        except ValueError as e:
            raise JobError(f"{e}; this run was trained on {train_cfg.get('device')}") from None
        _check_capacity(root, slot)
        cmd = [sys.executable, "-m", "vae.train", "--resume", str(run_dir), "--no-progress"]
        cmd += ["--log-every", str(log_every)]
        if epochs:
            cmd += ["--epochs", str(int(epochs))]
        if lr:
            cmd += ["--lr", repr(float(lr))]
        threads = threads or default_threads(slot)
        if threads:
            cmd += ["--threads", str(threads)]
        return _launch(run_dir, cmd, slot, "resume", total)


# --- stopping, renaming, deleting ----------------------------------------------------------------
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


def rename_run(old: str, new: str, root: str | os.PathLike | None = None) -> Path:
    """Rename a run folder (refused while its job runs, or when `new` is taken)."""
    root = Path(root or runs_root())
    old, new = check_name(old), check_name(new)
    src, dst = root / old, root / new
    with runs_lock(root):
        if not src.is_dir():
            raise JobError(f"there is no run named {old!r}")
        if job_status(src).active:
            raise JobError(f"{old} is training; stop it before renaming it")
        if dst.exists():
            raise JobError(f"a run named {new!r} already exists")
        os.rename(src, dst)
    return dst


def delete_run(name: str, root: str | os.PathLike | None = None) -> None:
    """Delete a run folder (refused while its job runs). Moved aside first, then removed."""
    root = Path(root or runs_root())
    run_dir = root / check_name(name)
    with runs_lock(root):
        if not run_dir.is_dir():
            raise JobError(f"there is no run named {name!r}")
        if job_status(run_dir).active:
            raise JobError(f"{name} is training; stop it before deleting it")
        trash = Path(tempfile.mkdtemp(dir=root, prefix=".deleted-"))
        os.rename(run_dir, trash / name)
    shutil.rmtree(trash, ignore_errors=True)


def import_zip(data: bytes, name: str, root: str | os.PathLike | None = None) -> Path:
    """Add a checkpoint zip to the runs folder as `<root>/<name>` (see `vae.archive`)."""
    from vae.archive import extract_zip

    root = Path(root or runs_root())
    name = check_name(name)
    if (root / name).exists():
        raise JobError(f"a run named {name!r} already exists; pick another name")
    return extract_zip(data, root / name)


# --- the model library ---------------------------------------------------------------------------
@dataclass
class RunInfo:
    """One row of the model library: the job's status and the run's headline facts."""

    status: JobStatus
    dataset: str = "?"
    latent_dim: int = 0
    arch: str = "?"
    epochs: int = 0
    score: str = ""  # "NLL 88.1" or "test ELBO -95.2"
    score_value: float | None = None
    wall_time_s: float | None = None
    device: str = ""
    created: str = ""
    size_bytes: int = 0
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.status.name


def run_info(run_dir: Path) -> RunInfo:
    s = job_status(run_dir)
    cfg = _read(run_dir / CONFIG_FILE)
    metrics = _read(run_dir / METRICS_JSON)
    head = headline(metrics)  # the one rule (vae.record): IWAE NLL when evaluated, else ELBO
    size = sum(p.stat().st_size for p in run_dir.iterdir() if p.is_file())
    return RunInfo(
        status=s,
        dataset=str((cfg.get("dataset") or {}).get("name") or "?"),
        latent_dim=int((cfg.get("model") or {}).get("latent_dim") or 0),
        arch=str((cfg.get("model") or {}).get("arch") or "?"),
        epochs=int(metrics.get("epochs") or s.epoch or 0),
        score=head.short() if head else "",
        score_value=head.value if head else None,
        wall_time_s=metrics.get("wall_time_s"),
        device=str(metrics.get("device") or s.device or ""),
        created=str(cfg.get("created") or ""),
        size_bytes=size,
        metrics=metrics,
    )


def list_runs(root: str | os.PathLike | None = None) -> list[RunInfo]:
    """Every run under the runs root, newest first."""
    infos = []
    for d in run_dirs(root):
        try:
            infos.append(run_info(d))
        except OSError:
            continue  # deleted while we looked
    return sorted(infos, key=lambda r: (r.status.started or 0, r.created), reverse=True)
