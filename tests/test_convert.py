"""`python -m vae.convert`: a trusted state_dict becomes a run folder, or is refused with reasons.

The converted run is checked against the original module (decodings of the same z), never
against the converter's own code. Models are tiny and match sklearn digits (1, 8, 8), offline.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from tests.helpers import tiny_vae
from vae.checkpoint import CheckpointError, load_run
from vae.convert import main

ROOT = Path(__file__).resolve().parents[1]
MLP = ["--dataset", "digits", "--arch", "mlp", "--hidden", "32", "--latent-dim", "4"]


def _cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "2"}
    return subprocess.run(
        [sys.executable, "-m", "vae.convert", *map(str, args)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _decodings(model: torch.nn.Module, latent_dim: int) -> torch.Tensor:
    z = torch.randn(6, latent_dim, generator=torch.Generator().manual_seed(7))  # (6, D)
    with torch.no_grad():
        return model.decode(z)  # (6, 1, 8, 8)


CASES = {
    "mlp": ({}, MLP),
    "conv": (
        {"arch": "conv", "hidden": (8, 16), "dense": 24},
        [
            "--dataset",
            "digits",
            "--arch",
            "conv",
            "--hidden",
            "8",
            "16",
            "--dense",
            "24",
            "--latent-dim",
            "4",
        ],
    ),  # fmt: skip
    "gaussian-learned": (
        {"likelihood": "gaussian", "sigma_mode": "learned", "sigma": 0.2},
        [*MLP, "--likelihood", "gaussian", "--sigma-mode", "learned", "--sigma", "0.2"],
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_round_trip_decodes_like_the_original(tmp_path: Path, case: str, capsys) -> None:
    kw, flags = CASES[case]
    kw = {"hidden": (32,), **kw}
    original = tiny_vae(4, seed=3, **kw)
    with torch.no_grad():  # weights no fresh VAE has, so defaults could not pass for them
        for p in original.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    torch.save(original.state_dict(), tmp_path / "mine.pt")

    assert main([str(tmp_path / "mine.pt"), "--out", str(tmp_path / "run"), *flags]) == 0
    assert "whole file" in capsys.readouterr().out

    run = load_run(tmp_path / "run")
    assert run.config == original.config
    assert torch.allclose(_decodings(run.model, 4), _decodings(original, 4), atol=1e-6)
    saved = load_file(tmp_path / "run" / "model.safetensors")
    assert saved.keys() == original.state_dict().keys()
    assert all(torch.equal(saved[k], v) for k, v in original.state_dict().items())
    meta = json.loads((tmp_path / "run" / "config.json").read_text())
    assert meta["dataset"]["name"] == "digits" and meta["dataset"]["image_shape"] == [1, 8, 8]
    assert meta["command"].startswith("python -m vae.convert ")
    assert meta["extra"]["converted_from"]["file"] == "mine.pt"


def test_wrapped_and_prefixed_state_dicts_convert(tmp_path: Path, capsys) -> None:
    original = tiny_vae(4, hidden=(32,), seed=1)
    sd = original.state_dict()
    ddp = {f"module.{k}": v for k, v in sd.items()}  # as DataParallel/DDP save it
    torch.save({"state_dict": ddp, "epoch": 3}, tmp_path / "a.pt")
    torch.save({"model": {k: v.double() for k, v in sd.items()}, "step": 9}, tmp_path / "b.ckpt")
    torch.save({"ema": sd, "weights": {"x": torch.zeros(1)}}, tmp_path / "c.pth")
    save_file(sd, tmp_path / "d.safetensors")  # safe already, but without its config.json

    assert main([str(tmp_path / "a.pt"), "--out", str(tmp_path / "a"), *MLP]) == 0
    out = capsys.readouterr().out
    assert "'state_dict' entry" in out and "'module.' prefix" in out
    assert main([str(tmp_path / "b.ckpt"), "--out", str(tmp_path / "b"), *MLP]) == 0
    assert "'model' entry" in capsys.readouterr().out
    assert main([str(tmp_path / "c.pth"), "--out", str(tmp_path / "c"), "--key", "ema", *MLP]) == 0
    assert main([str(tmp_path / "d.safetensors"), "--out", str(tmp_path / "d"), *MLP]) == 0
    for name in "abcd":
        run = load_run(tmp_path / name)
        assert torch.allclose(_decodings(run.model, 4), _decodings(original, 4), atol=1e-6)


def test_mismatching_architecture_is_refused_with_its_keys(tmp_path: Path, capsys) -> None:
    torch.save(tiny_vae(4, hidden=(32,)).state_dict(), tmp_path / "mine.pt")
    # latent_dim 5 instead of 4: the same keys, other shapes
    flags = ["--dataset", "digits", "--hidden", "32", "--latent-dim", "5"]
    assert main([str(tmp_path / "mine.pt"), "--out", str(tmp_path / "z5"), *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert "encoder.out.weight is (8, 32), needs (10, 32)" in err
    assert not (tmp_path / "z5").exists()  # nothing written

    # conv instead of mlp, through the real command line: other keys altogether
    r = _cli(tmp_path / "mine.pt", "--out", tmp_path / "conv", "--dataset", "digits",
             "--arch", "conv", "--latent-dim", "4")  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert "missing key(s): decoder.fc.0.bias" in r.stderr
    assert "unexpected key(s): decoder.body.0.bias" in r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "conv").exists()


def test_command_line_round_trip(tmp_path: Path) -> None:
    original = tiny_vae(4, hidden=(32,), seed=5)
    torch.save({"state_dict": original.state_dict()}, tmp_path / "mine.pt")
    r = _cli(tmp_path / "mine.pt", "--out", tmp_path / "run", *MLP)
    assert r.returncode == 0, r.stderr
    assert "'state_dict' entry" in r.stdout and str(tmp_path / "run") in r.stdout
    run = load_run(tmp_path / "run")
    assert torch.allclose(_decodings(run.model, 4), _decodings(original, 4), atol=1e-6)


def test_existing_out_folder_is_refused_unless_forced(tmp_path: Path, capsys) -> None:
    torch.save(tiny_vae(4, hidden=(32,)).state_dict(), tmp_path / "mine.pt")
    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.json").write_text('{"test_elbo": -1.0}')  # a former run's numbers
    (out / "notes.txt").write_text("mine")
    argv = [str(tmp_path / "mine.pt"), "--out", str(out), *MLP]
    assert main(argv) == 2
    assert "already exists and is not empty" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["metrics.json", "notes.txt"]

    assert main([*argv, "--force"]) == 0
    assert not (out / "metrics.json").exists()  # would describe another model
    assert (out / "notes.txt").read_text() == "mine"
    load_run(out)

    (tmp_path / "file").write_text("x")
    assert main([str(tmp_path / "mine.pt"), "--out", str(tmp_path / "file"), *MLP]) == 2
    assert "is a file" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main([str(tmp_path / "mine.pt"), "--out", str(empty), *MLP]) == 0


def test_non_tensor_values_nan_weights_and_pickled_objects_are_refused(tmp_path: Path, capsys):
    sd = tiny_vae(4, hidden=(32,)).state_dict()
    torch.save({**sd, "epoch": 3}, tmp_path / "mixed.pt")
    assert main([str(tmp_path / "mixed.pt"), "--out", str(tmp_path / "m"), *MLP]) == 2
    err = capsys.readouterr().err
    assert "epoch (int)" in err and "--key" in err

    nan = dict(sd)
    nan["decoder.body.0.weight"] = torch.full_like(nan["decoder.body.0.weight"], float("nan"))
    torch.save(nan, tmp_path / "nan.pt")
    assert main([str(tmp_path / "nan.pt"), "--out", str(tmp_path / "n"), *MLP]) == 2
    assert "NaN or Inf values: decoder.body.0.weight" in capsys.readouterr().err
    assert not (tmp_path / "n").exists()

    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    (tmp_path / "evil.pt").write_bytes(pickle.dumps({"w": Evil()}, protocol=2))  # as torch's
    assert main([str(tmp_path / "evil.pt"), "--out", str(tmp_path / "e"), *MLP]) == 2
    err = capsys.readouterr().err
    assert "weights_only=True refuses" in err and "system" in err
    assert not marker.exists()  # the pickle's code never ran

    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    assert main([str(tmp_path / "junk.pt"), "--out", str(tmp_path / "j"), *MLP]) == 2
    assert "is not a torch.save file" in capsys.readouterr().err


def test_a_folder_holding_only_a_pickle_says_how_to_convert(tmp_path: Path) -> None:
    folder = tmp_path / "theirs"
    folder.mkdir()
    torch.save(tiny_vae(4, hidden=(32,)).state_dict(), folder / "model.pt")
    with pytest.raises(CheckpointError) as e:
        load_run(folder)
    msg = str(e.value)
    assert "arbitrary code" in msg and "python -m vae.convert" in msg
    assert str(folder / "model.pt") in msg and "\n" not in msg

    from vae.ui.models import add_path  # the sidebar's "Add a model"

    for typed in (folder, folder / "model.pt"):
        with pytest.raises(CheckpointError, match="python -m vae.convert"):
            add_path(str(typed))
