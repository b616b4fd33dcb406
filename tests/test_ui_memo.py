"""What the app remembers between page visits gives what a fresh computation gives: decoded
batches (per weights), GIFs (per frames), training logs (per file state), and the curves drawn
from those logs."""

from __future__ import annotations

import io
import json
import math
import os

import numpy as np
import pytest
import torch
from PIL import Image

from tests.helpers import tiny_vae
from vae.checkpoint import WEIGHTS_FILE, load_run, save_model
from vae.ui import analysis, charts, image_grids, infer

DIGITS = {"name": "digits", "image_shape": [1, 8, 8]}


def _save(run_dir, seed: int):
    save_model(run_dir, tiny_vae(seed=seed), dataset=DIGITS, train={"dataset": "digits"})
    return load_run(run_dir)


def _torch_decode(run, z: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return run.model.decode(torch.from_numpy(z)).numpy()  # (B, C, H, W)


def test_a_decoded_batch_is_remembered_per_weights(tmp_path):
    run = _save(tmp_path / "run", seed=0)
    z = np.random.default_rng(0).standard_normal((6, 4)).astype(np.float32)  # (6, D)
    first = infer.decode(run, z)
    np.testing.assert_allclose(first, _torch_decode(run, z), rtol=1e-5, atol=1e-6)
    first[:] = -1.0  # a caller scribbling on its copy changes nothing for the next one
    again = infer.decode(run, z)
    np.testing.assert_allclose(again, _torch_decode(run, z), rtol=1e-5, atol=1e-6)
    # one vector keeps its shape (C, H, W)
    np.testing.assert_allclose(infer.decode(run, z[0]), _torch_decode(run, z[:1])[0], atol=1e-6)

    # retrained weights in the same folder: the new model's pictures, not the remembered ones
    new = _save(tmp_path / "run", seed=1)
    t = (run.path / WEIGHTS_FILE).stat().st_mtime_ns + 10**9
    os.utime(run.path / WEIGHTS_FILE, ns=(t, t))
    fresh = infer.decode(new, z)
    np.testing.assert_allclose(fresh, _torch_decode(new, z), rtol=1e-5, atol=1e-6)
    assert not np.allclose(fresh, _torch_decode(run, z))


def _frames(seed: int, n: int = 4) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 1, 8, 8)).astype(np.float32)  # (n, C, H, W)


def _gif_pixels(data: bytes) -> list[np.ndarray]:
    out = []
    with Image.open(io.BytesIO(data)) as im:
        for i in range(im.n_frames):
            im.seek(i)
            out.append(np.asarray(im.convert("L")))
    return out


def test_a_gif_is_remembered_by_its_frames():
    frames = _frames(0)
    gif = image_grids.gif_bytes(frames, size=16, fps=5, boomerang=False)
    assert image_grids.gif_bytes(list(frames), size=16, fps=5, boomerang=False) == gif
    # what it shows: each frame, as uint8 grey levels, enlarged 2x by pixel repetition
    want = [np.repeat(np.repeat(np.round(f[0] * 255).astype(np.uint8), 2, 0), 2, 1) for f in frames]
    got = _gif_pixels(gif)
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert np.abs(g.astype(int) - w.astype(int)).max() <= 1
    other = image_grids.gif_bytes(_frames(1), size=16, fps=5, boomerang=False)
    assert other != gif and image_grids.gif_frame_count(other) == 4
    with pytest.raises(ValueError):
        image_grids.gif_bytes([], size=16)


def _append(path, records) -> None:
    with path.open("a") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")


def test_training_logs_follow_the_files(tmp_path):
    run = _save(tmp_path / "run", seed=0)
    log = run.path / "metrics.jsonl"
    first = [{"epoch": 1, "step": 10, "train_elbo": -90.0, "test_elbo": -92.0}]
    _append(log, first)
    epochs, steps = analysis.training_logs(run)
    assert [r["epoch"] for r in epochs] == [1] and steps == []
    epochs[0]["epoch"] = 99  # the caller's copy
    assert analysis.training_logs(run)[0][0]["epoch"] == 1
    _append(log, [{"epoch": 2, "step": 20, "train_elbo": -85.0, "test_elbo": -88.0}])  # training
    step = {"step": 10, "epoch": 1, "elbo": -100.0, "recon": 80.0, "kl": 20.0}
    _append(run.path / "steps.jsonl", [step])
    epochs, steps = analysis.training_logs(run)
    assert [r["epoch"] for r in epochs] == [1, 2]
    assert [r["step"] for r in steps] == [10]


def test_curves_draw_the_finite_numbers_of_each_series():
    records = [
        {"epoch": 1, "a": -3.0, "b": 1.0},
        {"epoch": 2, "a": float("nan"), "b": 2.0},
        {"epoch": 3, "a": True, "b": 3},  # a bool is not a number here
        {"epoch": "4", "a": -1.0, "b": 4.0},  # nor is a string
        {"epoch": 5, "b": 5.0},
        {"epoch": 6, "a": -0.5, "b": math.inf},
    ]
    fig = charts.curves(records, {"a": "A", "b": "B", "missing": "M"}, dashed=["b"])
    traces = {t.name: t for t in fig.data}
    assert set(traces) == {"A", "B"}  # a series with no numbers draws no line
    assert list(traces["A"].x) == [1, 6] and list(traces["A"].y) == [-3.0, -0.5]
    assert list(traces["B"].x) == [1, 2, 3, 5] and list(traces["B"].y) == [1.0, 2.0, 3.0, 5.0]
    assert traces["B"].line.dash == "dash" and traces["A"].line.dash == "solid"
    assert traces["A"].mode == "lines+markers"
