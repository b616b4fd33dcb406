"""Processes: is a job alive (one /proc parser), niceness, and reaping a finished child."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from vae.checkpoint import atomic_write_json
from vae.record import RunDir

NICE = 10  # CPU jobs yield to the app server, so the app stays responsive while they train


def proc_stat(pid: int) -> list[str] | None:
    """Linux: the fields of /proc/<pid>/stat after the command name, so index 0 is the state
    (field 3) and index 19 the start time in clock ticks (field 22); None without procfs."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()


def proc_start(pid: int) -> str | None:
    """The process start time (clock ticks since boot), which tells a reused pid apart."""
    fields = proc_stat(pid)
    return fields[19] if fields else None


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
    fields = proc_stat(pid)
    try:
        cmdline = (proc / "cmdline").read_bytes()
    except OSError:
        return False
    if fields is None:
        return False
    if fields[0] in ("Z", "X"):
        return False  # a zombie: it has ended
    if start is not None:
        return fields[19] == start
    return b"vae.train" in cmdline


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


def wait_and_record(proc: subprocess.Popen, run_dir: Path) -> None:
    """Reap the child when it ends (no zombie) and note its exit code for `job_status`."""
    code = proc.wait()
    if not run_dir.is_dir():
        return  # renamed or deleted meanwhile (only possible once the job had ended)
    try:
        atomic_write_json(
            RunDir(run_dir).exit, {"pid": proc.pid, "returncode": code, "ended": time.time()}
        )
    except OSError:
        pass  # the run folder was deleted or renamed meanwhile
