"""A save killed at any point leaves a state to resume from, and resuming from it ends exactly
where an uninterrupted run ends: the same weights, the same curves, no step logged twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save

import vae.checkpoint as ck
from tests.faults.conftest import PY, ROOT, STEPS_PER_EPOCH, TINY, cfg, cli_flags, tmp_files
from vae import jobs, load_run
from vae.checkpoint import check_train_state, read_jsonl, train_state_meta, weights_hash
from vae.record import RunDir
from vae.train import STOP_FILE, train

pytestmark = pytest.mark.timeout(300)
THREADS = str(torch.get_num_threads())  # a subprocess trains with this process's threads


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    """The run every interrupted one must end up equal to: 3 epochs in one go."""
    run = tmp_path_factory.mktemp("full") / "run"
    train(TINY, cfg(), run, progress_bar=False, log_every=5)
    return run


def logs(path: Path) -> list[dict]:
    """A log's records without their wall-clock fields."""
    return [{k: v for k, v in r.items() if k not in ("time", "time_s")} for r in read_jsonl(path)]


def assert_same_run(a: Path, b: Path) -> None:
    """Bit-identical weights and training state, and the same epoch and step logs."""
    wa, wb = load_file(RunDir(a).weights), load_file(RunDir(b).weights)
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    sa, sb = load_file(RunDir(a).state), load_file(RunDir(b).state)
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    ea, eb = (logs(RunDir(r).epochs_log) for r in (a, b))
    assert ea == eb
    sa_, sb_ = (logs(RunDir(r).steps_log) for r in (a, b))
    assert [r["step"] for r in sb_] == sorted({r["step"] for r in sb_}), "a step logged twice"
    assert sa_ == sb_


def test_the_state_is_one_file_naming_the_weights_it_was_saved_with(uninterrupted):
    rd = RunDir(uninterrupted)
    assert rd.state.is_file() and not rd.state_meta.exists()  # no second file to tear
    meta = train_state_meta(uninterrupted)
    assert meta["step"] == 3 * STEPS_PER_EPOCH and meta["epoch"] == 3
    assert meta["weights_sha256"] == weights_hash(uninterrupted)
    # the model.* tensors of the state are the weights of model.safetensors
    state, weights = load_file(rd.state), load_file(rd.weights)
    assert all(torch.equal(state[f"model.{k}"], v) for k, v in weights.items())


@pytest.mark.parametrize("dies", ["model.safetensors", "config.json", "train_state.safetensors"])
def test_a_save_that_dies_resumes_exactly(uninterrupted, tmp_path, monkeypatch, capsys, dies):
    """The third checkpoint (the end of epoch 2) dies while writing `dies`: the run goes on from
    the end of epoch 1, the last whole state, and ends as if nothing had happened."""
    run = tmp_path / "run"
    calls = {"n": 0}
    real_write = ck.atomic_write_bytes

    def dying_write(path, data):
        if Path(path).name == dies:
            calls["n"] += 1
            if calls["n"] == 3:
                raise KeyboardInterrupt  # killed before the replace: the old file stays
        real_write(path, data)

    monkeypatch.setattr(ck, "atomic_write_bytes", dying_write)
    with pytest.raises(KeyboardInterrupt):
        train(TINY, cfg(), run, progress_bar=False, log_every=5)
    monkeypatch.undo()
    meta = train_state_meta(run)
    assert (meta["step"], meta["epoch"]) == (STEPS_PER_EPOCH, 1)  # the last whole state
    check_train_state(run)
    load_run(run)  # the model stays loadable
    epochs = [r["epoch"] for r in read_jsonl(RunDir(run).epochs_log)]
    assert epochs == [1, 2]  # epoch 2 was logged before its checkpoint died
    ahead = weights_hash(run) != meta["weights_sha256"]
    assert ahead == (dies != "model.safetensors")  # else model.safetensors is epoch 2's
    capsys.readouterr()
    train(TINY, cfg(), run, resume=True, progress_bar=False, log_every=5)
    out = capsys.readouterr().out
    assert f"resuming from step {STEPS_PER_EPOCH} (epoch 2, batch 0 of {STEPS_PER_EPOCH})" in out
    assert ("rewritten" in out) == ahead
    assert_same_run(uninterrupted, run)


