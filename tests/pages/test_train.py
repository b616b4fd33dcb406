"""The Train page and the model library through AppTest: validation, a real job, the library."""

from __future__ import annotations

import io
import json
import os
import shutil
import time
import zipfile
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from vae import jobs
from vae.checkpoint import CONFIG_FILE, PREVIEW_FILE, WEIGHTS_FILE, load_run, save_preview
from vae.record import RunDir
from vae.ui import models, training

pytestmark = pytest.mark.timeout(180)

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "app.py")


@pytest.fixture
def dirs(tmp_path, monkeypatch) -> dict[str, Path]:
    d = {k: tmp_path / k for k in ("assets", "runs", "cache")}
    for p in d.values():
        p.mkdir()
    monkeypatch.setenv("VAE_ASSETS_DIR", str(d["assets"]))
    monkeypatch.setenv("VAE_RUNS_DIR", str(d["runs"]))
    monkeypatch.setenv("VAE_CACHE_DIR", str(d["cache"]))
    monkeypatch.setenv("VAE_DEVICE", "cpu")
    monkeypatch.delenv("VAE_MAX_JOBS", raising=False)
    yield d
    for s in jobs.active_jobs(d["runs"]):  # never leave a trainer behind
        jobs.stop(s.name, d["runs"])


def train_page(dirs) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page("pages/train.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "Train a model"
    return at


def start(at: AppTest) -> AppTest:
    return at.button(key="tr_start").click().run()


def errors(at: AppTest) -> list[str]:
    assert not at.exception, [e.value for e in at.exception]
    return [e.value for e in at.main.error]


def started(dirs) -> list[str]:
    return [p.name for p in jobs.run_dirs(dirs["runs"])]


def test_form_shows_devices_and_data_availability(dirs):
    at = train_page(dirs)
    device = at.selectbox(key="tr_device")
    assert device.value == "cpu"
    assert any(o.endswith("(unavailable)") for o in device.options)  # mps on Linux
    assert all(len(o) <= 24 for o in device.options), device.options  # no "busy w…" cut-off
    threads = jobs.default_threads("cpu")
    assert any(c.value.startswith(f"CPU, {threads} thread") for c in at.main.caption)
    at.selectbox(key="tr_device").set_value("mps").run()
    assert any(c.value.startswith("mps is not available here: ") for c in at.main.caption)
    at.selectbox(key="tr_device").set_value("cpu").run()
    assert any("always available" in c.value for c in at.main.caption)
    at.selectbox(key="tr_dataset").set_value("npz").run()
    assert any("Choose a .npz file" in w.value for w in at.main.warning)
    assert errors(at) == []


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("tr_name", "../evil", "not a valid run name"),
        ("tr_name", "has space", "not a valid run name"),
        ("tr_lr", "fast", "Learning rate: 'fast' is not a number"),
        ("tr_lr", "2", "lr must be in (0, 1)"),
        ("tr_lr", "0", "lr must be in (0, 1)"),
        ("tr_hidden", "64, lots", "hidden sizes must be whole numbers"),
        ("tr_hidden", "0", "hidden sizes must be 1..4096"),
    ],
)
def test_bad_text_fields_show_errors_and_start_nothing(dirs, key, value, message):
    at = train_page(dirs)
    at.text_input(key=key).input(value)
    msgs = errors(start(at))
    assert any(message in m for m in msgs), msgs
    assert started(dirs) == []


def test_other_bad_settings_start_nothing(dirs):
    at = train_page(dirs)
    at.selectbox(key="tr_device").set_value("mps")
    at.segmented_control(key="tr_arch").set_value("conv")
    at.text_input(key="tr_hidden").input("8, 8, 8, 8, 8")
    msgs = errors(start(at))
    assert any("Device: mps is not available" in m for m in msgs), msgs
    assert any("at most 4 stride-2 layers" in m for m in msgs), msgs
    at.selectbox(key="tr_device").set_value("cpu")
    at.selectbox(key="tr_dataset").set_value("npz")
    at.text_input(key="tr_hidden").input("")
    msgs = errors(start(at.run()))
    assert any(m.startswith("Dataset: Choose a .npz file") for m in msgs), msgs
    (dirs["runs"] / "taken").mkdir()
    at.selectbox(key="tr_dataset").set_value("digits")
    at.text_input(key="tr_name").input("taken")
    msgs = errors(start(at.run()))
    assert any("'taken' already exists" in m for m in msgs), msgs
    assert started(dirs) == ["taken"]


