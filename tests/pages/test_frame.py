"""The frame around the pages (app.py): the sidebar picker and its errors, adding models,
the dataset panel, every page running, and links that open a page."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from tests import live_app
from tests.helpers import app_pages, ok, tiny_digits_checkpoint
from tests.pages.shared import (
    APP,
    ROOT,
    _zip,
)


def test_a_model_that_fails_to_load_breaks_neither_sidebar_nor_page(app, model_dirs):
    import shutil

    bad = model_dirs["runs"] / "corrupt-weights"
    shutil.copytree(model_dirs["assets"] / "digits-mlp", bad, dirs_exist_ok=True)
    (bad / "model.safetensors").write_bytes(b"\x00" * 64)  # passes discovery, fails to load
    try:
        app.run()
        app.sidebar.selectbox(key="model").set_value("run:corrupt-weights").run()
        assert not app.exception
        assert any(e.value.startswith("Could not load this model:") for e in app.sidebar.error)
        assert any("Could not load corrupt-weights" in e.value for e in app.main.error)
        # the sidebar still offers the other models, and switching back works
        app.sidebar.selectbox(key="model").set_value("asset:digits-mlp").run()
        ok(app)
        assert live_app.panel(app)["decoder"]
    finally:
        shutil.rmtree(bad)


def test_every_page_runs_without_exception(app):
    for script, _ in app_pages():
        app.switch_page(script).run()
        ok(app)
        assert app.title, f"{script} has no title"
        assert app.sidebar.selectbox(key="model").value  # the frame ran around the page


def test_upload_checkpoint_zip(app, model_dirs):
    src = model_dirs["assets"] / "digits-mlp"
    blob = _zip({f"run/{f}": (src / f).read_bytes() for f in ("config.json", "model.safetensors")})
    app.sidebar.get("file_uploader")[0].set_value(("run.zip", blob, "application/zip")).run()
    ok(app)
    assert app.sidebar.selectbox(key="model").value.startswith("upload:")
    assert len(live_app.current_z(app)) == 4


def test_unsafe_checkpoint_zip_is_refused(app):
    blob = _zip({"../evil/config.json": b"{}", "model.safetensors": b"x"})
    app.sidebar.get("file_uploader")[0].set_value(("evil.zip", blob, "application/zip")).run()
    assert not app.exception
    assert any("unsafe path" in e.value for e in app.sidebar.error)


def test_add_folder_by_path(app, model_dirs, tmp_path):
    run = tiny_digits_checkpoint(tmp_path / "my-run", latent_dim=3, steps=10)
    app.sidebar.text_input[0].input(str(run))
    next(b for b in app.sidebar.button if b.label == "Add folder").click().run()
    ok(app)
    assert app.sidebar.selectbox(key="model").value == f"path:{run.resolve()}"
    assert len(live_app.current_z(app)) == 3
    app.sidebar.text_input[0].input(str(tmp_path / "nope"))
    next(b for b in app.sidebar.button if b.label == "Add folder").click().run()
    assert any("is not a folder" in e.value for e in app.sidebar.error)


def test_missing_dataset_gets_a_message_and_a_download_button(app):
    app.sidebar.selectbox(key="model").set_value("run:mnist-tiny").run()
    assert not app.exception
    assert any("**MNIST** images are not on this machine" in w.value for w in app.sidebar.warning)
    assert any(b.label == "Download MNIST (about 11 MB)" for b in app.sidebar.button)
    assert not app.error  # Explore works without the data (tests/pages/test_no_data.py)


def test_page_in_the_url_opens_that_page(model_dirs, monkeypatch):
    monkeypatch.setenv("VAE_ASSETS_DIR", str(model_dirs["assets"]))
    monkeypatch.setenv("VAE_RUNS_DIR", str(model_dirs["runs"]))
    monkeypatch.setenv("VAE_CACHE_DIR", str(model_dirs["cache"]))
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params.update({"page": "encode", "model": "asset:digits-wide"})
    at.run()
    assert not at.exception
    assert at.title[0].value == "Encode your own image"
    assert at.sidebar.selectbox(key="model").value == "asset:digits-wide"


def test_model_headline_is_the_saved_iwae_nll_else_the_test_elbo():
    from vae.ui.models import metric_summary

    evaluation = {"train": {"iwae_nll": 84.0}, "test": {"iwae_nll": 85.392, "elbo": -94.57}}
    saved = {"test_elbo": -94.35, "evaluation": evaluation}
    assert metric_summary(saved) == "NLL 85.4"  # the test split's, as `vae.evaluate --save` writes
    # without an NLL estimate the test ELBO bounds it: NLL ≤ −ELBO, so both read "lower is better"
    assert metric_summary({"test_elbo": -94.35, "evaluation": {"test": {"elbo": -94.6}}}) == (
        "NLL ≤ 94.3"
    )
    assert metric_summary({"evaluation": "broken", "test_elbo": -24.2}) == "NLL ≤ 24.2"
    assert metric_summary({}) == ""
    shipped = ROOT / "assets" / "mnist-conv" / "metrics.json"
    if shipped.exists():
        import json

        assert metric_summary(json.loads(shipped.read_text())).startswith("NLL 85.")
