"""The Explore page through AppTest: the live panel's Python side, the server-side sliders,
the map's controls and selections, and the lazy ELBO scores."""

from __future__ import annotations

import importlib.util
import json
import sys

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from tests import live_app
from tests.helpers import app_test, ok, tiny_digits_checkpoint
from tests.pages.shared import (
    APP,
    _map_points,
    _model,
    decoded_url,
    latent_sliders,
    maps_ready,
    plotly_values,
)


def test_explore_home_has_map_sliders_and_image_server_side(server_app):
    assert not server_app.exception
    assert any("Skipped a model folder" in w.value for w in server_app.sidebar.warning)
    assert server_app.title[0].value == "Explore the latent space"
    assert server_app.sidebar.selectbox(key="model").value == "asset:digits-mlp"
    assert any(c.key == "latent_map" for c in server_app.get("plotly_chart"))
    sl = latent_sliders(server_app)
    assert len(sl) == 4
    labels = [s.label for s in sl]
    kls = [float(lbl.split("KL ")[1].split(" ")[0]) for lbl in labels]
    # drawn row by row in two columns: order in the tree is column-major
    row_major = [kls[i // 2 + (i % 2) * 2] for i in range(4)]
    assert row_major == sorted(row_major, reverse=True), labels
    assert decoded_url(server_app).startswith("data:image/png;base64,")
    assert server_app.query_params["model"] == "asset:digits-mlp"


def test_moving_a_slider_changes_the_image_and_url_server_side(server_app):
    before = decoded_url(server_app)
    s = latent_sliders(server_app)[0]
    s.set_value(2.0).run()
    ok(server_app)
    assert decoded_url(server_app) != before
    z = [float(v) for v in server_app.query_params["z"].split(",")]
    d = int(s.key.rsplit(":", 1)[1])
    assert z[d] == pytest.approx(2.0)


def test_buttons_reset_random_and_snap_server_side(server_app):
    latent_sliders(server_app)[0].set_value(2.5).run()
    reset = next(b for b in server_app.button if b.label == "Reset to 0")
    reset.click().run()
    ok(server_app)
    assert all(s.value == 0.0 for s in latent_sliders(server_app))
    zero = decoded_url(server_app)
    next(b for b in server_app.button if b.label == "Random z").click().run()
    ok(server_app)
    assert any(s.value != 0.0 for s in latent_sliders(server_app))
    assert decoded_url(server_app) != zero
    next(b for b in server_app.button if b.label == "Snap to data").click().run()
    ok(server_app)
    assert any("Snapped to image #" in c.value for c in server_app.caption)


def test_explore_live_panel_gets_the_decoder_once_and_kl_ordered_dims(app, model_dirs):
    from vae.data import load_dataset
    from vae.export import export_decoder

    ok(app)
    assert app.title[0].value == "Explore the latent space"
    assert any(c.key == "latent_map" for c in app.get("plotly_chart"))
    assert not latent_sliders(app), "no server-side sliders when the browser decodes"
    data = live_app.panel(app)
    model = _model(model_dirs)
    exp = export_decoder(model)
    # the carrier holds exactly this model's decoder, and the panel refers to it by id
    assert data["decoder"] == exp.id
    assert exp.pack() in live_app.carriers(app)
    # dimensions ordered by KL, checked against KL computed here from the posterior directly
    # (the digits test split is small, so the app maps the whole dataset)
    x = load_dataset("digits", "all").x
    with torch.no_grad():
        q = model.encode(x)
        kl = (0.5 * (q.mean**2 + q.logvar.exp() - 1 - q.logvar)).mean(0).numpy()
    assert data["order"] == np.argsort(-kl, kind="stable").tolist()
    assert data["kl"] == pytest.approx(kl.tolist(), abs=2e-2)
    assert data["z"] == [0.0] * 4 and data["proj"]["method"] == "pca"
    # PCA is sent exactly: components orthonormal, mean of the codes
    comps = np.array(data["proj"]["components"])
    assert np.allclose(comps @ comps.T, np.eye(2), atol=1e-5)
    assert app.query_params["model"] == "asset:digits-mlp"


def test_released_z_reaches_python_url_and_star(app):
    live_app.send_z(app, [2.0, -1.0, 0.5, 0.25])
    ok(app)
    assert app.query_params["z"] == "2.00,-1.00,0.50,0.25"
    data = live_app.panel(app)
    assert data["z"] == [2.0, -1.0, 0.5, 0.25]
    # the server's star for that z: (z - mean) @ components, computed here with numpy
    p = data["proj"]
    want = (np.array(data["z"]) - np.array(p["mean"])) @ np.array(p["components"]).T
    assert data["serverStar"] == pytest.approx(want.tolist(), abs=1e-4)
    # the same release again is taken once only; a page switch keeps the z
    app.switch_page("pages/traverse.py").run()
    ok(app)
    app.switch_page("pages/explore.py").run()
    assert live_app.panel(app)["z"] == [2.0, -1.0, 0.5, 0.25]


def test_snap_trigger_loads_the_nearest_dataset_code(app, model_dirs):
    from vae.data import load_dataset

    live_app.trigger(app, "snap", [1.5, 1.5, 0.0, 0.0])
    ok(app)
    cap = next(c.value for c in app.caption if c.value.startswith("Snapped to image #"))
    row = int(cap.split("#")[1].split(" ")[0])
    z = np.array(live_app.panel(app)["z"])
    # the snapped z is that image's posterior mean, encoded here
    x = load_dataset("digits", "all").x[row : row + 1]  # the app maps all of digits
    with torch.no_grad():
        mean = _model(model_dirs).encode(x).mean[0].numpy()
    assert z == pytest.approx(np.round(mean, 2), abs=1e-6)


def test_wide_model_live_panel_shows_top_16_then_all(app):
    app.sidebar.selectbox(key="model").set_value("asset:digits-wide").run()
    ok(app)
    data = live_app.panel(app)
    assert data["top"] == 16 and data["showAll"] is False and len(data["order"]) == 20
    app.toggle(key="show_all_dims").set_value(True).run()
    ok(app)
    assert live_app.panel(app)["showAll"] is True
    live_app.send_z(app, [0.1] * 20)
    assert len(app.query_params["z"].split(",")) == 20
    app.sidebar.selectbox(key="model").set_value("asset:digits-mlp").run()
    ok(app)
    assert len(live_app.panel(app)["z"]) == 4


def test_tsne_map_sends_the_table_for_the_live_star(app):
    app.get("button_group")[0].set_value("tsne").run()
    ok(app)
    maps_ready(app)  # the map forms in the background first (tests/pages/test_forming_map.py)
    data = live_app.panel(app)
    assert data["proj"]["method"] == "tsne" and data["proj"]["table"]
    blobs = [b for b in live_app.carriers(app) if b[:4] == b"VAET"]
    assert len(blobs) == 1
    assert "approximately" in data["note"]


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("umap") is None, reason="umap-learn not installed")
def test_umap_is_selectable_and_draws_a_map(app):
    from vae.data import load_dataset

    group = app.get("button_group")[0]
    assert group.options == ["PCA", "t-SNE", "UMAP"]
    group.set_value("umap").run()  # the first UMAP of this process also compiles its numba code
    ok(app)
    data = live_app.panel(app)
    assert data["proj"]["method"] == "umap" and data["proj"]["table"]
    assert _map_points(app) == len(load_dataset("digits", "all"))  # the digits map holds all
    # the server's star: umap-learn's transform of z = 0, somewhere inside the map
    chart = next(c for c in app.get("plotly_chart") if c.key == "latent_map")
    traces = [t for t in json.loads(chart.proto.spec)["data"] if t.get("name") != "current z"]
    xs = np.concatenate([plotly_values(t["x"]) for t in traces])
    star = np.array(data["serverStar"])
    assert np.isfinite(star).all() and xs.min() <= star[0] <= xs.max()
    assert app.session_state["projection"] == "umap"


def test_without_umap_learn_umap_is_offered_with_the_install_command(app, monkeypatch):
    monkeypatch.setitem(sys.modules, "umap", None)  # `import umap` fails, find_spec finds nothing
    app.run()
    group = app.get("button_group")[0]
    assert group.options == ["PCA", "t-SNE", "UMAP (not installed)"]
    assert "pip install umap-learn" in group.help
    group.set_value("umap").run()
    ok(app)
    assert any("`pip install umap-learn`" in i.value for i in app.info)
    assert not any(c.key == "latent_map" for c in app.get("plotly_chart"))
    assert app.session_state["projection"] == "pca"  # other pages keep a map they can draw


def test_explore_starts_the_umap_warm_up_in_the_background(model_dirs, monkeypatch):
    from vae.projection import umap as U

    starts = []
    monkeypatch.setattr(U, "_WARM_UP", U._WarmUp())
    monkeypatch.setattr(U._WarmUp, "start", lambda self, nice, delay=0.0: starts.append(nice))
    monkeypatch.setattr(U, "available_methods", lambda: ["pca", "tsne", "umap"])
    at = app_test(model_dirs, monkeypatch, VAE_UMAP_WARMUP="1")
    ok(at)
    assert starts and set(starts) == {U.WARM_UP_NICE}  # low priority, never blocking the page


def test_unsupported_decoder_falls_back_to_server_decoding(tmp_path, monkeypatch):
    from vae.export import ExportError

    # a model of its own, so no cached export of another test's model is reused
    tiny_digits_checkpoint(tmp_path / "assets" / "odd", latent_dim=3, steps=5, seed=7)
    for name, sub in (("ASSETS", "assets"), ("RUNS", "runs"), ("CACHE", "cache")):
        monkeypatch.setenv(f"VAE_{name}_DIR", str(tmp_path / sub))
    monkeypatch.setenv("VAE_DEVICE", "cpu")

    def refuse(model, latent_dim=None):
        raise ExportError("the browser cannot run a LSTM layer")

    monkeypatch.setattr("vae.ui.live.export_decoder", refuse)
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    ok(at)
    assert not live_app.views(at) and not live_app.carriers(at)
    assert any("cannot run a LSTM layer" in c.value for c in at.caption)
    before = decoded_url(at)
    latent_sliders(at)[0].set_value(1.5).run()
    ok(at)
    assert decoded_url(at) != before  # decoded on the server
    at.switch_page("pages/traverse.py").run()
    ok(at)
    assert any("cannot run a LSTM layer" in i.value for i in at.info)


def test_url_reproduces_the_view(model_dirs, monkeypatch):
    monkeypatch.setenv("VAE_ASSETS_DIR", str(model_dirs["assets"]))
    monkeypatch.setenv("VAE_RUNS_DIR", str(model_dirs["runs"]))
    monkeypatch.setenv("VAE_CACHE_DIR", str(model_dirs["cache"]))
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params.update({"model": "asset:digits-mlp", "z": "1.00,-1.00,0.50,0.00", "idx": "7"})
    at.run()
    ok(at)
    assert live_app.current_z(at).tolist() == [1.0, -1.0, 0.5, 0.0]
    assert any(s.value.startswith("Image #7 ") for s in at.subheader)


def test_wide_model_shows_top_16_then_all_server_side(server_app):
    server_app.sidebar.selectbox(key="model").set_value("asset:digits-wide").run()
    ok(server_app)
    assert len(latent_sliders(server_app)) == 16
    server_app.toggle(key="show_all_dims").set_value(True).run()
    ok(server_app)
    assert len(latent_sliders(server_app)) == 20
    assert server_app.query_params["model"] == "asset:digits-wide"


def test_switching_models_resets_sliders_to_the_new_size_server_side(server_app):
    latent_sliders(server_app)[0].set_value(1.0).run()
    server_app.sidebar.selectbox(key="model").set_value("asset:digits-wide").run()
    ok(server_app)
    assert len(server_app.query_params["z"].split(",")) == 20
    server_app.sidebar.selectbox(key="model").set_value("asset:digits-mlp").run()
    ok(server_app)
    assert len(latent_sliders(server_app)) == 4


def test_colour_and_size_controls(app):
    for opt in app.selectbox(key="color_by").options:
        app.selectbox(key="color_by").set_value(opt).run()
        ok(app)
    # the size control: the digits dataset has 1,797 images, so the choices are 1,000 and all
    size = app.select_slider(key="map_n_widget")
    assert list(size.options) == ["1000", "1797"] and size.value == 1797
    assert _map_points(app) == 1797
    size.set_value(1000).run()
    ok(app)
    assert _map_points(app) == 1000
    assert any(c.value.startswith("1,000 images of the") for c in app.caption)
    assert len(live_app.panel(app)["kl"]) == 4  # the panel follows the new table


def test_lasso_selection_shows_grid_and_mean_decoding(app):
    app.session_state["_lasso_rows"] = [0, 1, 2, 3, 4]
    app.run()
    ok(app)
    assert any(s.value == "5 images selected" for s in app.subheader)
    captions = [c for img in app.get("image") for c in img.captions]
    assert any("mean latent code" in c for c in captions)
    app.button(key="lasso_to_sliders").click().run()
    ok(app)
    assert np.any(live_app.current_z(app) != 0.0)


def test_map_selection_maps_back_to_table_rows():
    from vae.ui import maps

    xy = np.arange(12, dtype=np.float32).reshape(6, 2)
    labels = np.array([1, 0, 1, 2, 0, 1])
    m = maps.latent_map(
        xy, labels, categorical=True, color_title="label", marker=np.zeros(2), selected=xy[:1]
    )
    # traces: class 0 -> positions [1, 4], class 1 -> [0, 2, 5], class 2 -> [3], ring, star
    assert [list(p) for p in m.positions[:3]] == [[1, 4], [0, 2, 5], [3]]
    points = [
        {"curve_number": 1, "point_index": 2},
        {"curve_number": 0, "point_index": 0},
        {"curve_number": 3, "point_index": 0},  # the selection ring: not data
        {"curve_number": 4, "point_index": 0},  # the current-z star: not data
    ]
    assert m.selected_rows(points) == [5, 1]
    assert m.figure.data[-1].name == "current z"


def test_slider_range_covers_the_data():
    from vae.ui import sliders

    assert sliders.limit_for(np.array([[0.5, -2.9]])) == 3.0
    assert sliders.limit_for(np.array([[0.5, -4.2]])) == 5.0
    assert sliders.limit_for(np.array([[100.0]])) == sliders.MAX_LIMIT


def test_explore_decodes_the_dataset_only_when_a_page_needs_elbo_scores(tmp_path, monkeypatch):
    """The first view needs one encoder pass; per-image ELBOs (a decoder pass) wait until the
    map is coloured by reconstruction error or an image is opened, then come from the disk."""
    from vae.checkpoint import load_run
    from vae.latents import run_dataset
    from vae.metrics import per_image_elbo

    run_dir = tiny_digits_checkpoint(tmp_path / "assets" / "digits-lazy", steps=20, seed=3)
    monkeypatch.setenv("VAE_ASSETS_DIR", str(tmp_path / "assets"))
    monkeypatch.setenv("VAE_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("VAE_DEVICE", "cpu")
    monkeypatch.setenv("VAE_APP_THREADS", str(torch.get_num_threads()))
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    ok(at)
    cache = run_dir / ".cache"
    assert len(list(cache.glob("latents-v*.npz"))) == 1
    assert not list(cache.glob("scores-v*.npz"))  # nothing decoded for the first view

    at.selectbox(key="color_by").set_value("recon").run()
    ok(at)
    (scores,) = cache.glob("scores-v*.npz")
    with np.load(scores) as f:
        elbo, recon = f["elbo"], f["recon"]
    (table,) = cache.glob("latents-v*.npz")
    with np.load(table) as f:
        rows, kl, split = f["rows"], f["kl"], str(f["split"])
    run = load_run(run_dir)
    x = run_dataset(run, split).x[torch.from_numpy(rows)]
    expected = per_image_elbo(run.model, x, seed=0).numpy()
    np.testing.assert_allclose(elbo, expected, rtol=1e-5, atol=1e-4)
    # the reconstruction error, computed here from the decoder directly: -log p(x|z) of the
    # same seeded draw z ~ q(z|x) (batches of 512, as per_image_elbo draws them), by BCE
    gen, want = torch.Generator().manual_seed(0), []
    with torch.no_grad():
        for i in range(0, x.shape[0], 512):
            xb = x[i : i + 512]
            q = run.model.encode(xb)
            z = q.sample(gen)
            logits = run.model.decoder(z)
            bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, xb, reduction="none")
            want.append(bce.flatten(1).sum(1))
    np.testing.assert_allclose(recon, torch.cat(want).numpy(), rtol=1e-4, atol=1e-3)
    assert (recon >= 0).all() and np.allclose(elbo, -(recon + kl), atol=1e-3)

    at.session_state["selected_idx"] = int(rows[3])
    at.run()
    ok(at)
    shown = next(m for m in at.metric if m.label == "ELBO (nats)")
    assert shown.value == f"{elbo[3]:.1f}"


def test_a_2d_model_is_shown_in_its_own_latent_plane(tmp_path, monkeypatch, make_run):
    from vae.data import load_dataset

    run_dir = make_run("assets/two-d", latent_dim=2, steps=30)
    at = app_test({k: tmp_path / k for k in ("assets", "runs", "cache")}, monkeypatch)
    ok(at)
    chart = next(c for c in at.get("plotly_chart") if c.key == "latent_map")
    fig = json.loads(chart.proto.spec)
    axes = fig["layout"]["xaxis"]["title"]["text"], fig["layout"]["yaxis"]["title"]["text"]
    assert axes == ("z0", "z1")
    assert any("latent plane" in c.value for c in at.caption)
    # every dot sits at its image's posterior mean, encoded here
    model = _model({"assets": run_dir.parent}, "two-d")
    with torch.no_grad():
        means = model.encode(load_dataset("digits", "all").x).mean.numpy()  # (N, 2)
    points = [t for t in fig["data"] if t.get("customdata") is not None]
    xs = np.concatenate([plotly_values(t["x"]) for t in points])
    ys = np.concatenate([plotly_values(t["y"]) for t in points])
    rows = np.concatenate([plotly_values(t["customdata"]) for t in points]).astype(int)
    np.testing.assert_allclose(np.stack([xs, ys], 1), means[rows], atol=1e-5)
    proj = live_app.panel(at)["proj"]  # and the live star uses the same plane
    assert proj["mean"] == [0.0, 0.0] and proj["components"] == [[1.0, 0.0], [0.0, 1.0]]
