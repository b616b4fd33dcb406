"""The live view's preview: when the trainer writes preview.safetensors, what it holds, that it
changes nothing about training, and that the Train page draws the newer of it and the checkpoint."""

import io
import os
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from vae import ModelConfig, TrainConfig, load_run
from vae.archive import export_zip
from vae.checkpoint import PREVIEW_FILE, WEIGHTS_FILE, CheckpointError, read_jsonl, save_preview
from vae.model import VAE
from vae.record import RunDir
from vae.train import TrainingError, train
from vae.train.preview import PreviewSchedule
from vae.ui.training.preview import weights_stamp

TINY = ModelConfig(image_shape=(1, 8, 8), arch="mlp", hidden=(32,), latent_dim=4)


def cfg(**kw) -> TrainConfig:
    base = {"dataset": "digits", "epochs": 1, "batch_size": 64, "lr": 3e-3, "seed": 1}
    return TrainConfig(**{**base, **kw})


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# --- the schedule -----------------------------------------------------------------------------
class Clock:
    """A fake perf_counter that counts its reads."""

    def __init__(self) -> None:
        self.t, self.reads = 0.0, 0

    def __call__(self) -> float:
        self.reads += 1
        return self.t


def test_n_is_chosen_from_the_step_time_and_follows_it():
    clock = Clock()
    sched = PreviewSchedule(5.0, step=0, clock=clock)
    due, reads_between = [], []
    for step in range(1, 41):  # 0.5 s a step up to step 20, then 1 s; a 60 s pause after 35
        clock.t += 0.5 if step <= 20 else 1.0
        before = clock.reads
        if sched.due(step):
            due.append((step, sched.n))
        elif step > 10:
            reads_between.append(clock.reads - before)
        if step == 35:
            clock.t += 60.0  # an evaluation and a checkpoint
            sched.restart(step)
    # the first 5 s take 10 steps, so N = 10; at 1 s a step the next 10 steps take 10 s, N = 5;
    # the pause is not step time, so N stays 5 after it
    assert due == [(10, 10), (20, 10), (30, 5), (35, 5), (40, 5)]
    assert set(reads_between) == {0}  # once N is known, the clock is read every N steps only


def test_a_zero_interval_never_writes():
    clock = Clock()
    sched = PreviewSchedule(0.0, step=0, clock=clock)
    for step in range(1, 100):
        clock.t += 10.0
        assert not sched.due(step)


# --- what the trainer writes ------------------------------------------------------------------
def test_previews_hold_the_weights_of_their_step_and_change_nothing(tmp_path):
    seen = {}

    def look(info):  # log_every=1 and N=1: a preview of this very step is on disk
        rd = RunDir(tmp_path / "on")
        if info.step == 5:
            seen["preview"] = load_file(rd.preview)
            seen["checkpoint"] = load_file(rd.weights)  # still the one at initialisation
            seen["meta"] = load_run(rd.path, weights=PREVIEW_FILE).weights_meta

    on = train(TINY, cfg(), tmp_path / "on", on_step=look, log_every=1, progress_bar=False,
               preview_every_s=1e-9)  # fmt: skip
    off = train(TINY, cfg(), tmp_path / "off", progress_bar=False)
    assert on.step == off.step > 5
    assert seen["meta"]["step"] == "5" and seen["meta"]["epoch"] == "0"
    assert not same(seen["preview"], seen["checkpoint"]), "the preview is the initial weights"
    # a run stopped at step 5 saves the same weights as the preview of step 5
    train(TINY, cfg(), tmp_path / "five", progress_bar=False, max_steps=5)
    assert same(seen["preview"], load_file(tmp_path / "five" / WEIGHTS_FILE))
    # and previews change nothing: the same final weights, curves and test ELBO
    assert same(
        load_file(tmp_path / "on" / WEIGHTS_FILE), load_file(tmp_path / "off" / WEIGHTS_FILE)
    )
    a, b = (read_jsonl(tmp_path / r / "metrics.jsonl") for r in ("on", "off"))
    assert [r["test_elbo"] for r in a] == [r["test_elbo"] for r in b]
    assert [r["train_elbo"] for r in a] == [r["train_elbo"] for r in b]
    assert not RunDir(tmp_path / "off").preview.exists()
    final = load_file(RunDir(tmp_path / "on").preview)  # the last step's, like the checkpoint
    assert same(final, load_file(tmp_path / "on" / WEIGHTS_FILE))
    backup = zipfile.ZipFile(io.BytesIO(export_zip(tmp_path / "on", full=True))).namelist()
    assert "on/train_state.safetensors" in backup and "on/preview.safetensors" not in backup


