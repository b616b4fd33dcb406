"""The shared disk cache (vae.diskcache) and the cached training means of vae.encode."""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

import vae.latents
from tests.helpers import FIXTURES, tiny_run
from vae import diskcache
from vae.checkpoint import load_run
from vae.encode import main as encode_main
from vae.latents import cached_means, dataset_key, encode_dataset, run_dataset


@pytest.fixture
def run_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("VAE_CACHE_DIR", str(tmp_path / "user-cache"))
    return tiny_run(tmp_path / "run", "digits", latent_dim=3, steps=20, hidden=(16,), metrics=False)


def _entries(run_dir: Path) -> list[Path]:
    return sorted((run_dir / ".cache").glob("means-v*.npz"))


def _forbid_encoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*a, **k):
        raise AssertionError("the dataset was loaded or encoded again")

    monkeypatch.setattr(vae.latents, "encode_dataset", boom)
    monkeypatch.setattr(vae.latents, "run_dataset", boom)


def test_encode_cli_second_call_reads_the_cache(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [str(run_dir), str(FIXTURES / "photo_7.jpg"), "--json", "--k", "4", "--device", "cpu"]
    assert encode_main(args) == 0
    first = json.loads(capsys.readouterr().out)
    assert len(_entries(run_dir)) == 1

    # the neighbours, found here by brute force over a fresh encoding of the training split
    run = load_run(run_dir)
    train = run_dataset(run, "train")
    means = encode_dataset(run.model, train.x)[0].numpy()  # (N, D)
    d = np.sqrt(((means - np.array(first["mean"], np.float32)) ** 2).sum(1))  # (N,)
    hits = first["nearest"]
    assert [h["index"] for h in hits] == np.argsort(d, kind="stable")[:4].tolist()
    assert [h["label"] for h in hits] == [int(train.y[h["index"]]) for h in hits]

    _forbid_encoding(monkeypatch)
    assert encode_main(args) == 0
    assert json.loads(capsys.readouterr().out) == first


def test_no_cache_flag_encodes_again(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [str(run_dir), str(FIXTURES / "photo_7.jpg"), "--json", "--device", "cpu"]
    assert encode_main(args) == 0
    capsys.readouterr()
    _forbid_encoding(monkeypatch)
    with pytest.raises(AssertionError, match="encoded again"):
        encode_main([*args, "--no-cache"])


def test_cached_means_match_a_fresh_encoding(run_dir: Path) -> None:
    run = load_run(run_dir)
    got = cached_means(run, "train")
    again = cached_means(run, "train")  # from the file
    train = run_dataset(run, "train")
    fresh = encode_dataset(run.model, train.x)[0]
    for m in (got, again):
        torch.testing.assert_close(m.mean, fresh, rtol=0, atol=0)
        assert torch.equal(m.labels, train.y) and m.label_names == train.label_names


def _truncate(f: Path) -> None:
    f.write_bytes(f.read_bytes()[:300])


def _garbage(f: Path) -> None:
    f.write_bytes(b"PK\x03\x04" + os.urandom(500))


def _rewrite(**change: np.ndarray):
    def edit(f: Path) -> None:
        with np.load(f) as z:
            arrays = {k: z[k] for k in z.files}
        arrays.update(change)
        np.savez(f, **arrays)

    return edit


@pytest.mark.parametrize(
    "spoil",
    [
        _truncate,
        _garbage,
        _rewrite(mean=np.zeros((5, 7), np.float32)),  # another latent size
        _rewrite(mean=np.full((5, 3), np.nan, np.float32)),
        _rewrite(mean=np.zeros((5, 3), np.float64)),
        _rewrite(labels=np.zeros(2, np.int64)),  # fewer labels than means
        _rewrite(key=np.array('{"dataset":"other"}')),  # written for other data
    ],
    ids=["truncated", "garbage", "dim", "nan", "dtype", "labels", "key"],
)
def test_a_spoilt_cache_file_is_recomputed(run_dir: Path, spoil) -> None:
    run = load_run(run_dir)
    expected = cached_means(run, "train")
    (f,) = _entries(run_dir)
    spoil(f)
    got = cached_means(run, "train")
    torch.testing.assert_close(got.mean, expected.mean, rtol=0, atol=0)
    assert torch.equal(got.labels, expected.labels)
    assert _entries(run_dir) == [f] and diskcache.load_npz(f) is not None  # rewritten, readable


def test_retrained_weights_get_a_new_entry(run_dir: Path) -> None:
    old = cached_means(load_run(run_dir), "train")
    (old_file,) = _entries(run_dir)
    tiny_run(run_dir, "digits", latent_dim=3, steps=20, hidden=(16,), seed=1, metrics=False)
    run = load_run(run_dir)
    new = cached_means(run, "train")
    (new_file,) = _entries(run_dir)  # the old weights' entry is gone
    assert new_file != old_file
    sha = hashlib.sha256((run_dir / "model.safetensors").read_bytes()).hexdigest()
    assert sha[:16] in new_file.name and sha[:16] not in old_file.name
    fresh = encode_dataset(run.model, run_dataset(run, "train").x)[0]
    torch.testing.assert_close(new.mean, fresh, rtol=0, atol=0)
    assert not torch.equal(new.mean, old.mean)


def test_dataset_key_follows_the_data_files(run_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "imgs.npz"
    np.savez(data, x=np.zeros((10, 8, 8), np.uint8))
    cfg = json.loads((run_dir / "config.json").read_text())
    cfg["dataset"]["name"] = "npz"
    cfg["train"]["data_dir"] = str(data)
    (run_dir / "config.json").write_text(json.dumps(cfg))
    run = load_run(run_dir)
    before = dataset_key(run, "train")
    assert dataset_key(run, "train") == before and dataset_key(run, "test") != before
    os.utime(data, ns=(1, 1))  # the same name, another file
    assert dataset_key(run, "train") != before


def test_user_cache_dir_when_the_run_folder_cannot_hold_one(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (run_dir / ".cache").write_text("a file, not a folder")
    run = load_run(run_dir)
    cached_means(run, "train")
    sha = hashlib.sha256((run_dir / "model.safetensors").read_bytes()).hexdigest()
    assert len(list((tmp_path / "user-cache" / "cache" / sha[:16]).glob("means-v*.npz"))) == 1
    _forbid_encoding(monkeypatch)
    cached_means(run, "train")  # read back from there


def test_no_writable_cache_still_computes(run_dir: Path, tmp_path: Path, monkeypatch) -> None:
    (run_dir / ".cache").write_text("a file, not a folder")
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    monkeypatch.setenv("VAE_CACHE_DIR", str(blocker / "below-a-file"))
    run = load_run(run_dir)
    got = cached_means(run, "train")
    assert got.mean.shape == (len(run_dataset(run, "train")), 3)


def _npz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def _npy(a: np.ndarray, allow_pickle: bool = False) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=allow_pickle)
    return buf.getvalue()


def test_load_npz_reads_plain_arrays(tmp_path: Path) -> None:
    f = tmp_path / "ok.npz"
    arrays = {
        "a": np.arange(12, dtype=np.float32).reshape(3, 4),
        "f": np.asfortranarray(np.arange(6, dtype=np.int64).reshape(2, 3)),
        "s": np.array("text"),
        "e": np.zeros((0, 5), np.float32),
    }
    diskcache.save_npz(f, arrays)
    got = diskcache.load_npz(f)
    assert set(got) == set(arrays)
    for k, a in arrays.items():
        assert got[k].dtype == a.dtype and np.array_equal(got[k], a)
    got["a"][0, 0] = 1.0  # writable, like np.load's arrays


def test_load_npz_refuses_what_is_not_plain_arrays(tmp_path: Path) -> None:
    cases = {
        "pickled": _npz({"o.npy": _npy(np.array([{"x": 1}], dtype=object), allow_pickle=True)}),
        "not_npy": _npz({"a.npy": _npy(np.zeros(3)), "payload.txt": b"hello"}),
        "short": _npz({"a.npy": _npy(np.zeros(100))[:-8]}),
    }
    # a header that claims 10^12 floats over 80 bytes of data: refused before any allocation
    head = io.BytesIO()
    header = {"descr": "<f8", "fortran_order": False, "shape": (10**12,)}
    np.lib.format.write_array_header_1_0(head, header)
    cases["claims_huge"] = _npz({"a.npy": head.getvalue() + bytes(80)})
    for name, data in cases.items():
        f = tmp_path / f"{name}.npz"
        f.write_bytes(data)
        assert diskcache.load_npz(f) is None, name
    assert diskcache.load_npz(tmp_path / "missing.npz") is None
    (tmp_path / "big.npz").write_bytes(_npz({"a.npy": _npy(np.zeros(1000))}))
    assert diskcache.load_npz(tmp_path / "big.npz", max_bytes=1000) is None
    assert diskcache.load_npz(tmp_path / "big.npz") is not None