def test_the_btcvae_objective_shows_its_tc_weight_and_starts_a_btcvae_job(dirs):
    at = train_page(dirs)
    assert at.selectbox(key="tr_objective").value == "elbo"
    assert not at.number_input(key="tr_free_bits").disabled  # shown for the ELBO
    at.selectbox(key="tr_objective").set_value("btcvae").run()
    assert "Chen et al. 2018" in at.selectbox(key="tr_objective").help
    assert [w.key for w in at.number_input if w.key == "tr_free_bits"] == []
    at.number_input(key="tr_tc_beta").set_value(4.0)
    at.number_input(key="tr_batch").set_value(65_536)
    msgs = errors(start(at))
    assert any("β-TCVAE compares every pair" in m for m in msgs) and started(dirs) == []
    at.number_input(key="tr_batch").set_value(64)
    at.text_input(key="tr_name").input("tc-run")
    at.number_input(key="tr_epochs").set_value(1)
    at.text_input(key="tr_hidden").input("16")
    assert errors(start(at)) == [] and started(dirs) == ["tc-run"]
    request = json.loads(RunDir(dirs["runs"] / "tc-run").request.read_text())
    assert (request["train"]["objective"], request["train"]["tc_beta"]) == ("btcvae", 4.0)


def test_a_job_runs_to_the_end_and_opens_in_explore(dirs):
    at = train_page(dirs)
    at.text_input(key="tr_name").input("page-run")
    at.number_input(key="tr_epochs").set_value(2)
    at.text_input(key="tr_hidden").input("16")
    assert errors(start(at)) == []
    assert started(dirs) == ["page-run"]
    assert at.text_input(key="tr_name").value == ""  # ready for the next run
    assert at.selectbox(key="train_watch").value == "page-run"
    deadline = time.monotonic() + 90
    while jobs.job_status(dirs["runs"] / "page-run").active and time.monotonic() < deadline:
        time.sleep(0.2)
    at.run()
    assert errors(at) == []
    (bar,) = at.get("progress")
    assert bar.proto.text.startswith("Finished · Epoch 2 of 2")
    assert any(c.key == "curves_page-run" for c in at.get("plotly_chart"))
    assert any(c.key == "klmap_page-run" for c in at.get("plotly_chart"))
    assert any(c.key == "live_map_page-run" for c in at.get("plotly_chart"))
    picker = at.sidebar.selectbox(key="model")
    assert picker.options[-1].startswith(f"{models.SOURCES['run']}: page-run")
    next(b for b in at.button if b.label == "Explore this model").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "Explore the latent space"
    assert at.sidebar.selectbox(key="model").value == "run:page-run"


def test_form_keeps_its_values_across_page_switches(dirs):
    at = train_page(dirs)
    at.number_input(key="tr_epochs").set_value(3)
    at.number_input(key="tr_beta").set_value(2.5)
    at.text_input(key="tr_name").input("kept")
    at.text_input(key="tr_lr").input("2e-3")
    at.segmented_control(key="tr_arch").set_value("conv")
    at.selectbox(key="tr_likelihood").set_value("gaussian")
    at.selectbox(key="tr_dataset").set_value("shapes").run()
    at.number_input(key="tr_image_size").set_value(16).run()
    at.switch_page("pages/runs.py").run()
    assert at.title[0].value == "Model library" and errors(at) == []
    at.switch_page("pages/train.py").run()
    assert errors(at) == []
    assert at.number_input(key="tr_epochs").value == 3  # was reset to 10
    assert at.number_input(key="tr_beta").value == 2.5
    assert at.text_input(key="tr_name").value == "kept"
    assert at.text_input(key="tr_lr").value == "2e-3"
    assert at.segmented_control(key="tr_arch").value == "conv"
    assert at.selectbox(key="tr_likelihood").value == "gaussian"
    assert at.selectbox(key="tr_dataset").value == "shapes"
    assert at.number_input(key="tr_image_size").value == 16
    # a field that is hidden meanwhile keeps its value too
    at.selectbox(key="tr_dataset").set_value("digits").run()
    at.selectbox(key="tr_dataset").set_value("shapes").run()
    assert at.number_input(key="tr_image_size").value == 16


