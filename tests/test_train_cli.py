"""`python -m vae.train`: flags, --resume, --config-json, plain errors, SIGTERM, DDP."""

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
from vae.record import RunRecord
from vae.train import (
    TrainingError,
    build_parser,
    configs_from_args,
    main,
    read_config_json,
    write_config_json,
)

ROOT = Path(__file__).resolve().parents[1]


def cfg(**kw) -> TrainConfig:
    base = {"dataset": "digits", "epochs": 2, "batch_size": 64, "lr": 3e-3, "seed": 1}
    return TrainConfig(**{**base, **kw})


# --- --config-json ---------------------------------------------------------------------------
def parse(*argv: str):
    return configs_from_args(build_parser().parse_args(list(argv)), list(argv))


def test_config_json_trains_like_the_equivalent_flags(tmp_path, capsys):
    flags = ["--dataset", "digits", "--epochs", "1", "--latent-dim", "3", "--hidden", "16",
             "--batch-size", "64", "--lr", "3e-3", "--seed", "2", "--device", "cpu"]  # fmt: skip
    assert main([*flags, "--no-progress", "--out", str(tmp_path / "flags")]) == 0
    doc = {  # what a launcher writes; fields left out take the dataclass defaults
        "model": {"image_shape": [1, 8, 8], "latent_dim": 3, "arch": "mlp", "hidden": [16]},
        "train": {"dataset": "digits", "epochs": 1, "batch_size": 64, "lr": 3e-3, "seed": 2},
        "out": str(tmp_path / "json"),
    }
    (tmp_path / "job.json").write_text(json.dumps(doc))
    argv = ["--config-json", str(tmp_path / "job.json"), "--device", "cpu", "--no-progress"]
    assert main(argv) == 0
    a, b = (json.loads((tmp_path / r / "config.json").read_text()) for r in ("flags", "json"))
    assert b["command"] == "python -m vae.train " + " ".join(argv)
    for m in (a, b):
        del m["created"], m["command"]
    assert a == b
    wa, wb = (load_file(tmp_path / r / "model.safetensors") for r in ("flags", "json"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)  # the same run, not just the same config
    # write_config_json writes the same configs back
    model_cfg, train_cfg, out = read_config_json(tmp_path / "job.json")
    write_config_json(tmp_path / "again.json", model_cfg, train_cfg, out)
    assert read_config_json(tmp_path / "again.json") == (model_cfg, train_cfg, out)
    assert out == tmp_path / "json" and ModelConfig.from_dict(a["model"]) == model_cfg


def test_config_json_refuses_config_flags_but_takes_run_flags(tmp_path):
    path = tmp_path / "job.json"
    write_config_json(path, ModelConfig(image_shape=(1, 8, 8)), cfg(), tmp_path / "run")
    for extra in (["--epochs", "3"], ["--epoch=3"], ["--out", "x"], ["--resume", "x"]):
        with pytest.raises(TrainingError, match="cannot go with it"):
            parse("--config-json", str(path), *extra)
    with pytest.raises(TrainingError, match="--lr, --seed cannot go"):
        parse("--config-json", str(path), "--seed", "0", "--lr", "0.01")
    m, c, out, resume = parse("--config-json", str(path), "--threads", "1", "--log-every", "5",
                              "--max-steps", "3", "--no-progress", "--device", "cpu")  # fmt: skip
    assert c == cfg(device="cpu") and m.image_shape == (1, 8, 8)
    assert out == tmp_path / "run" and not resume


def test_preview_interval_is_a_run_flag(tmp_path, capsys):
    path = tmp_path / "job.json"
    write_config_json(path, ModelConfig(image_shape=(1, 8, 8), hidden=(16,)), cfg(epochs=1),
                      tmp_path / "run")  # fmt: skip
    assert parse("--config-json", str(path), "--preview-every-s", "2")[1] == cfg(epochs=1)
    assert build_parser().parse_args([]).preview_every_s == 5.0  # the app's jobs get previews
    for bad in ("-1", "nan"):
        assert main(["--config-json", str(path), "--preview-every-s", bad]) == 2
        assert "--preview-every-s must be 0 (no previews) or more" in capsys.readouterr().err
    assert main(["--config-json", str(path), "--no-progress", "--max-steps", "3",
                 "--preview-every-s", "1e-9"]) == 0  # fmt: skip
    preview = load_run(tmp_path / "run", weights="preview.safetensors")
    assert preview.weights_meta["step"] == "3"
    assert main(["--resume", str(tmp_path / "run"), "--no-progress", "--max-steps", "4",
                 "--preview-every-s", "0"]) == 0  # fmt: skip
    assert not (tmp_path / "run" / "preview.safetensors").exists()


@pytest.mark.parametrize(
    "text, match",
    [
        (None, "cannot read it"),
        ("{nope", "not valid JSON"),
        ("[1, 2]", "must hold"),
        ('{"model": {}, "train": {}}', "missing out"),
        ('{"model": {}, "train": {}, "out": "r", "extra": 1}', "unknown key.* extra"),
        ('{"model": {}, "train": {}, "out": ""}', '"out" must be'),
        ('{"model": [], "train": {}, "out": "r"}', "ModelConfig must be a JSON object"),
        ('{"model": {"latent_dim": 500}, "train": {}, "out": "r"}', "latent_dim must be"),
        ('{"model": {"hidden": ["x"]}, "train": {}, "out": "r"}', "hidden must be tuple"),
        ('{"model": {"depth": 3}, "train": {}, "out": "r"}', "unknown ModelConfig keys: depth"),
        ('{"model": {}, "train": {"epochs": 2.5}, "out": "r"}', "TrainConfig.epochs must be int"),
        ('{"model": {}, "train": {"amp": "no"}, "out": "r"}', "TrainConfig.amp must be bool"),
        ('{"model": {}, "train": {"seed": true}, "out": "r"}', "TrainConfig.seed must be int"),
        ('{"model": {}, "train": {"lr": 2}, "out": "r"}', "lr must be in"),
    ],
)
def test_bad_config_json_files_are_config_errors(tmp_path, text, match):
    path = tmp_path / "job.json"
    if text is not None:
        path.write_text(text)
    with pytest.raises(ConfigError, match=match) as e:
        read_config_json(path)
    assert str(e.value).startswith(f"--config-json {path}: ")


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
    (tmp_path / "job.json").write_text('{"model": {}, "train": {"epochs": "2"}, "out": "x"}')
    p = _cli("--config-json", str(tmp_path / "job.json"))
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert "error: --config-json" in p.stderr and "TrainConfig.epochs must be int" in p.stderr
    p = _cli("--config-json", str(tmp_path / "job.json"), "--beta", "2")
    assert p.returncode == 2 and "--beta cannot go with it" in p.stderr


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
    load_run(out)  # a valid checkpoint
    assert RunRecord.read(out).metrics["state"] == "stopped"


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
