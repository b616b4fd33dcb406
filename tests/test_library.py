"""The model library: full backups that import as resumable runs, shipped models listed beside
the user's runs, and an import that says it worked."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from vae import archive, jobs
from vae.checkpoint import CheckpointError, check_train_state, train_state_meta
from vae.record import RunDir, read_logs

pytestmark = pytest.mark.timeout(240)
ROOT = Path(__file__).resolve().parents[1]


def _train(out: Path, epochs: int) -> None:
    cmd = [sys.executable, "-m", "vae.train", "--dataset", "digits", "--epochs", str(epochs)]
    cmd += ["--device", "cpu", "--threads", "1", "--hidden", "32", "--latent-dim", "2"]
    subprocess.run([*cmd, "--out", str(out)], cwd=ROOT, check=True, capture_output=True)


def _names(blob: bytes) -> set[str]:
    return {Path(n).name for n in zipfile.ZipFile(io.BytesIO(blob)).namelist()}


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("lib") / "first"
    _train(out, 1)
    return out


def test_full_backup_imports_as_a_resumable_run_with_its_curves(trained, tmp_path):
    names = {
        Path(n).name for n in zipfile.ZipFile(io.BytesIO(archive.export_zip(trained))).namelist()
    }
    assert names == {"config.json", "model.safetensors", "metrics.json", "metrics.jsonl"}
    blob = archive.export_zip(trained, full=True)
    assert _names(blob) == names | {"steps.jsonl", "train_state.safetensors"}  # one state file
    dest = jobs.import_zip(blob, "restored", tmp_path / "runs")
    assert read_logs(dest) == read_logs(trained)  # the curves came along
    check_train_state(dest)
    # and training resumes from it, to the second epoch
    subprocess.run(
        [sys.executable, "-m", "vae.train", "--resume", str(dest), "--epochs", "2"],
        cwd=ROOT, check=True, capture_output=True,
    )  # fmt: skip
    epochs, _ = read_logs(dest)
    assert [e["epoch"] for e in epochs] == [1, 2]


def _backup(trained: Path, state: dict[str, bytes]) -> bytes:
    """A backup of `trained` whose training state files are `state` (name -> bytes)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for f in archive.MEMBERS:
            if (trained / f).is_file():
                zf.writestr(f"run/{f}", (trained / f).read_bytes())
        for f, data in state.items():
            zf.writestr(f"run/{f}", data)
    return buf.getvalue()


def test_a_backup_with_a_torn_training_state_is_refused(trained, tmp_path):
    from safetensors.torch import load_file, save

    blob = (trained / "train_state.safetensors").read_bytes()
    cut = _backup(trained, {"train_state.safetensors": blob[: len(blob) // 2]})  # killed mid-copy
    with pytest.raises(CheckpointError, match="train_state.safetensors is not a valid"):
        jobs.import_zip(cut, "cut", tmp_path / "runs")
    # the layout of runs saved before: tensors + train_state.json naming their sha256
    tensors = save(load_file(trained / "train_state.safetensors"))
    meta = {**train_state_meta(trained), "sha256": "0" * 64}  # killed between the two saves
    torn = {"train_state.safetensors": tensors, "train_state.json": json.dumps(meta).encode()}
    with pytest.raises(CheckpointError, match="torn save"):
        jobs.import_zip(_backup(trained, torn), "torn", tmp_path / "runs")
    assert not (tmp_path / "runs" / "torn").exists() and not (tmp_path / "runs" / "cut").exists()
    assert [p.name for p in (tmp_path / "runs").iterdir()] == []  # no staging folder left


def test_library_lists_shipped_models_read_only_and_confirms_an_import(
    tmp_path, monkeypatch, make_run
):
    for k in ("assets", "runs", "cache"):
        (tmp_path / k).mkdir()
        monkeypatch.setenv(f"VAE_{k.upper()}_DIR", str(tmp_path / k))
    monkeypatch.setenv("VAE_DEVICE", "cpu")
    make_run("assets/shipped-one", latent_dim=2, steps=5)
    src = make_run("elsewhere/mine", latent_dim=3, steps=5)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    at.switch_page("pages/runs.py").run()
    assert not at.exception
    (table,) = at.dataframe
    assert list(table.value["Name"]) == ["shipped-one"]
    assert list(table.value["State"]) == ["shipped"]
    saved = json.loads((tmp_path / "assets" / "shipped-one" / "metrics.json").read_text())
    assert table.value["Score"][0] == f"NLL ≤ {-saved['test_elbo']:.1f}"  # −ELBO bounds the NLL
    blob = archive.export_zip(src)
    at.main.get("file_uploader")[0].set_value(("m.zip", blob, "application/zip")).run()
    at.button(key="lib_import").click().run()
    assert not at.exception
    assert any(s.value == "Imported **mine**." for s in at.success)
    (table,) = at.dataframe
    assert list(table.value["Name"]) == ["mine", "shipped-one"]  # own runs first
    assert RunDir(tmp_path / "runs" / "mine").weights.is_file()
