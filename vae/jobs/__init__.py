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

The package: `state` (JobStatus read from files), `proc` (liveness, niceness, reaping),
`launch` (start, resume, stop), `library` (rename, delete, import, the table's rows).
"""

from vae.jobs.launch import (
    REPO_ROOT,
    default_threads,
    resume,
    runs_lock,
    start,
    stop,
    train_command,
)
from vae.jobs.library import RunInfo, delete_run, import_zip, list_runs, rename_run, run_info
from vae.jobs.proc import NICE, lower_priority, pid_alive, proc_start, proc_stat
from vae.jobs.state import (
    ACTIVE,
    EXIT_FILE,
    JOB_FILE,
    LOCK_FILE,
    NAME_RE,
    TERMINAL,
    JobError,
    JobStatus,
    active_jobs,
    check_name,
    device_slot,
    humanize,
    job_status,
    log_tail,
    max_jobs_per_device,
    run_dirs,
    runs_root,
)

__all__ = [
    "ACTIVE", "EXIT_FILE", "JOB_FILE", "LOCK_FILE", "NAME_RE", "NICE", "REPO_ROOT", "TERMINAL",
    "JobError", "JobStatus", "RunInfo", "active_jobs", "check_name", "default_threads",
    "delete_run", "device_slot", "humanize", "import_zip", "job_status", "list_runs", "log_tail",
    "lower_priority", "max_jobs_per_device", "pid_alive", "proc_start", "proc_stat", "rename_run",
    "resume", "run_dirs", "run_info", "runs_lock", "runs_root", "start", "stop", "train_command",
]  # fmt: skip