def test_device_labels_are_short_and_the_note_under_them_says_it_all(monkeypatch):
    from vae.device import DeviceInfo

    monkeypatch.setenv("VAE_MAX_JOBS", "1")
    gpu = DeviceInfo("cuda:0", "cuda:0 — NVIDIA GeForce RTX 4090 Laptop GPU, 15.2 GiB free", True)
    busy = {"cuda:0": ["mnist-conv-z32-long-name", "other"]}
    assert training.device_label(gpu) == "cuda:0"
    assert training.device_note(gpu, busy) == (
        "cuda:0 — NVIDIA GeForce RTX 4090 Laptop GPU, 15.2 GiB free. Busy with "
        "mnist-conv-z32-long-name, other; stop one of them or pick another device to start a "
        "new run."
    )
    monkeypatch.setenv("VAE_MAX_JOBS", "3")  # room for one more: nothing to stop
    assert training.device_note(gpu, busy).endswith("Busy with mnist-conv-z32-long-name, other.")
    monkeypatch.setenv("VAE_MAX_JOBS", "1")
    cpu = DeviceInfo("cpu", "cpu — 16 threads", True)
    n = jobs.default_threads("cpu")
    assert training.device_label(cpu) == f"cpu · {n} thread{'s' * (n != 1)}"
    assert training.device_note(cpu, {"cpu": ["x"]}) == (
        f"CPU, {n} thread{'s' * (n != 1)} for training. Busy with x; stop it or pick another "
        "device to start a new run."
    )
    gone = DeviceInfo("mps", "mps — not available", False, "not an Apple-silicon Mac")
    assert training.device_label(gone) == "mps (unavailable)"
    assert training.device_note(gone, {}) == "mps is not available here: not an Apple-silicon Mac."


def preview_state(at: AppTest) -> tuple[list[str], int, bool]:
    """(captions of the preview, images shown, whether the latent map is drawn)."""
    assert errors(at) == []
    captions = [c.value for c in at.main.caption if "checkpoint" in c.value]
    shown = [i for i in at.main.get("image") if i.proto.imgs[0].alt.startswith("training ")]
    drawn = any(c.key and c.key.startswith("live_map_") for c in at.get("plotly_chart"))
    return captions, len(shown), drawn


