"""The job manager with real `python -m vae.train` processes (a tiny MLP on sklearn digits),
and the checkpoint zip import/export."""

from __future__ import annotations

import io
import json
import os
import signal
import stat
import sys
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from vae import archive, jobs
from vae.checkpoint import METRICS_JSONL, CheckpointError, load_run, read_jsonl, train_state_meta
from vae.config import ModelConfig, TrainConfig
from vae.train import STATUS_FILE, STOP_FILE, build_parser, configs_from_args

pytestmark = pytest.mark.timeout(120)

TINY = ModelConfig(image_shape=(1, 8, 8), latent_dim=2, hidden=(16,))
STEPS_PER_EPOCH = 23  # digits train split (1,527 images) at batch size 64


def cfg(epochs: int, **kw) -> TrainConfig:
    base = dict(dataset="digits", epochs=epochs, batch_size=64, lr=3e-3, seed=3, device="cpu")
    return TrainConfig(**{**base, **kw})


def wait_for(pred, timeout: float = 60.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = pred()
        if out:
            return out
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def state_is(run_dir: Path, *states: str):
    def pred():
        s = jobs.job_status(run_dir)
        return s if s.state in states else None

    return pred


@pytest.fixture
def root(tmp_path, monkeypatch):
    """An empty runs folder; every job still alive at the end is killed."""
    monkeypatch.delenv("VAE_MAX_JOBS", raising=False)
    monkeypatch.setenv("VAE_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("VAE_JOB_MAPS", "0")  # the map at the end: test_a_finished_job_makes_its_map
    r = tmp_path / "runs"
    yield r
    for s in jobs.active_jobs(r):
        try:
            os.kill(s.pid, signal.SIGKILL)
        except (ProcessLookupError, TypeError):
            pass


def start(root: Path, name: str, epochs: int, **kw) -> jobs.JobStatus:
    return jobs.start(name, TINY, cfg(epochs, **kw), root, threads=1, log_every=1)


# --- real processes -------------------------------------------------------------------------------
def test_start_watch_finish_and_load(root):
    s = start(root, "short", epochs=3)
    assert s.state in ("starting", "running") and s.pid and s.device == "cpu"
    assert (root / "short" / jobs.JOB_FILE).is_file()
    done = wait_for(state_is(root / "short", "finished", "failed"), what="the run to finish")
    assert done.state == "finished", done.message
    assert done.step == done.total_steps == 3 * STEPS_PER_EPOCH and done.progress == 1.0
    run = load_run(root / "short")
    assert run.config.latent_dim == 2 and run.meta["train"]["seed"] == 3
    assert [r["epoch"] for r in read_jsonl(root / "short" / METRICS_JSONL)] == [1, 2, 3]
    (info,) = jobs.list_runs(root)
    assert info.name == "short" and info.dataset == "digits" and info.epochs == 3
    saved = json.loads((root / "short" / "metrics.json").read_text())
    assert info.score == f"NLL ≤ {-saved['test_elbo']:.1f}"  # −ELBO bounds the NLL from above
    assert info.score_value == -saved["test_elbo"]
    assert info.device == "cpu" and info.wall_time_s > 0
    assert "epoch 3/3" in jobs.log_tail(root / "short")
    wait_for(lambda: jobs.job_status(root / "short").returncode == 0, 60, "the exit code")


def test_a_finished_job_makes_its_map_and_explore_uses_it(root, monkeypatch, tmp_path):
    from vae import mapping
    from vae.projection import tsne as tsne_mod

    monkeypatch.setenv("VAE_JOB_MAPS", "1")
    monkeypatch.setenv("VAE_CACHE_DIR", str(tmp_path / "user"))
    start(root, "mapped", epochs=1)
    seen = set()

    def ended():
        s = jobs.job_status(root / "mapped")
        seen.add(s.state)
        return s.state in ("finished", "failed") and s.returncode is not None and s

    done = wait_for(ended, 180, "the run and its map")
    assert done.state == "finished" and done.returncode == 0, done.message
    assert "maps ready: tsne" in jobs.log_tail(root / "mapped")
    # the map is in the cache the app reads, under the app's key: no fit needed anywhere
    run = load_run(root / "mapped")
    assert mapping.cached_projection(run, mapping.latent_table(run), "tsne") is not None

    def no_fit(*a, **k):
        raise AssertionError("Explore must use the job's map")

    monkeypatch.setattr(tsne_mod.TSNEProjection, "fit", classmethod(no_fit))
    from tests.helpers import app_test, ok

    dirs = {"assets": tmp_path / "none", "runs": root, "cache": tmp_path / "user"}
    at = app_test(dirs, monkeypatch, {"model": "run:mapped", "proj": "tsne"})
    ok(at)
    assert any(c.key == "latent_map" for c in at.get("plotly_chart"))
    assert not any(c.key == "forming_map" for c in at.get("plotly_chart"))


def test_a_job_making_its_map_says_so(tmp_path):
    run_dir = tmp_path / "r"
    run_dir.mkdir()
    status = {"state": "mapping", "epoch": 2, "epochs": 2, "step": 46, "total_steps": 46,
              "pid": os.getpid(), "final": {"state": "finished", "message": ""}}  # fmt: skip
    (run_dir / STATUS_FILE).write_text(json.dumps(status))
    me = {"pid": os.getpid(), "epochs": 2, "proc_start": jobs.proc_start(os.getpid())}
    (run_dir / jobs.JOB_FILE).write_text(json.dumps(me))
    s = jobs.job_status(run_dir)
    assert s.state == "mapping" and s.active
    from vae.ui.training.live import STATE_BADGE, progress_text

    assert STATE_BADGE["mapping"][0] == "making the map"  # the Train page's badge
    assert progress_text(s) == "Trained · Epoch 2 of 2 · step 46 of 46 · making the map for Explore"
    status["pid"] = 2**22 + 12345  # the process is gone (killed while mapping): the run ended
    (run_dir / STATUS_FILE).write_text(json.dumps(status))
    (run_dir / jobs.JOB_FILE).write_text(json.dumps({"pid": status["pid"], "epochs": 2}))
    assert jobs.job_status(run_dir).state == "finished"


def test_stop_gives_a_valid_checkpoint_and_resume_reaches_the_end(root):
    run_dir = root / "long"
    start(root, "long", epochs=5000)
    first = wait_for(lambda: (s := jobs.job_status(run_dir)).state == "running" and s.step > 0
                     and s, what="progress")  # fmt: skip
    later = wait_for(lambda: (s := jobs.job_status(run_dir)).step > first.step and s, 30, "more")
    if Path(f"/proc/{first.pid}").is_dir():  # CPU jobs yield to the app once they train
        wait_for(lambda: os.getpriority(os.PRIO_PROCESS, first.pid) == jobs.NICE, 10, "nice")
    assert later.total_steps == 5000 * STEPS_PER_EPOCH and 0 < later.progress < 1
    # one job per device: a second start is refused while the first runs, and nothing is made
    with pytest.raises(jobs.JobError, match="cpu is busy with long"):
        start(root, "second", epochs=1)
    assert not (root / "second").exists()
    with pytest.raises(jobs.JobError, match="stop it before"):
        jobs.rename_run("long", "other", root)
    with pytest.raises(jobs.JobError, match="stop it before"):
        jobs.delete_run("long", root)
    with pytest.raises(jobs.JobError, match="already running"):
        jobs.resume("long", root)

    jobs.stop("long", root)
    stopped = wait_for(state_is(run_dir, "stopped", "failed", "finished"), what="the stop")
    assert stopped.state == "stopped", stopped.message
    assert stopped.can_resume and "checkpoint is kept" in stopped.message
    load_run(run_dir)  # the checkpoint written at the stop is valid
    state = train_state_meta(run_dir)  # the step, epoch, ... in train_state.safetensors
    assert state["step"] == stopped.step

    target = state["epoch"] + 2
    (run_dir / "STOP").touch()  # as a stop that landed after the trainer's last look leaves it
    resumed = jobs.resume("long", root, epochs=target, threads=1)
    assert resumed.state == "starting" and not (run_dir / "STOP").exists()  # not "stopping"
    done = wait_for(state_is(run_dir, "finished", "failed"), what="the resumed run")
    assert done.state == "finished", done.message
    assert done.step == target * STEPS_PER_EPOCH
    epochs = [r["epoch"] for r in read_jsonl(run_dir / METRICS_JSONL)]
    assert epochs == list(range(1, target + 1))  # every epoch exactly once across the stop
    load_run(run_dir)
    with pytest.raises(jobs.JobError, match="ask for more"):
        jobs.resume("long", root)  # already trained all its epochs


def test_a_killed_process_is_reported_as_failed(root):
    run_dir = root / "victim"
    start(root, "victim", epochs=5000)
    s = wait_for(lambda: (s := jobs.job_status(run_dir)).state == "running" and s.step > 0
                 and s, what="progress")  # fmt: skip
    os.kill(s.pid, signal.SIGKILL)
    failed = wait_for(state_is(run_dir, "failed"), 20, "the failure to show")
    assert "ended unexpectedly" in failed.message
    wait_for(lambda: "SIGKILL" in jobs.job_status(run_dir).message, 10, "the exit reason")
    assert json.loads((run_dir / STATUS_FILE).read_text())["state"] == "running"  # never updated
    assert failed.can_resume
    load_run(run_dir)  # the last good checkpoint is still there
    assert jobs.active_jobs(root) == []  # the device is free again
    jobs.delete_run("victim", root)
    assert not run_dir.exists() and not list(root.glob(".deleted-*"))


def test_missing_data_fails_in_plain_words(root, tmp_path):
    start(root, "nodata", epochs=1, dataset="npz", data_dir=str(tmp_path / "gone.npz"))
    failed = wait_for(state_is(root / "nodata", "failed", "finished"), what="the failure")
    assert failed.state == "failed"
    assert "gone.npz" in failed.message and "Traceback" not in failed.message, failed.message
    assert not failed.can_resume


def test_two_sessions_cannot_both_pass_the_limit(root):
    def go(name: str) -> str:
        try:
            start(root, name, epochs=5000)
            return "started"
        except jobs.JobError as e:
            return str(e)

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(go, ["a", "b"]))
    assert results.count("started") == 1, results
    assert any("busy" in r for r in results)
    (s,) = jobs.active_jobs(root)
    jobs.stop(s.name, root)  # may still be importing torch: then it simply ends
    end = wait_for(state_is(root / s.name, "stopped", "failed", "finished"), what="the stop")
    assert end.state == "stopped", end.message


def test_name_and_device_are_checked_before_anything_starts(root):
    for bad in ("", "../up", "/abs", ".hidden", "a b", "x" * 65, "ä"):
        with pytest.raises(jobs.JobError):
            start(root, bad, epochs=1)
    with pytest.raises(jobs.JobError, match="CUDA"):
        start(root, "gpu", epochs=1, device="cuda:3")
    (root / "taken").mkdir(parents=True)
    with pytest.raises(jobs.JobError, match="already exists"):
        start(root, "taken", epochs=1)
    assert sorted(p.name for p in jobs.run_dirs(root)) == ["taken"]


# --- files only (no processes) --------------------------------------------------------------------
def test_train_command_rebuilds_the_same_configs(tmp_path):
    m = ModelConfig(image_shape=(1, 8, 8), latent_dim=5, arch="conv", hidden=(8, 16), dense=32,
                    likelihood="gaussian", sigma_mode="learned", sigma=0.3)  # fmt: skip
    c = cfg(7, lr=2.5e-4, beta=4.0, warmup_steps=30, free_bits=0.25, binarize=False, seed=11)
    (tmp_path / "r").mkdir()
    cmd = jobs.train_command(m, c, tmp_path / "r", threads=1, log_every=3)
    request = tmp_path / "r" / "job_config.json"
    assert cmd[:5] == [sys.executable, "-m", "vae.train", "--config-json", str(request)]
    args = build_parser().parse_args(cmd[3:])
    m2, c2, out, resume = configs_from_args(args, cmd[3:])
    assert m2 == m and c2 == c and out == tmp_path / "r" and not resume
    assert args.threads == 1 and args.log_every == 3 and args.no_progress


def fake_run(run_dir: Path, status: dict, job: dict | None = None) -> Path:
    run_dir.mkdir(parents=True)
    (run_dir / STATUS_FILE).write_text(json.dumps(status))
    if job is not None:
        (run_dir / jobs.JOB_FILE).write_text(json.dumps(job))
    return run_dir


def dead_pid() -> int:
    import subprocess

    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_status_says_running_but_the_process_is_gone(tmp_path):
    pid = dead_pid()
    base = {"epoch": 1, "epochs": 5, "step": 40, "total_steps": 100, "pid": pid, "updated": 1.0}
    s = jobs.job_status(fake_run(tmp_path / "a", {**base, "state": "running"}))
    assert s.state == "failed" and "ended unexpectedly" in s.message and not s.active
    # the pid belongs to a live process that is not our trainer (this test): still dead to us
    mine = os.getpid()
    s = jobs.job_status(fake_run(tmp_path / "b", {**base, "pid": mine, "state": "running"}))
    assert s.state == "failed"
    job = {"pid": mine, "proc_start": "1", "device": "cpu", "started": 1.0}
    s = jobs.job_status(fake_run(tmp_path / "c", {**base, "pid": mine, "state": "running"}, job))
    assert s.state == "failed"  # pid reused: the start time differs


def test_failure_messages_are_plain(tmp_path):
    pid = dead_pid()
    oom = "OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"
    s = jobs.job_status(fake_run(tmp_path / "oom", {"state": "failed", "pid": pid, "message": oom}))
    assert s.state == "failed" and s.message.startswith("The device ran out of memory")
    nan = "the loss became nan at step 7 (epoch 1). Training stopped"
    s = jobs.job_status(fake_run(tmp_path / "nan", {"state": "failed", "pid": pid, "message": nan}))
    assert s.message.startswith("Training diverged: the loss became nan")


def test_stop_refuses_a_run_that_is_not_running(tmp_path):
    fake_run(tmp_path / "done", {"state": "finished", "pid": dead_pid()})
    with pytest.raises(jobs.JobError, match="not running"):
        jobs.stop("done", tmp_path)
    assert not (tmp_path / "done" / STOP_FILE).exists()


# --- zips -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    from vae.train import train

    out = tmp_path_factory.mktemp("zips") / "src-run"
    train(TINY, cfg(1), out, progress_bar=False)
    return out


def make_zip(files: dict[str, bytes], symlink: str | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, "/etc/passwd")
    return buf.getvalue()


def good_files(run: Path, prefix: str = "") -> dict[str, bytes]:
    return {prefix + f: (run / f).read_bytes() for f in ("config.json", "model.safetensors")}


def test_export_then_import_round_trip(trained, tmp_path):
    blob = archive.export_zip(trained)
    names = sorted(zipfile.ZipFile(io.BytesIO(blob)).namelist())
    members = ("config.json", "metrics.json", "metrics.jsonl", "model.safetensors")
    assert names == [f"src-run/{f}" for f in members]
    assert archive.check_zip(blob).folder == "src-run"
    path = jobs.import_zip(blob, "copy", tmp_path / "runs")
    a, b = load_run(trained), load_run(path)
    for k, v in a.model.state_dict().items():
        assert (b.model.state_dict()[k] == v).all()
    assert (path / METRICS_JSONL).read_bytes() == (trained / METRICS_JSONL).read_bytes()
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["copy"]  # no temp left
    assert jobs.job_status(path).state == "ready"
    with pytest.raises(jobs.JobError, match="already exists"):
        jobs.import_zip(blob, "copy", tmp_path / "runs")


@pytest.mark.parametrize(
    "extra, symlink, match",
    [
        ({"../x/config.json": b"{}"}, None, "unsafe path"),
        ({"/abs/config.json": b"{}"}, None, "unsafe path"),
        ({"C:/config.json": b"{}"}, None, "unsafe path"),
        ({}, "link.json", "symlink"),
        ({"model.pt": b"\x80\x02}q."}, None, "pickle"),
        ({"notes.txt": b"hi"}, None, "only JSON and safetensors"),
        ({"a/b/config.json": b"{}"}, None, "nested too deep"),
        ({"x/metrics.json": b"{}"}, None, "several folders"),
    ],
)
def test_import_refuses_unsafe_zips(trained, tmp_path, extra, symlink, match):
    blob = make_zip({**good_files(trained), **extra}, symlink)
    with pytest.raises(CheckpointError, match=match):
        jobs.import_zip(blob, "bad", tmp_path / "runs")
    assert not (tmp_path / "runs" / "bad").exists()


def test_import_refuses_oversize_and_invalid_checkpoints(trained, tmp_path):
    blob = make_zip(good_files(trained))
    with pytest.raises(CheckpointError, match="the zip is"):
        archive.extract_zip(blob, tmp_path / "a", max_zip_bytes=len(blob) - 1)
    with pytest.raises(CheckpointError, match="unpacks to"):
        archive.extract_zip(blob, tmp_path / "b", max_unzipped_bytes=1000)
    bad_cfg = json.loads((trained / "config.json").read_text())
    bad_cfg["model"]["latent_dim"] = 7  # does not match the weights
    broken = make_zip({**good_files(trained), "config.json": json.dumps(bad_cfg).encode()})
    with pytest.raises(CheckpointError, match=r"cannot be used: model.safetensors: .* needs") as e:
        archive.extract_zip(broken, tmp_path / "c")
    assert ".import" not in str(e.value)
    with pytest.raises(CheckpointError, match="not a zip"):
        archive.extract_zip(b"PK\x03\x04 nope", tmp_path / "d")
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing half-made was left
