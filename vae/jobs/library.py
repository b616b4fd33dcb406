"""The run library: renaming, deleting and importing runs, and one row per run for the table."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vae.checkpoint import CONFIG_FILE, METRICS_JSON, WriteError, clean_stale_temps, write_problem
from vae.jobs.launch import runs_lock
from vae.jobs.state import JobError, JobStatus, _read, check_name, job_status, run_dirs, runs_root
from vae.record import headline


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
        score=head.nll() if head else "",
        score_value=(head.value if head.lower_is_better else -head.value) if head else None,
        wall_time_s=metrics.get("wall_time_s"),
        device=str(metrics.get("device") or s.device or ""),
        created=str(cfg.get("created") or ""),
        size_bytes=size,
        metrics=metrics,
    )


def list_runs(root: str | os.PathLike | None = None) -> list[RunInfo]:
    """Every run under the runs root, newest first. The temp files of killed saves and imports
    (older than a minute, and an hour) are removed on the way."""
    from vae.archive import clean_stale_imports

    clean_stale_imports(root or runs_root())
    infos = []
    for d in run_dirs(root):
        try:
            clean_stale_temps(d)
            infos.append(run_info(d))
        except OSError:
            continue  # deleted while we looked
    return sorted(infos, key=lambda r: (r.status.started or 0, r.created), reverse=True)
