"""`train()` in-process on sklearn digits: learning, bit-exact resume, NaN stop, device reads."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from vae import ModelConfig, TrainConfig, load_run
from vae.checkpoint import read_jsonl
from vae.record import RunDir, RunRecord
from vae.train import LOG_FILE, STATUS_FILE, STEPS_FILE, STOP_FILE, TrainingError, train

TINY = ModelConfig(image_shape=(1, 8, 8), arch="mlp", hidden=(32,), latent_dim=4)


def cfg(**kw) -> TrainConfig:
    base = {"dataset": "digits", "epochs": 2, "batch_size": 64, "lr": 3e-3, "seed": 1}
    return TrainConfig(**{**base, **kw})


def weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(run / "model.safetensors")


def test_the_status_file_names_are_the_run_folders():
    rd = RunDir("r")
    assert (STATUS_FILE, STEPS_FILE, LOG_FILE, STOP_FILE) == (
        rd.status.name, rd.steps_log.name, rd.log.name, rd.stop.name
    )  # fmt: skip
    assert (STATUS_FILE, STEPS_FILE, LOG_FILE, STOP_FILE) == (
        "status.json", "steps.jsonl", "log.txt", "STOP"
    )  # fmt: skip


def test_one_short_epoch_lowers_the_loss(tmp_path):
    steps = []
    res = train(TINY, cfg(epochs=1), tmp_path / "r", on_step=steps.append, log_every=2,
                progress_bar=False)  # fmt: skip
    assert res.state == "finished" and res.epoch == 1
    first, last = steps[0].loss, steps[-1].loss
    assert last < first - 1.0, (first, last)
    m = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert m["train_samples_per_s"] > 0 and m["wall_time_s"] > 0
    assert len(read_jsonl(tmp_path / "r" / "metrics.jsonl")) == 1
    run = load_run(tmp_path / "r")
    assert run.meta["dataset"]["name"] == "digits" and run.meta["train"]["epochs"] == 1


def test_resume_matches_an_uninterrupted_run(tmp_path):
    full = train(TINY, cfg(epochs=3), tmp_path / "full", progress_bar=False)

    def stop_at_step_30(info):
        if info.step == 30:  # mid-epoch 2 (22 steps per epoch)
            (tmp_path / "part" / STOP_FILE).touch()

    part = train(TINY, cfg(epochs=3), tmp_path / "part", on_step=stop_at_step_30, log_every=1,
                 progress_bar=False)  # fmt: skip
    assert part.state == "stopped" and part.step == 30
    status = json.loads((tmp_path / "part" / "status.json").read_text())
    assert status["state"] == "stopped"
    load_run(tmp_path / "part")  # the stopped checkpoint is valid
    resumed = train(TINY, cfg(epochs=3), tmp_path / "part", resume=True, progress_bar=False)
    assert resumed.step == full.step and resumed.state == "finished"
    a, b = weights(tmp_path / "full"), weights(tmp_path / "part")
    assert all(torch.equal(a[k], b[k]) for k in a)
    ra = read_jsonl(tmp_path / "full" / "metrics.jsonl")
    rb = read_jsonl(tmp_path / "part" / "metrics.jsonl")
    assert [r["train_elbo"] for r in ra] == [r["train_elbo"] for r in rb]
    assert [r["test_elbo"] for r in ra] == [r["test_elbo"] for r in rb]


def test_resume_can_extend_epochs(tmp_path):
    train(TINY, cfg(epochs=1), tmp_path / "r", progress_bar=False)
    res = train(TINY, cfg(epochs=2), tmp_path / "r", resume=True, progress_bar=False)
    assert res.epoch == 2 and len(read_jsonl(tmp_path / "r" / "metrics.jsonl")) == 2


def test_nan_loss_stops_with_clear_error_and_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    run = tmp_path / "r"
    train(TINY, cfg(epochs=1), run, progress_bar=False)
    good = weights(run)
    import vae.train.loop as vt  # the loop's own binding of elbo

    calls = {"n": 0}
    real_elbo = vt.elbo

    def blows_up_at_step_31(*args, **kwargs):  # 23 steps per epoch: the 8th step of epoch 2
        terms = real_elbo(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] >= 8:
            terms.loss = terms.loss * float("nan")
        return terms

    monkeypatch.setattr(vt, "elbo", blows_up_at_step_31)
    with pytest.raises(TrainingError, match="loss became nan at step 31 \\(epoch 2\\)"):
        train(TINY, cfg(epochs=3), run, resume=True, progress_bar=False)
    after = weights(run)
    assert all(torch.equal(good[k], after[k]) for k in good), "last good checkpoint was replaced"
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "failed" and "loss became" in status["message"]
    load_run(run)
    assert RunRecord.read(run).metrics["epochs"] == 1


def test_steps_do_not_read_device_values_between_flushes(tmp_path, monkeypatch):
    """A step leaves its terms on the device (no per-step .item(), which would make each GPU
    step wait); values are read once per `log_every` steps and at epoch ends. The epoch means
    equal the plain per-step average of the logged terms."""
    reads = {"item": 0, "tolist": 0}
    item, tolist = torch.Tensor.item, torch.Tensor.tolist

    def counted(name, fn):
        def wrapper(self, *a, **k):
            reads[name] += 1
            return fn(self, *a, **k)

        return wrapper

    monkeypatch.setattr(torch.Tensor, "item", counted("item", item))
    monkeypatch.setattr(torch.Tensor, "tolist", counted("tolist", tolist))
    steps = []
    res = train(TINY, cfg(epochs=2), tmp_path / "r", on_step=steps.append, log_every=1,
                progress_bar=False)  # fmt: skip
    monkeypatch.undo()
    per_epoch = res.step // 2  # 23 steps of 64 images
    assert len(steps) == res.step  # log_every=1: every step was read, once each
    records = read_jsonl(tmp_path / "r" / "metrics.jsonl")
    for e, r in enumerate(records):
        losses = [s.loss for s in steps[e * per_epoch : (e + 1) * per_epoch]]
        assert r["train_loss"] == pytest.approx(sum(losses) / len(losses), rel=1e-12)
    reads = {"item": 0, "tolist": 0}
    monkeypatch.setattr(torch.Tensor, "item", counted("item", item))
    monkeypatch.setattr(torch.Tensor, "tolist", counted("tolist", tolist))
    train(TINY, cfg(epochs=2), tmp_path / "q", log_every=10, progress_bar=False)
    monkeypatch.undo()
    # 46 steps: flushes at steps 10, 20, 30, 40 and both epoch ends, plus the test-set ELBO
    # (3 .item() per epoch) and the KL-per-dim list; nothing per step
    assert reads["tolist"] <= 6 + 2 and reads["item"] <= 3 * 2, reads