def test_a_resumed_or_failed_run_drops_its_old_preview(tmp_path, monkeypatch):
    run = tmp_path / "r"
    train(TINY, cfg(), run, progress_bar=False, max_steps=3, preview_every_s=1e-9)
    assert RunDir(run).preview.exists()
    train(TINY, cfg(), run, resume=True, progress_bar=False, max_steps=4)  # no previews
    assert not RunDir(run).preview.exists()  # the old one described another process's weights
    import vae.train.loop as vt

    real_elbo, calls = vt.elbo, []

    def nan_at_step_7(*args, **kwargs):  # steps 5 and 6 write previews, step 7 goes NaN
        terms = real_elbo(*args, **kwargs)
        calls.append(RunDir(run).preview.exists())
        if len(calls) >= 3:
            terms.loss = terms.loss * float("nan")
        return terms

    monkeypatch.setattr(vt, "elbo", nan_at_step_7)
    with pytest.raises(TrainingError, match="loss became nan"):
        train(TINY, cfg(), run, resume=True, progress_bar=False, log_every=5, preview_every_s=1e-9)
    assert calls[:3] == [False, True, True]  # step 5's preview was there when step 7 ran
    assert not RunDir(run).preview.exists()  # the view falls back to the last good checkpoint
    load_run(run)


def test_a_preview_of_nan_weights_is_not_written(tmp_path):
    model = VAE(TINY)
    assert save_preview(tmp_path, model, step=7, epoch=0)
    assert load_file(tmp_path / PREVIEW_FILE).keys() == model.state_dict().keys()
    before = (tmp_path / PREVIEW_FILE).read_bytes()
    with torch.no_grad():
        next(model.parameters())[0] = float("nan")
    assert not save_preview(tmp_path, model, step=8, epoch=0)
    assert (tmp_path / PREVIEW_FILE).read_bytes() == before


def test_load_run_names_the_missing_preview(tmp_path):
    run = tmp_path / "r"
    train(TINY, cfg(), run, progress_bar=False, max_steps=2)
    with pytest.raises(CheckpointError, match=f"has no {PREVIEW_FILE}"):
        load_run(run, weights=PREVIEW_FILE)


# --- which weights the live view draws --------------------------------------------------------
def touch(path: Path, mtime_ns: int, size: int = 1) -> None:
    path.write_bytes(b"x" * size)
    os.utime(path, ns=(mtime_ns, mtime_ns))


def test_the_view_draws_the_newer_of_checkpoint_and_preview(tmp_path):
    rd = RunDir(tmp_path)
    assert weights_stamp(tmp_path) is None
    touch(rd.preview, 2_000_000_000, size=3)
    assert weights_stamp(tmp_path) is None  # no config.json yet: not a run
    rd.config.write_text("{}")
    touch(rd.weights, 1_000_000_000)
    assert weights_stamp(tmp_path) == (PREVIEW_FILE, 2_000_000_000, 3)
    touch(rd.weights, 3_000_000_000, size=6)  # the end-of-epoch checkpoint, after the last preview
    assert weights_stamp(tmp_path) == (WEIGHTS_FILE, 3_000_000_000, 6)
    touch(rd.preview, 3_000_000_000)  # a tie: the checkpoint
    assert weights_stamp(tmp_path)[0] == WEIGHTS_FILE
    rd.preview.unlink()
    assert weights_stamp(tmp_path) == (WEIGHTS_FILE, 3_000_000_000, 6)