def test_a_process_killed_mid_save_resumes_exactly(uninterrupted, tmp_path):
    """SIGKILL from outside while a slow writer is half-way through the state's temp file."""
    run, marker = tmp_path / "run", tmp_path / "writing"
    code = f"""
import sys, time, vae.checkpoint as ck
from pathlib import Path
from vae.train.cli import main
real, n = ck.atomic_write_bytes, [0]
def slow(path, data):
    if Path(path).name == ck.STATE_FILE:
        n[0] += 1
        if n[0] == 3:  # the end of epoch 2: half the bytes, then wait to be killed
            import tempfile
            fd, tmp = tempfile.mkstemp(dir=Path(path).parent, prefix="." + ck.STATE_FILE + ".",
                                       suffix=".tmp")
            ck._lock(fd)
            os = __import__("os"); os.write(fd, data[: len(data) // 2])
            Path({str(marker)!r}).touch()
            time.sleep(120)
    real(path, data)
ck.atomic_write_bytes = slow
sys.exit(main({cli_flags(run) + ["--log-every", "5", "--threads", THREADS]!r}))
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([PY, "-c", code], cwd=ROOT, env=env, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 200
    while not marker.exists():
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "the trainer never reached the third save"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    proc.stderr.close()
    (left,) = tmp_files(run)  # the killed writer's temp file: fresh, so kept for now
    assert train_state_meta(run)["step"] == STEPS_PER_EPOCH
    subprocess.run([PY, "-m", "vae.train", "--resume", str(run), "--no-progress", "--log-every",
                    "5", "--preview-every-s", "0", "--threads", THREADS], cwd=ROOT, env=env,
                   check=True, capture_output=True)  # fmt: skip
    assert_same_run(uninterrupted, run)


def old_layout(run: Path) -> None:
    """Rewrite a run's state as runs were saved before: tensors, and the JSON beside them
    naming their sha256."""
    rd, meta = RunDir(run), train_state_meta(run)
    blob = save(load_file(rd.state))  # no metadata in the header
    meta.pop("weights_sha256")
    meta["sha256"] = __import__("hashlib").sha256(blob).hexdigest()
    rd.state.write_bytes(blob)
    rd.state_meta.write_text(json.dumps(meta))


def test_a_run_saved_with_the_old_two_file_state_resumes_exactly(uninterrupted, tmp_path):
    run = tmp_path / "run"

    def stop_at_30(info):
        if info.step == 30:
            (run / STOP_FILE).touch()

    train(TINY, cfg(), run, progress_bar=False, log_every=5, on_step=stop_at_30)
    old_layout(run)
    check_train_state(run)
    assert train_state_meta(run)["step"] == 30
    assert jobs.job_status(run).can_resume
    train(TINY, cfg(), run, resume=True, progress_bar=False, log_every=5)
    assert_same_run(uninterrupted, run)
    assert not RunDir(run).state_meta.exists()  # its next save wrote the one-file state


def test_an_old_torn_pair_is_refused_and_says_so(tmp_path):
    run = tmp_path / "run"
    train(TINY, cfg(epochs=1), run, progress_bar=False)
    old_layout(run)
    meta = json.loads(RunDir(run).state_meta.read_text())
    meta["sha256"] = "0" * 64  # the JSON of another save than the tensors
    RunDir(run).state_meta.write_text(json.dumps(meta))
    with pytest.raises(ck.CheckpointError, match="torn save"):
        train(TINY, cfg(epochs=2), run, resume=True, progress_bar=False)
