"""The Traverse, Interpolate, Diagnostics and Demos pages through AppTest (no browser).

The app runs on a temporary models folder with tiny models trained by `vae.train` in a few
seconds: a 4-d digits model (the default), 2-d digits twins with β = 1 and β = 0 (for the
smoothness demo), and a 4-d shapes model (for MIG).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from vae.checkpoint import save_model
from vae.config import ModelConfig, TrainConfig
from vae.data import load_dataset
from vae.model import VAE
from vae.objectives import elbo
from vae.train import train

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")


def _train(out: Path, latent_dim: int = 4, epochs: int = 2) -> Path:
    """A digits model trained by `vae.train` itself, so it has metrics.jsonl and steps.jsonl."""
    train(
        ModelConfig(image_shape=(1, 8, 8), latent_dim=latent_dim, arch="mlp", hidden=(64,)),
        TrainConfig(dataset="digits", epochs=epochs, lr=3e-3),
        out,
        command="tests",
        log_every=4,
        progress_bar=False,
    )
    return out


def _quick(out: Path, dataset: str, latent_dim: int, beta: float, steps: int, size: int = 8):
    """A few Adam steps on a batch loop, saved as a run folder (no training logs)."""
    torch.manual_seed(0)
    ds = load_dataset(dataset, "train", image_size=size if dataset == "shapes" else None)
    cfg = ModelConfig(image_shape=ds.image_shape, latent_dim=latent_dim, arch="mlp", hidden=(64,))
    model = VAE(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(steps):
        loss = elbo(model, ds.x[torch.randint(0, len(ds), (128,))], beta=beta).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    train_cfg = {
        "dataset": dataset,
        "beta": beta,
        "image_size": size if dataset == "shapes" else None,
    }
    save_model(out, model, dataset=ds.info(), train=train_cfg, command=f"tests: beta={beta}")
    return out


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("pages")
    assets = root / "assets"
    _train(assets / "digits-mlp")
    _quick(assets / "digits-2d", "digits", 2, 1.0, 100)
    _quick(assets / "digits-beta0", "digits", 2, 0.0, 100)
    _quick(assets / "shapes-mlp", "shapes", 4, 1.0, 40, size=16)
    (root / "runs").mkdir()
    return {"assets": assets, "runs": root / "runs", "cache": root / "cache"}


@pytest.fixture
def app(model_dirs, monkeypatch) -> AppTest:
    monkeypatch.setenv("VAE_ASSETS_DIR", str(model_dirs["assets"]))
    monkeypatch.setenv("VAE_RUNS_DIR", str(model_dirs["runs"]))
    monkeypatch.setenv("VAE_CACHE_DIR", str(model_dirs["cache"]))
    monkeypatch.setenv("VAE_DEVICE", "cpu")
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    return at


def fresh_app(model_dirs, monkeypatch, **query: str) -> AppTest:
    """A new session opened from a URL with these query parameters."""
    monkeypatch.setenv("VAE_ASSETS_DIR", str(model_dirs["assets"]))
    monkeypatch.setenv("VAE_RUNS_DIR", str(model_dirs["runs"]))
    monkeypatch.setenv("VAE_CACHE_DIR", str(model_dirs["cache"]))
    monkeypatch.setenv("VAE_DEVICE", "cpu")
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params.update(query)
    at.run()
    ok(at)
    return at


def ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def goto(at: AppTest, page: str) -> AppTest:
    at.switch_page(f"pages/{page}.py").run()
    ok(at)
    return at


def download(at: AppTest, key: str):
    return next(b for b in at.get("download_button") if b.key == key)


# --- Traverse -------------------------------------------------------------------------------------
def test_traverse_grid_follows_the_centre(app):
    goto(app, "traverse")
    assert app.title[0].value == "Traverse the latent dimensions"
    # Explore's z is still 0 here, the same centre as the prior mean: the same picture
    zero = download(app, "trav_png").proto.url
    app.segmented_control(key="trav_centre").set_value("prior").run()
    ok(app)
    assert download(app, "trav_png").proto.url == zero


def test_traverse_png_changes_with_explores_z(model_dirs, monkeypatch):
    at = fresh_app(model_dirs, monkeypatch, z="2.00,-1.00,0.50,0.00")
    goto(at, "traverse")
    around_z = download(at, "trav_png").proto.url
    assert any(c.value.startswith("Centre: z from Explore") for c in at.caption)
    at.segmented_control(key="trav_centre").set_value("prior").run()
    ok(at)
    assert download(at, "trav_png").proto.url != around_z
    assert any(c.value.startswith("Centre: z = 0") for c in at.caption)
    rows = at.slider(key="trav_rows:asset:digits-mlp")
    assert rows.value == 4 and rows.max == 4
    # the GIF and the 2-D manifold are there too, with their downloads
    assert download(at, "trav_gif").proto.url.endswith(".gif")
    assert download(at, "trav_plane_png").proto.url.endswith(".png")
    at.segmented_control(key="trav_plane_kind").set_value("pca").run()
    ok(at)
    assert any("first principal component" in c.value for c in at.caption)


# --- Interpolate ----------------------------------------------------------------------------------
def strip_urls(at: AppTest) -> list[str]:
    img = next(i for i in at.get("image") if i.captions and i.captions[0].startswith("t="))
    return img.value


def test_interpolate_strip_has_n_steps_and_slerp_differs(app):
    goto(app, "interpolate")
    assert app.title[0].value == "Interpolate between latent codes"
    assert len(strip_urls(app)) == 10
    app.slider(key="interp_steps").set_value(6).run()
    ok(app)
    lerp = strip_urls(app)
    assert len(lerp) == 6
    assert any(c.key == "interp_map" for c in app.get("plotly_chart"))
    app.segmented_control(key="interp_mode").set_value("slerp").run()
    ok(app)
    slerp = strip_urls(app)
    assert len(slerp) == 6
    assert slerp[0] == lerp[0] and slerp[-1] == lerp[-1]  # same endpoints
    assert slerp[1:-1] != lerp[1:-1]  # a different path between them
    assert download(app, "interp_gif").proto.url.endswith(".gif")
    # a random prior sample as endpoint B, and the arithmetic tab
    app.selectbox(key="interp_src_B").set_value("random").run()
    ok(app)
    assert any("B: prior sample" in c for i in app.get("image") for c in i.captions)
    assert any("A − B + C" in c for i in app.get("image") for c in i.captions)
    assert any("“7” direction" in c.value for c in app.caption)


def test_interpolate_endpoint_without_a_selection_explains(app):
    goto(app, "interpolate")
    app.selectbox(key="interp_src_A").set_value("map").run()
    ok(app)
    assert any("Click an image on Explore's map" in i.value for i in app.info)
    assert any("Choose both endpoints" in i.value for i in app.info)


# --- Diagnostics ----------------------------------------------------------------------------------
def test_diagnostics_curves_usage_and_iwae(app):
    goto(app, "diagnostics")
    assert app.title[0].value == "Model diagnostics"
    charts = {c.key for c in app.get("plotly_chart")}
    assert {"curve_elbo", "curve_terms", "curve_steps", "diag_kl", "diag_activity"} <= charts
    active = next(m for m in app.metric if m.label == "Active units")
    assert active.value.endswith("of 4")
    assert not any(m.label == "IWAE NLL" for m in app.metric)
    app.number_input(key="iwae_n:asset:digits-mlp").set_value(20).run()
    app.select_slider(key="iwae_k").set_value(10).run()
    app.button(key="iwae_go").click().run()
    ok(app)
    nll = next(m for m in app.metric if m.label == "IWAE NLL")
    value = float(nll.value.split()[0])
    assert np.isfinite(value) and value > 0
    assert any(c.value.startswith("20 images, k = 10 samples") for c in app.caption)
    assert any("MIG" in i.value for i in app.info)  # digits have no factors


def test_diagnostics_mig_for_shapes(model_dirs, monkeypatch):
    at = fresh_app(model_dirs, monkeypatch, model="asset:shapes-mlp")
    goto(at, "diagnostics")
    mig = next(m for m in at.metric if m.label == "MIG")
    assert 0.0 <= float(mig.value) <= 1.0
    assert any(c.key == "diag_mi" for c in at.get("plotly_chart"))
    assert not any(c.key == "curve_elbo" for c in at.get("plotly_chart"))  # no training log
    assert any("no training log" in i.value for i in at.info)


# --- Demos ----------------------------------------------------------------------------------------
TOURS = ["The ideas", "Smooth latent spaces", "What each dimension does", "Anomaly detection"]


def open_tour(at: AppTest, tour: str) -> AppTest:
    at.session_state["demo_tour"] = tour
    at.run()
    ok(at)
    return at


def test_demos_render_every_tour(app):
    goto(app, "demos")
    assert [t.label for t in app.tabs] == TOURS
    open_tour(app, "The ideas")
    assert len(app.latex) >= 3
    assert any(m.label.startswith("KL(") for m in app.metric)
    open_tour(app, "Smooth latent spaces")
    maps = [c.key for c in app.get("plotly_chart")]
    assert maps == ["demo_map_digits-beta0", "demo_map_digits-2d"]
    sigmas = [float(m.value) for m in app.metric if m.label == "Typical posterior σ"]
    assert len(sigmas) == 2 and sigmas[0] < sigmas[1]  # no KL term: point-like codes
    open_tour(app, "What each dimension does")
    assert sum("nearest training codes" in c.value for c in app.caption) == 4
    open_tour(app, "Anomaly detection")
    rates = [m for m in app.metric if m.label.endswith("detected")]
    assert [m.label.split(":")[0] for m in rates] == ["noise", "inverted", "rotated 90°", "shapes"]
    assert all(0 <= float(m.value.rstrip("%")) <= 100 for m in rates)
    assert float(rates[0].value.rstrip("%")) > 50  # pixel noise is easy to catch
    assert any(c.key == "demo_hist" for c in app.get("plotly_chart"))


def test_demos_smoothness_tour_names_missing_twins(model_dirs, monkeypatch, tmp_path):
    import shutil

    shutil.copytree(model_dirs["assets"] / "digits-mlp", tmp_path / "digits-mlp")
    at = fresh_app({**model_dirs, "assets": tmp_path}, monkeypatch)
    goto(at, "demos")
    open_tour(at, "Smooth latent spaces")
    needs = [i.value for i in at.info if "needs the shipped model" in i.value]
    assert len(needs) == 2 and "--beta 0.0" in needs[0]


def test_interpolate_from_an_uploaded_photo(app):
    from tests.e2e.helpers import digit_photo_png

    goto(app, "interpolate")
    app.selectbox(key="interp_src_A").set_value("upload").run()
    ok(app)
    up = next(f for f in app.get("file_uploader") if f.key == "interp_up_A")
    up.set_value(("seven.png", digit_photo_png(), "image/png")).run()
    ok(app)
    assert any("A: your image seven.png" in c for i in app.get("image") for c in i.captions)
    assert len(strip_urls(app)) == 10
    up = next(f for f in app.get("file_uploader") if f.key == "interp_up_A")
    up.set_value(("notes.png", b"not an image", "image/png")).run()
    assert not app.exception
    assert any("not a readable image" in e.value for e in app.error)
