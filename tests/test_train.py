"""The trainer on sklearn digits: learning, resume equivalence, NaN, stop, CLI, DDP."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from vae import ModelConfig, TrainConfig, load_run
from vae.checkpoint import read_jsonl
from vae.config import ConfigError
from vae.train import STOP_FILE, TrainingError, train

ROOT = Path(__file__).resolve().parents[1]
TINY = ModelConfig(image_shape=(1, 8, 8), arch="mlp", hidden=(32,), latent_dim=4)


def cfg(**kw) -> TrainConfig:
    base = {"dataset": "digits", "epochs": 2, "batch_size": 64, "lr": 3e-3, "seed": 1}
    return TrainConfig(**{**base, **kw})


def weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(run / "model.safetensors")


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
    import vae.train as vt

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
    assert load_run(run).metrics["epochs"] == 1


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


def _cli(*args, **kw):
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "vae.train", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300, **kw)  # fmt: skip


@pytest.mark.slow
def test_cli_trains_and_records_its_command(tmp_path):
    out = tmp_path / "run"
    p = _cli("--dataset", "digits", "--epochs", "1", "--latent-dim", "3", "--hidden", "16",
             "--out", str(out), "--no-progress")  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert "epoch 1/1" in p.stdout and "ELBO" in p.stdout
    meta = json.loads((out / "config.json").read_text())
    assert meta["command"].startswith("python -m vae.train --dataset digits")
    assert meta["model"]["latent_dim"] == 3


@pytest.mark.slow
def test_iwae_training_and_resuming_an_elbo_run_on_the_iwae_bound(tmp_path):
    with pytest.raises(ConfigError, match="free bits"):
        cfg(iw_samples=5, free_bits=0.5)
    out = tmp_path / "run"
    p = _cli("--dataset", "digits", "--epochs", "1", "--latent-dim", "3", "--hidden", "16",
             "--out", str(out), "--no-progress")  # fmt: skip
    assert p.returncode == 0, p.stderr
    p = _cli("--resume", str(out), "--epochs", "3", "--iw-samples", "5", "--no-progress")
    assert p.returncode == 0, p.stderr
    meta = json.loads((out / "config.json").read_text())
    assert meta["train"]["iw_samples"] == 5 and "--iw-samples 5" in meta["command"]
    rows = read_jsonl(out / "metrics.jsonl")
    assert len(rows) == 3
    assert rows[0]["train_loss"] == pytest.approx(-rows[0]["train_elbo"])  # ELBO epoch
    for r in rows[1:]:  # IWAE epochs: the loss is the k = 5 bound, tighter than the ELBO
        assert r["train_loss"] < -r["train_elbo"]
    assert rows[2]["train_loss"] < rows[1]["train_loss"]


@pytest.mark.slow
def test_cli_errors_are_plain(tmp_path):
    p = _cli("--dataset", "nope", "--out", str(tmp_path / "x"))
    assert p.returncode == 2 and "unknown dataset" in p.stderr and "Traceback" not in p.stderr
    p = _cli("--dataset", "digits", "--latent-dim", "500", "--out", str(tmp_path / "x"))
    assert p.returncode == 2 and "latent_dim" in p.stderr and "Traceback" not in p.stderr
    p = _cli("--dataset", "digits", "--device", "cuda:3", "--out", str(tmp_path / "x"))
    assert p.returncode == 2 and "cuda" in p.stderr and "Traceback" not in p.stderr


@pytest.mark.slow
def test_sigterm_stops_gracefully_with_a_valid_checkpoint(tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "vae.train", "--dataset", "digits", "--epochs", "500",
         "--hidden", "16", "--latent-dim", "3", "--out", str(out), "--no-progress"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.time() + 120
    while time.time() < deadline:
        st = out / "status.json"
        if st.exists() and json.loads(st.read_text()).get("step", 0) > 40:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    status = json.loads((out / "status.json").read_text())
    assert status["state"] == "stopped" and status["step"] > 40
    run = load_run(out)
    assert run.metrics["state"] == "stopped"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_process_gloo_ddp(tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
           f"--master_port={_free_port()}", "-m", "vae.train", "--dataset", "digits",
           "--epochs", "2", "--hidden", "32", "--latent-dim", "4", "--device", "cpu",
           "--batch-size", "64", "--out", str(out), "--no-progress"]  # fmt: skip
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    m = json.loads((out / "metrics.json").read_text())
    assert m["world_size"] == 2 and m["state"] == "finished"
    recs = read_jsonl(out / "metrics.jsonl")
    assert len(recs) == 2  # written once, by rank 0 only
    assert recs[1]["train_elbo"] > recs[0]["train_elbo"]
    assert p.stdout.count("finished:") == 1  # rank 0 alone reports
    load_run(out)
