"""VAE_PUBLIC=1, a shared deployment: no folder paths, no training, a read-only library, and
uploads that only their own session sees, within a quota."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import app_test, ok, tiny_digits_checkpoint
from vae import archive


@pytest.fixture(scope="module")
def dirs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("public")
    tiny_digits_checkpoint(root / "assets" / "digits-mlp", latent_dim=4, steps=20)
    tiny_digits_checkpoint(root / "runs" / "mine", latent_dim=3, steps=10)
    (root / "data").mkdir()
    return {"assets": root / "assets", "runs": root / "runs", "cache": root / "cache", "root": root}


def _zip_of(dirs, latent_dim: int, name: str) -> bytes:
    run = tiny_digits_checkpoint(dirs["root"] / "zips" / name, latent_dim=latent_dim, steps=5)
    return archive.export_zip(run)


def _public(dirs, monkeypatch):
    return app_test(dirs, monkeypatch, VAE_PUBLIC="1", VAE_DATA_DIR=str(dirs["root"] / "data"))


def _upload(at, blob: bytes, name: str = "model.zip"):
    up = next(u for u in at.sidebar.get("file_uploader") if u.key == "add_zip")
    return up.set_value((name, blob, "application/zip")).run()


def test_no_folder_paths_and_no_training(dirs, monkeypatch):
    at = _public(dirs, monkeypatch)
    ok(at)
    assert not at.sidebar.text_input  # no "Checkpoint folder" box
    at.switch_page("pages/train.py").run()
    ok(at)
    assert any("Training is turned off on this shared deployment" in i.value for i in at.info)
    assert not any(b.key == "tr_start" for b in at.button)
    at.switch_page("pages/runs.py").run()
    ok(at)
    assert any("read-only" in i.value for i in at.info)
    assert not any(u.key and u.key.startswith("lib_upload") for u in at.get("file_uploader"))


def test_add_path_is_refused_even_when_called(dirs, monkeypatch):
    from vae.checkpoint import CheckpointError
    from vae.ui import models

    monkeypatch.setenv("VAE_PUBLIC", "1")
    with pytest.raises(CheckpointError, match="turned off on this shared deployment"):
        models.add_path(str(dirs["runs"] / "mine"))


def test_uploads_are_per_session_and_within_a_quota(dirs, monkeypatch):
    from vae.ui import models

    monkeypatch.setattr(models, "SESSION_UPLOADS", 2)
    a = _public(dirs, monkeypatch)
    _upload(a, _zip_of(dirs, 2, "first"))
    ok(a)
    key = a.sidebar.selectbox(key="model").value
    assert key.startswith("upload:")
    b = _public(dirs, monkeypatch)  # another visitor
    assert key not in b.sidebar.selectbox(key="model").options  # ... nor with a link to it:
    c = app_test(dirs, monkeypatch, {"model": key}, VAE_PUBLIC="1")
    assert c.sidebar.selectbox(key="model").value != key
    assert any("is not available here" in w.value for w in c.main.warning)
    # the quota: a second upload is fine, a third is refused with a clear message
    _upload(a, _zip_of(dirs, 3, "second"), "second.zip")
    ok(a)
    _upload(a, _zip_of(dirs, 4, "third"), "third.zip")
    assert not a.exception
    assert any("at most 2 uploaded models per visitor" in e.value for e in a.sidebar.error)
    uploads = dirs["cache"] / "uploads"
    assert not any((uploads / d).is_dir() and (uploads / d / "config.json").exists()
                   for d in (p.name for p in uploads.iterdir()))  # fmt: skip


def test_visitors_never_see_server_paths(dirs, monkeypatch, tmp_path):
    from vae.checkpoint import WriteError
    from vae.data import DatasetError
    from vae.errors import redact_paths

    secret = str(tmp_path / "srv" / "secret-place" / "mnist")
    e = DatasetError(f"MNIST is not installed (0 of 4 files in {secret}). Download it")
    w = WriteError(f"cannot write model.safetensors to {secret}: the disk is full")
    monkeypatch.delenv("VAE_PUBLIC", raising=False)
    assert secret in str(e)  # a local app names the folder: the user can fix it there
    monkeypatch.setenv("VAE_PUBLIC", "1")
    for err in (e, w):
        assert secret not in str(err) and "…/mnist" in str(err)
    assert (
        redact_paths("see https://host.org/a/b/c and /x/y/z")
        == "see https://host.org/a/b/c and …/z"
    )
    # through the app: a model whose dataset (MNIST) is not in the server's data folder
    from tests.pages.conftest import _mnist_checkpoint

    _mnist_checkpoint(dirs["runs"] / "needs-mnist")
    at = _public(dirs, monkeypatch)
    at.sidebar.selectbox(key="model").set_value("run:needs-mnist").run()
    assert not at.exception
    shown = " ".join(
        [m.value for m in at.markdown] + [c.value for c in at.caption]
        + [w.value for w in at.sidebar.warning] + [c.value for c in at.sidebar.caption]
    )  # fmt: skip
    assert "not on this machine" in shown
    assert str(dirs["root"]) not in shown and "/data/mnist" not in shown
