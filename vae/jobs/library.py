"""The run library: renaming, deleting and importing runs, and one row per run for the table."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vae.checkpoint import WriteError, clean_stale_temps, write_problem
from vae.errors import ExplorerError
from vae.jobs.launch import runs_lock
from vae.jobs.state import JobError, JobStatus, check_name, job_status, run_dirs, runs_root
from vae.record import RunDir, RunRecord, headline, read_metrics
from vae.runjson import os_reason


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
    """Add a checkpoint zip to the runs folder as `<root>/<name>` (see `vae.archive`). A runs
    folder that cannot be written (read-only, full, a file) is a JobError naming it."""
    from vae.archive import extract_zip

    root = Path(root or runs_root())
    name = check_name(name)
    if (root / name).exists():
        raise JobError(f"a run named {name!r} already exists; pick another name")
    try:
        return extract_zip(data, root / name)
    except WriteError as e:
        raise JobError(
            f"could not import into the runs folder {root}: {write_problem(e, root)}"
        ) from None


@dataclass
class RunInfo:
    """One row of the model library: the job's status and the run's headline facts."""

    status: JobStatus
    dataset: str = "?"
    latent_dim: int = 0
    arch: str = "?"
    epochs: int = 0
    score: str = ""  # "NLL 88.1" (estimated) or "NLL ≤ 95.2" (−test ELBO): lower is better
    score_value: float | None = None  # that NLL figure
    wall_time_s: float | None = None
    device: str = ""
    created: str = ""
    size_bytes: int = 0
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.status.name


def run_info(run_dir: Path) -> RunInfo:
    """The library row of a run folder. Raises RecordError (an ExplorerError) when its
    config.json or metrics.json cannot be read or holds a field of the wrong kind."""
    s = job_status(run_dir)
    info = RunInfo(status=s, epochs=s.epoch, device=s.device)
    if os.path.lexists(RunDir(run_dir).config):  # a job that is starting has none yet
        rec = RunRecord.read(run_dir)
        info.dataset = str(rec.dataset.get("name") or "?")
        info.latent_dim, info.arch, info.created = rec.model.latent_dim, rec.model.arch, rec.created
        info.metrics = rec.metrics
    else:
        info.metrics = read_metrics(run_dir)
    m = info.metrics
    head = headline(m)  # the one rule (vae.record): IWAE NLL when evaluated, else ELBO
    if head:
        info.score = head.nll()
        info.score_value = head.value if head.lower_is_better else -head.value
    info.epochs = m.get("epochs") or info.epochs
    info.wall_time_s = m.get("wall_time_s")
    info.device = m.get("device") or info.device
    info.size_bytes = sum(p.lstat().st_size for p in run_dir.iterdir() if _regular(p))
    return info


def _regular(p: Path) -> bool:
    return p.is_file() and not p.is_symlink()


def list_runs(
    root: str | os.PathLike | None = None, problems: list[str] | None = None
) -> list[RunInfo]:
    """Every run under the runs root, newest first. The temp files of killed saves and imports
    (older than a minute, and an hour) are removed on the way. A run whose files cannot be read
    is left out, and "<folder>: why" appended to `problems`."""
    from vae.archive import clean_stale_imports

    clean_stale_imports(root or runs_root())
    infos = []
    for d in run_dirs(root):
        try:
            clean_stale_temps(d)
            infos.append(run_info(d))
        except ExplorerError as e:
            if problems is not None:
                problems.append(f"{d.name}: {e}")
        except OSError as e:
            if problems is not None and d.exists():  # else deleted while we looked
                problems.append(f"{d.name}: it cannot be read ({os_reason(e)})")
    return sorted(infos, key=lambda r: (r.status.started or 0, r.created), reverse=True)