def test_preview_waits_for_the_first_checkpoint_and_survives_torn_reads(dirs):
    from tests.helpers import tiny_digits_checkpoint

    src = tiny_digits_checkpoint(dirs["cache"] / "src", latent_dim=2, steps=10)
    run = dirs["runs"] / "early"
    run.mkdir()  # a job that has not written anything yet
    at = train_page(dirs)
    assert at.selectbox(key="train_watch").value == "early"
    waiting = ["Waiting for the first checkpoint…"] * 3  # samples, reconstructions, map
    assert preview_state(at) == (waiting, 0, False)
    weights = (src / WEIGHTS_FILE).read_bytes()
    (run / WEIGHTS_FILE).write_bytes(weights)  # the weights are written first, then the config
    assert preview_state(at.run()) == (waiting, 0, False)
    shutil.copy(src / CONFIG_FILE, run / CONFIG_FILE)
    (run / WEIGHTS_FILE).write_bytes(weights[: len(weights) // 2])  # a torn read
    captions, shown, drawn = preview_state(at.run())
    assert len(captions) == 3 and all("Could not read the checkpoint yet" in c for c in captions)
    assert (shown, drawn) == (0, False)
    (run / WEIGHTS_FILE).write_bytes(weights)
    assert preview_state(at.run()) == ([], 2, True)  # samples and reconstructions, the map
    for img in at.main.get("image"):
        assert img.value[0].startswith("data:image/png;base64,")  # no media file to go stale
    (run / WEIGHTS_FILE).write_bytes(weights[:100])  # the next checkpoint, torn: keep the last
    assert preview_state(at.run()) == ([], 2, True)
    assert not any("at step" in m.value for m in at.main.markdown)
    # the trainer's preview, newer than the checkpoint, is drawn and says its step
    save_preview(run, load_run(src).model, step=1234, epoch=0)
    newer = (run / WEIGHTS_FILE).stat().st_mtime_ns + 10**9
    os.utime(run / PREVIEW_FILE, ns=(newer, newer))
    assert preview_state(at.run()) == ([], 2, True)
    heads = [m.value for m in at.main.markdown if "at step 1,234" in m.value]
    assert heads == [
        "**Samples** from the prior, at step 1,234",
        "**Reconstructions**, at step 1,234",
    ]
    blob = (run / PREVIEW_FILE).read_bytes()
    (run / PREVIEW_FILE).write_bytes(blob[: len(blob) // 2])  # a torn preview: keep the last
    os.utime(run / PREVIEW_FILE, ns=(newer + 1, newer + 1))
    assert preview_state(at.run()) == ([], 2, True)
    assert sum("at step 1,234" in m.value for m in at.main.markdown) == 2


def test_curves_have_a_legend_for_train_and_test():
    steps = [{"step": s, "elbo": -100.0 + s, "recon": 90.0 - s, "kl": 10.0} for s in (1, 2, 3)]
    epochs = [{"epoch": 1, "step": 3, "test_elbo": -98.0, "test_recon": 88.0, "test_kl": 10.0}]
    fig = training.curves_figure(steps, epochs)
    assert fig.layout.showlegend is True
    entries = [t for t in fig.data if t.showlegend is not False]
    assert [t.name for t in entries] == ["train (each logged step)", "test (after each epoch)"]
    train, test = entries
    assert train.line.dash in (None, "solid") and test.line.dash == "dot"
    for t in fig.data:  # each entry stands for (and toggles) its kind in all three panels
        assert t.legendgroup == ("test" if t.line.dash == "dot" else "train")
    assert sum(t.legendgroup == "test" for t in fig.data) == 4  # 3 panels + the entry
    # before the first epoch there are no test values, and no test entry
    early = training.curves_figure(steps, [])
    assert [t.name for t in early.data if t.showlegend is not False] == [train.name]


def test_btcvae_curves_draw_the_kl_parts_in_the_kl_panel():
    parts = {"mi": 4.0, "tc": 2.0, "dwkl": 1.0}
    steps = [{"step": s, "elbo": -60.0, "recon": 53.0, "kl": 7.0, **parts} for s in (1, 2, 3)]
    fig = training.curves_figure(steps, [])
    drawn = {t.name: t for t in fig.data if t.name and t.name.startswith("KL part")}
    assert sorted(drawn) == [
        "KL part: dimension-wise KL", "KL part: index-code MI", "KL part: total correlation",
    ]  # fmt: skip
    kl_axis = next(t for t in fig.data if t.name == "train kl").xaxis
    assert all(t.xaxis == kl_axis for t in drawn.values())  # in the KL panel
    assert [list(drawn[f"KL part: {n}"].y) for n in ("index-code MI", "total correlation")] == [
        [4.0] * 3, [2.0] * 3,
    ]  # fmt: skip
    plain = [{k: v for k, v in r.items() if k not in parts} for r in steps]  # an ELBO run
    assert not [t for t in training.curves_figure(plain, []).data if "KL part" in (t.name or "")]


def test_library_lists_and_imports(dirs):
    from tests.helpers import tiny_digits_checkpoint

    src = tiny_digits_checkpoint(dirs["cache"] / "made-elsewhere", latent_dim=3, steps=10)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for f in ("config.json", "model.safetensors", "metrics.json"):
            zf.write(src / f, f"made-elsewhere/{f}")
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page("pages/runs.py").run()
    assert at.title[0].value == "Model library" and errors(at) == []
    assert "No runs yet" in at.main.info[0].value
    at.main.get("file_uploader")[0].set_value(("m.zip", buf.getvalue(), "application/zip")).run()
    assert at.text_input(key="lib_import_name").value == "made-elsewhere"
    at.button(key="lib_import").click().run()
    assert errors(at) == [] and started(dirs) == ["made-elsewhere"]
    (table,) = at.dataframe
    assert list(table.value["Name"]) == ["made-elsewhere"]
    assert table.value["Score"][0].startswith("NLL ≤ ")  # bounded by the test ELBO
    assert table.value["Latent"][0] == 3
    # an unsafe zip is refused with the reason, and nothing is added
    bad = io.BytesIO()
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("../config.json", "{}")
    at.main.get("file_uploader")[0].set_value(("bad.zip", bad.getvalue(), "application/zip")).run()
    assert any("unsafe path" in m for m in errors(at))
    assert started(dirs) == ["made-elsewhere"]
