"""A t-SNE map that is not made yet forms in the background: Explore draws it as it optimises,
PCA is one click away meanwhile, and the finished map is cached and shown."""

from __future__ import annotations

import threading

import numpy as np

from tests import live_app
from tests.helpers import ok


def _charts(at) -> set[str]:
    return {c.key for c in at.get("plotly_chart")}


def test_tsne_forms_in_the_background_and_pca_stays_one_click_away(app, monkeypatch):
    from vae import mapping
    from vae.projection import fit

    release = threading.Event()
    started = threading.Event()
    calls = []

    def slow_projection(run, table, method, seed=0, progress=None, snapshot=None, **kw):
        calls.append(method)
        mean = np.asarray(table["mean"], np.float32)
        snapshot(mean[:, :2].copy(), 0.0)  # the first layout, at once
        progress(0.3, "t-SNE: pulling clusters apart, iteration 30 of 100")
        started.set()
        release.wait(60)
        return fit(mean, "tsne", n_iter=20, early_exaggeration_iter=10, n_jobs=1)

    monkeypatch.setattr(mapping, "projection", slow_projection)
    ok(app)
    app.segmented_control(key="proj_widget").set_value("tsne").run()
    ok(app)
    assert started.wait(30)
    app.run()  # the forming view's next redraw
    ok(app)
    assert "forming_map" in _charts(app) and "latent_map" not in _charts(app)
    assert any("t-SNE is forming" in c.value for c in app.caption)
    assert live_app.panel(app)["proj"]["method"] == "pca"  # z is placed on PCA meanwhile
    # PCA at once, while the fit is still running
    app.segmented_control(key="proj_widget").set_value("pca").run()
    ok(app)
    assert "latent_map" in _charts(app) and not release.is_set()
    # the fit ends; back on t-SNE the finished map is there, fitted once
    release.set()
    from vae.ui import fits

    for job in list(fits._JOBS.values()):
        if job.thread is not None:
            job.thread.join(60)
    app.segmented_control(key="proj_widget").set_value("tsne").run()
    ok(app)
    assert "latent_map" in _charts(app) and "forming_map" not in _charts(app)
    assert any("t-SNE" in c.value for c in app.caption)
    assert calls == ["tsne"]
