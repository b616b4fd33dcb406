"""Run folders: bit-exact round trips, hostile inputs refused, writes atomic."""

import json
import os
import pickle
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from vae import VAE, ModelConfig, load_run, save_model
from vae.checkpoint import (
    FORMAT_VERSION,
    CheckpointError,
    atomic_write_bytes,
    read_jsonl,
    weights_hash,
)

CFG = ModelConfig(image_shape=(1, 8, 8), arch="conv", hidden=(4, 8), dense=16, latent_dim=3)


def make_run(path: Path, cfg: ModelConfig = CFG) -> VAE:
    torch.manual_seed(0)
    m = VAE(cfg)
    save_model(path, m, dataset={"name": "digits"}, command="python -m vae.train ...")
    return m


@pytest.mark.parametrize(
    "cfg",
    [CFG, ModelConfig(image_shape=(3, 16, 16), likelihood="gaussian", sigma_mode="learned")],
)
def test_round_trip_is_bit_exact(tmp_path, cfg):
    m = make_run(tmp_path / "r", cfg)
    run = load_run(tmp_path / "r")
    a, b = m.state_dict(), run.model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    x = torch.rand(2, *cfg.image_shape)
    m.eval()
    assert torch.equal(m.reconstruct(x), run.model.reconstruct(x))
    assert run.meta["format_version"] == FORMAT_VERSION
    assert run.meta["command"] == "python -m vae.train ..."
    assert run.config == cfg
    assert len(weights_hash(tmp_path / "r")) == 64
    assert (tmp_path / "r" / "model.safetensors").stat().st_mode & 0o777 == 0o644


class Evil:
    def __reduce__(self):
        return (os.system, ("touch /tmp/pwned-by-checkpoint",))


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".ckpt", ".pkl"])
def test_pickle_checkpoints_are_refused_unopened(tmp_path, suffix):
    p = tmp_path / f"model{suffix}"
    p.write_bytes(pickle.dumps(Evil()))
    with pytest.raises(CheckpointError, match="pickle"):
        load_run(p)
    d = tmp_path / "folder"
    d.mkdir()
    (d / f"weights{suffix}").write_bytes(pickle.dumps(Evil()))
    with pytest.raises(CheckpointError, match="never does"):
        load_run(d)
    assert not Path("/tmp/pwned-by-checkpoint").exists()


def test_torch_save_zip_is_refused_whatever_its_name(tmp_path):
    p = tmp_path / "innocent.safetensors"
    torch.save({"w": torch.zeros(2)}, p)  # a zip holding a pickle
    assert zipfile.is_zipfile(p)
    with pytest.raises(CheckpointError, match="pickle"):
        load_run(p)


def _edit_config(run: Path, **changes) -> None:
    meta = json.loads((run / "config.json").read_text())
    meta.update(changes)
    (run / "config.json").write_text(json.dumps(meta))


@pytest.mark.parametrize(
    "change,match",
    [
        ({"bogus": 1}, "unknown keys"),
        ({"format_version": FORMAT_VERSION + 1}, "newer"),
        ({"format_version": "1"}, "format_version"),
        ({"model": {**CFG.to_dict(), "latent_dim": 1000}}, "latent_dim"),
        ({"model": {**CFG.to_dict(), "activation": "relu"}}, "unknown"),
        ({"model": {**CFG.to_dict(), "latent_dim": 5}}, "shape"),
    ],
)
def test_bad_configs_get_clear_errors(tmp_path, change, match):
    make_run(tmp_path / "r")
    _edit_config(tmp_path / "r", **change)
    with pytest.raises(CheckpointError, match=match):
        load_run(tmp_path / "r")


def test_config_that_is_not_json(tmp_path):
    make_run(tmp_path / "r")
    (tmp_path / "r" / "config.json").write_text("{nope")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_run(tmp_path / "r")


def test_nan_weights_are_refused(tmp_path):
    m = make_run(tmp_path / "r")
    state = {k: v.clone() for k, v in m.state_dict().items()}
    first = next(iter(state))
    state[first][0] = float("nan")
    save_file(state, tmp_path / "r" / "model.safetensors")
    with pytest.raises(CheckpointError, match="NaN"):
        load_run(tmp_path / "r")


def test_missing_and_extra_tensors_are_refused(tmp_path):
    m = make_run(tmp_path / "r")
    state = dict(m.state_dict())
    state.pop(next(iter(state)))
    state["extra.weight"] = torch.zeros(1)
    save_file(state, tmp_path / "r" / "model.safetensors")
    with pytest.raises(CheckpointError, match="does not match"):
        load_run(tmp_path / "r")


@pytest.mark.parametrize(
    "blob",
    [
        b"",
        b"\x00" * 7,
        (10**12).to_bytes(8, "little") + b"{}",
        b"\x08\x00\x00\x00\x00\x00\x00\x00{]]]]]]]",
    ],
)
def test_corrupt_safetensors_are_refused(tmp_path, blob):
    make_run(tmp_path / "r")
    (tmp_path / "r" / "model.safetensors").write_bytes(blob)
    with pytest.raises(CheckpointError, match="safetensors"):
        load_run(tmp_path / "r")


def test_missing_things_are_explained(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_run(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="config.json"):
        load_run(tmp_path / "empty")


def test_atomic_write_keeps_the_old_file_when_the_writer_dies(tmp_path, monkeypatch):
    target = tmp_path / "model.safetensors"
    atomic_write_bytes(target, b"old")

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # the job is killed between write and rename

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(target, b"new" * 1000)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]  # no temp left


def test_killed_mid_save_leaves_a_loadable_run(tmp_path):
    """A save killed by SIGKILL between the weights and the config leaves a consistent pair."""
    import subprocess
    import sys

    make_run(tmp_path / "r")
    before = load_run(tmp_path / "r").model.state_dict()
    code = f"""
import os, signal, torch
import vae.checkpoint as ck
from vae import VAE, ModelConfig
real = ck.atomic_write_bytes
def dying(path, data):
    if str(path).endswith("model.safetensors"):
        with open(str(path) + ".partial", "wb") as f:
            f.write(data[: len(data) // 2])  # a torn write that never got renamed
        os.kill(os.getpid(), signal.SIGKILL)
    real(path, data)
ck.atomic_write_bytes = dying
torch.manual_seed(1)
ck.save_model({str(tmp_path / "r")!r}, VAE(ModelConfig(**{CFG.to_dict()!r})))
"""
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.returncode == -9
    after = load_run(tmp_path / "r").model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_read_jsonl_skips_a_torn_last_line(tmp_path):
    p = tmp_path / "m.jsonl"
    p.write_text('{"epoch": 1}\n{"epoch": 2}\n{"epo')
    assert read_jsonl(p) == [{"epoch": 1}, {"epoch": 2}]
    assert read_jsonl(tmp_path / "missing.jsonl") == []
