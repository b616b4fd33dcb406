"""`python -m vae.evaluate` and `python -m vae.encode` on a tiny digits run made in the test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.helpers import tiny_run
from vae.checkpoint import load_run
from vae.encode import encode_image
from vae.imageio import open_image
from vae.latents import encode_dataset, run_dataset
from vae.preprocess import PreprocessError

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"
MNIST_ASSET = ROOT / "assets" / "mnist-conv"


def _cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "2"}
    return subprocess.run(
        [sys.executable, *map(str, args)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _save_digits_run(run: Path, steps: int) -> Path:
    """A tiny MLP VAE trained for `steps` Adam steps on sklearn digits, saved as a run folder."""
    return tiny_run(run, "digits", latent_dim=4, steps=steps, hidden=(32,), metrics=False)


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _save_digits_run(tmp_path_factory.mktemp("runs") / "digits", steps=200)


@pytest.fixture
def pickle_file(tmp_path: Path) -> Path:
    p = tmp_path / "model.pt"
    p.write_bytes(b"\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x00.")  # a pickle header
    return p


@pytest.mark.slow
def test_evaluate_json_and_save(digits_run: Path) -> None:
    (digits_run / "metrics.json").write_text(json.dumps({"final": {"elbo": -1.0}}))
    r = _cli(
        "-m", "vae.evaluate", digits_run, "--json", "--iw-samples", "50", "--limit", "120",
        "--save", "--seed", "3",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)  # exactly one JSON object on stdout
    assert out["split"] == "test" and out["dataset"] == "digits" and out["n"] == 120
    for key in ("elbo", "recon", "kl", "iwae_nll"):
        assert isinstance(out[key], float)
    assert out["iw_samples"] == 50 and out["binarized"] is False
    assert out["elbo"] == pytest.approx(-(out["recon"] + out["kl"]))
    assert 0 < out["iwae_nll"] <= -out["elbo"] + 0.5  # IWAE is the tighter bound
    assert isinstance(out["active_units"], int) and 1 <= out["active_units"] <= 4
    assert len(out["kl_per_dim"]) == len(out["activity"]) == out["latent_dim"] == 4
    assert sum(out["kl_per_dim"]) == pytest.approx(out["kl"], rel=1e-3)
    assert "IWAE k=50" in r.stderr  # the progress bar
    saved = json.loads((digits_run / "metrics.json").read_text())
    assert saved["final"] == {"elbo": -1.0}  # merged, not replaced
    assert saved["evaluation"]["test"]["iwae_nll"] == pytest.approx(out["iwae_nll"])


@pytest.mark.slow
def test_evaluate_text_report(digits_run: Path) -> None:
    metrics = digits_run / "metrics.json"
    before = metrics.read_bytes() if metrics.exists() else None
    r = _cli("-m", "vae.evaluate", digits_run, "--split", "train", "--iw-samples", "5")
    assert r.returncode == 0, r.stderr
    for word in ("ELBO", "IWAE NLL", "active units", "z3", "digits train, 1527 images"):
        assert word in r.stdout
    assert (metrics.read_bytes() if metrics.exists() else None) == before  # no --save


@pytest.mark.slow
def test_encode_json_lines_and_bad_images(digits_run: Path, tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes((FIXTURES / "drawn_0_alpha.png").read_bytes()[:200])
    blank = tmp_path / "blank.png"
    from PIL import Image

    Image.new("L", (40, 40), 255).save(blank)
    images = [FIXTURES / "photo_7.jpg", corrupt, FIXTURES / "photo_1_exif.jpg", blank]
    r = _cli("-m", "vae.encode", digits_run, *images, "--json", "--k", "3")
    assert r.returncode == 1  # some images failed, the others were still encoded
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert [line["image"] for line in lines] == [str(p) for p in images]
    good, bad = [lines[0], lines[2]], [lines[1], lines[3]]
    for line in good:
        assert set(line) == {"image", "mean", "std", "elbo", "nearest"}
        assert len(line["mean"]) == len(line["std"]) == 4
        assert all(isinstance(v, float) for v in line["mean"] + line["std"])
        assert all(s > 0 for s in line["std"]) and isinstance(line["elbo"], float)
        assert len(line["nearest"]) == 3
        for hit in line["nearest"]:
            assert isinstance(hit["index"], int) and isinstance(hit["label"], int)
            assert isinstance(hit["distance"], float) and hit["label_name"] == str(hit["label"])
        dists = [h["distance"] for h in line["nearest"]]
        assert dists == sorted(dists)
    assert "corrupt" in bad[0]["error"] or "not a readable image" in bad[0]["error"]
    assert "no ink" in bad[1]["error"]
    assert "2 of 4 images" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
def test_encode_text_output(digits_run: Path) -> None:
    r = _cli("-m", "vae.encode", digits_run, FIXTURES / "photo_7.jpg", "--k", "2")
    assert r.returncode == 0, r.stderr
    assert "photo_7.jpg" in r.stdout and "ELBO" in r.stdout and "nearest" in r.stdout


@pytest.mark.parametrize("module", ["vae.evaluate", "vae.encode"])
def test_pickle_checkpoint_is_refused(module: str, pickle_file: Path) -> None:
    args = [FIXTURES / "photo_7.jpg"] if module == "vae.encode" else []
    r = _cli("-m", module, pickle_file, *args)
    assert r.returncode == 2
    assert "pickle" in r.stderr and "never" in r.stderr
    assert "Traceback" not in r.stderr


def test_missing_run_is_a_clear_error(tmp_path: Path) -> None:
    r = _cli("-m", "vae.evaluate", tmp_path / "nope")
    assert r.returncode == 2 and "does not exist" in r.stderr and "Traceback" not in r.stderr


def test_encode_image_function(tmp_path: Path) -> None:
    run = load_run(_save_digits_run(tmp_path / "untrained", steps=0))
    train = run_dataset(run, "train")
    assert len(train) == 1527  # the training split of vae.train (seed 0), not the test split
    means, _ = encode_dataset(run.model, train.x)
    enc = encode_image(run, open_image(FIXTURES / "photo_7.jpg"), means, train.y, k=4)
    assert enc.mean.shape == enc.std.shape == (4,)
    assert enc.pre.x.shape == (1, 1, 8, 8)
    assert [h["index"] for h in enc.nearest] == sorted(
        range(len(means)), key=lambda i: float((means[i] - enc.mean).norm())
    )[:4]
    with pytest.raises(PreprocessError):
        from PIL import Image

        encode_image(run, Image.new("L", (30, 30), 0), means, train.y)


@pytest.mark.slow
def test_mnist_photos_land_near_their_class(mnist_root: Path) -> None:
    """With the lead's MNIST model, digit photos' nearest training images are mostly their class."""
    if not (MNIST_ASSET / "model.safetensors").exists():
        pytest.skip(f"{MNIST_ASSET} is not there; train it first")
    run = load_run(MNIST_ASSET)
    train = run_dataset(run, "train", mnist_root, download=False)
    means, _ = encode_dataset(run.model, train.x)
    labels = json.loads((FIXTURES / "labels.json").read_text())
    votes, hits = {}, 0
    for name, label in labels.items():
        enc = encode_image(run, open_image(FIXTURES / name), means, train.y, k=10)
        votes[name] = Counter(h["label"] for h in enc.nearest).most_common(1)[0][0]
        hits += sum(h["label"] == label for h in enc.nearest)
    wrong = {n: v for n, v in votes.items() if v != labels[n]}
    assert len(wrong) <= 1, wrong  # measured: every fixture votes right, 100% of neighbours
    assert hits >= 0.8 * 10 * len(labels)
