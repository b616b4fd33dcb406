"""Full disks, read-only folders and files in the way: one clear line naming the folder, a non-zero
exit, no temp files, and the last good checkpoint as it was."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from tests.faults.conftest import PY, STEPS_PER_EPOCH, TINY, cfg, cli_flags, ro_run, tmp_files
from vae import archive, jobs, load_run
from vae.checkpoint import WriteError, check_train_state, read_jsonl, train_state_meta
from vae.record import RunDir
from vae.train import TrainingError, main, train

pytestmark = pytest.mark.timeout(300)


def error_line(capsys) -> str:
    """The one line a CLI printed to stderr."""
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: ")
    return lines[0]


def snapshot(run: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(run.iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def one_epoch(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("good") / "run"
    train(TINY, cfg(epochs=1), run, progress_bar=False)
    return run


def copy_run(src: Path, dst: Path) -> Path:
    dst.mkdir(parents=True)
    for p in src.iterdir():
        if p.is_file():
            (dst / p.name).write_bytes(p.read_bytes())
    return dst


# --- a full disk --------------------------------------------------------------------------------
@pytest.mark.parametrize("fails", ["model.safetensors", "config.json", "train_state.safetensors"])
def test_a_full_disk_during_a_checkpoint(one_epoch, tmp_path, full_disk, capsys, fails):
    """The checkpoint at the end of epoch 2 hits ENOSPC while writing `fails`."""
    run = copy_run(one_epoch, tmp_path / "run")
    before = load_file(RunDir(run).weights)
    failed = full_disk(fails)
    code = main(["--resume", str(run), "--epochs", "2", "--no-progress", "--preview-every-s", "0"])
    assert code == 2 and failed, "the disk never filled"
    line = error_line(capsys)
    assert line == f"error: cannot write {fails} to {run}: the disk is full"
    assert tmp_files(run) == [] and not any(p.exists() for p in failed)
    # the last good checkpoint: loadable, and the state still the end of epoch 1
    load_run(run)
    check_train_state(run)
    assert train_state_meta(run)["step"] == STEPS_PER_EPOCH
    if fails == "model.safetensors":
        after = load_file(RunDir(run).weights)
        assert all(torch.equal(before[k], after[k]) for k in before)
    status = json.loads(RunDir(run).status.read_text())
    assert status["state"] == "failed" and "the disk is full" in status["message"]


def test_full_disk_then_room_again_resumes_exactly(one_epoch, tmp_path, monkeypatch):
    """ENOSPC at the epoch-2 checkpoint, then the same command with room: as if uninterrupted."""
    straight = copy_run(one_epoch, tmp_path / "straight")
    train(TINY, cfg(epochs=2), straight, resume=True, progress_bar=False)
    run = copy_run(one_epoch, tmp_path / "run")
    import vae.checkpoint as ck

    real = ck.atomic_write_bytes

    def full(path, data):
        if Path(path).name == "train_state.safetensors":
            raise ck.write_error(OSError(28, "No space left on device"), path)
        real(path, data)

    monkeypatch.setattr(ck, "atomic_write_bytes", full)
    with pytest.raises(WriteError, match="the disk is full"):
        train(TINY, cfg(epochs=2), run, resume=True, progress_bar=False)
    monkeypatch.undo()
    assert [r["epoch"] for r in read_jsonl(RunDir(run).epochs_log)] == [1, 2]
    train(TINY, cfg(epochs=2), run, resume=True, progress_bar=False)
    a, b = load_file(RunDir(straight).weights), load_file(RunDir(run).weights)
    assert all(torch.equal(a[k], b[k]) for k in a)
    ea, eb = (read_jsonl(RunDir(r).epochs_log) for r in (straight, run))
    assert [r["test_elbo"] for r in ea] == [r["test_elbo"] for r in eb]  # epoch 2 once


def test_evaluate_save_on_a_full_disk(make_run, full_disk, capsys):
    from vae.evaluate import main as evaluate

    run = make_run("run", steps=5)
    before = RunDir(run).metrics.read_bytes()
    failed = full_disk("metrics.json")
    code = evaluate([str(run), "--iw-samples", "0", "--limit", "50", "--save", "--device", "cpu"])
    assert code == 2 and failed
    out = capsys.readouterr()
    assert "ELBO" in out.out  # the results are printed, not lost
    (line,) = out.err.strip().splitlines()
    assert line == (
        f"error: cannot write metrics.json to {run}: the disk is full "
        "(the results above were not saved)"
    )
    assert RunDir(run).metrics.read_bytes() == before and tmp_files(run) == []


# --- read-only folders --------------------------------------------------------------------------
def test_training_into_a_read_only_runs_folder(tmp_path, read_only, capsys):
    runs = tmp_path / "runs"
    runs.mkdir()
    read_only(runs)
    assert main(cli_flags(runs / "new", epochs=1)) == 2
    line = error_line(capsys)
    assert str(runs / "new") in line and "permission denied" in line
    assert list(runs.iterdir()) == []


def test_resuming_in_a_read_only_run_folder_keeps_it(one_epoch, tmp_path, read_only, capsys):
    run = copy_run(one_epoch, tmp_path / "run")
    before = snapshot(run)
    read_only(run)
    assert main(["--resume", str(run), "--epochs", "2", "--no-progress"]) == 2
    line = error_line(capsys)
    assert f"to {run}: permission denied" in line
    assert snapshot(run) == before


def test_a_real_read_only_mount(one_epoch, tmp_path):
    """The same through the kernel: a read-only bind mount (EROFS), for a fresh run and a resume."""
    runs = tmp_path / "runs"
    run = copy_run(one_epoch, runs / "run")
    before = snapshot(run)
    fresh = ro_run([PY, "-m", "vae.train", *cli_flags(runs / "new", epochs=1)], runs)
    assert fresh.returncode == 2, fresh.stderr
    assert fresh.stderr.strip().splitlines() == [
        f"error: cannot write status.json to {runs / 'new'}: the file system is read-only"
    ]
    resumed = ro_run([PY, "-m", "vae.train", "--resume", str(run), "--epochs", "2",
                      "--no-progress"], runs)  # fmt: skip
    assert resumed.returncode == 2, resumed.stderr
    assert (
        resumed.stderr.strip().splitlines()[-1].endswith(f"to {run}: the file system is read-only")
    )
    assert snapshot(run) == before and sorted(p.name for p in runs.iterdir()) == ["run"]


def test_importing_into_a_read_only_runs_folder(one_epoch, tmp_path, read_only):
    root = tmp_path / "runs"
    root.mkdir()
    blob = archive.export_zip(one_epoch, full=True)
    read_only(root)
    with pytest.raises(jobs.JobError) as e:
        jobs.import_zip(blob, "mine", root)
    assert str(e.value) == (
        f"could not import into the runs folder {root}: permission denied (the folder is "
        "read-only for this user)"
    )
    assert list(root.iterdir()) == []
    with pytest.raises(WriteError, match=f"to {root}: permission denied"):  # the app's uploads
        archive.extract_zip(blob, root / "abc")


def test_an_import_that_fills_the_disk_leaves_nothing(one_epoch, tmp_path, monkeypatch):
    import builtins
    import errno

    root = tmp_path / "runs"
    blob = archive.export_zip(one_epoch, full=True)
    real_open = builtins.open

    class Full:
        def __init__(self, f):
            self.f = f

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    def opener(path, mode="r", *a, **k):
        f = real_open(path, mode, *a, **k)
        return Full(f) if "w" in mode and ".import-" in str(path) else f

    monkeypatch.setattr(archive, "open", opener, raising=False)
    with pytest.raises(jobs.JobError, match=f"into the runs folder {root}: the disk is full"):
        jobs.import_zip(blob, "mine", root)
    assert list(root.iterdir()) == []  # no staging folder, no half run


def test_starting_a_job_in_a_read_only_runs_folder(tmp_path, read_only):
    root = tmp_path / "runs"
    root.mkdir()
    read_only(root)
    with pytest.raises(jobs.JobError, match=f"the runs folder {root} cannot be written: perm"):
        jobs.start("new", TINY, cfg(epochs=1), root)
    assert list(root.iterdir()) == []


# --- a file where a folder should be ------------------------------------------------------------
def test_a_file_where_the_runs_folder_should_be(tmp_path, capsys, one_epoch):
    runs = tmp_path / "runs"
    runs.write_text("not a folder")
    assert main(cli_flags(runs / "new", epochs=1)) == 2
    assert error_line(capsys) == (
        f"error: cannot write status.json to {runs / 'new'}: {runs} is a file, not a folder"
    )
    assert main(cli_flags(runs, epochs=1)) == 2  # --out names the file itself
    assert error_line(capsys).endswith(f"{runs} is a file, not a folder")
    assert runs.read_text() == "not a folder"
    # the app: the listing is empty, and what would write there says why
    assert jobs.list_runs(runs) == []
    with pytest.raises(jobs.JobError, match=f"{runs} cannot be written: {runs} is a file"):
        jobs.start("new", TINY, cfg(epochs=1), runs)
    with pytest.raises(jobs.JobError, match=f"into the runs folder {runs}: {runs} is a file"):
        jobs.import_zip(archive.export_zip(one_epoch), "mine", runs)
    assert runs.read_text() == "not a folder"


# --- data --------------------------------------------------------------------------------------
def test_an_empty_training_split_says_what_is_wrong(tmp_path, capsys):
    folder = tmp_path / "one-image"
    folder.mkdir()
    Image.new("L", (16, 16), 200).save(folder / "only.png")
    out = tmp_path / "run"
    flags = ["--dataset", "folder", "--data-dir", str(folder), "--image-size", "16"]
    flags += ["--epochs", "1", "--hidden", "32", "--latent-dim", "2", "--no-progress"]
    flags += ["--out", str(out)]
    assert main(flags) == 2
    line = error_line(capsys)
    assert "NaN" not in line
    assert line.startswith(f"error: the training split of 'folder' ({folder.resolve()}) is empty")
    assert "1 image(s), and the test split takes 1" in line and "at least 2" in line
    assert not out.exists()  # refused before anything was written
    with pytest.raises(TrainingError, match="training split .* is empty"):
        from vae.config import ModelConfig

        model = ModelConfig(image_shape=(1, 16, 16), arch="mlp", hidden=(8,), latent_dim=2)
        train(model, cfg(dataset="folder", data_dir=str(folder), image_size=16), out)


def test_the_subprocess_cli_prints_one_line_too(tmp_path):
    """The real command line, not just main(): no traceback reaches the terminal."""
    import subprocess

    runs = tmp_path / "runs"
    runs.write_text("x")
    p = subprocess.run([PY, "-m", "vae.train", *cli_flags(runs / "r", epochs=1)],
                       capture_output=True, text=True, cwd=Path(__file__).parents[2])  # fmt: skip
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.strip().splitlines() == [
        f"error: cannot write status.json to {runs / 'r'}: {runs} is a file, not a folder"
    ]
