"""Cached resources (the model, its dataset, the latent table and the map) are shared by every
session of a server: a busy session must leave them exactly as it found them."""

from __future__ import annotations

import numpy as np
import torch

from tests import live_app
from tests.helpers import digit_photo_png, ok
from tests.pages.shared import goto, open_tour


def _snapshot(model_dirs):
    from vae.ui import cache, data, models

    run = models.load(model_dirs["assets"] / "digits-mlp")  # the very objects the app holds
    ds = data.load(run)
    table = cache.latent_table(run, 1797)
    proj = cache.projection(run, table, "pca")
    return {
        "run": run,
        "weights": {k: v.detach().clone() for k, v in run.model.state_dict().items()},
        "training": run.model.training,
        "x": ds.x.clone(),
        "y": None if ds.y is None else ds.y.clone(),
        "table": {k: np.array(getattr(table, k), copy=True) for k in ("rows", "mean", "kl")},
        "embedding": np.array(proj.embedding, copy=True),
        "components": np.array(proj.components, copy=True),
    }


def test_a_busy_session_mutates_no_shared_resource(app, model_dirs):
    ok(app)  # Explore on digits-mlp: the model, data, table and PCA map are now cached
    before = _snapshot(model_dirs)
    # a busy visitor: sliders, random z, a map selection, an upload, every other page
    live_app.send_z(app, [2.0, -1.0, 0.5, 3.0])
    live_app.trigger(app, "snap", [2.0, -1.0, 0.5, 3.0])
    app.session_state["_lasso_rows"] = list(range(40))
    app.run()
    next(s for s in app.selectbox if s.key == "color_by").set_value("kl").run()
    goto(app, "encode")
    app.get("file_uploader")[0].set_value(("seven.png", digit_photo_png(), "image/png")).run()
    goto(app, "interpolate")
    app.segmented_control(key="interp_mode").set_value("slerp").run()
    goto(app, "traverse")
    goto(app, "diagnostics")
    goto(app, "demos")
    open_tour(app, "Anomaly detection")
    ok(app)
    after = _snapshot(model_dirs)
    assert after["run"] is before["run"]  # the same cached object, which must be untouched:
    for k, w in before["weights"].items():
        assert torch.equal(w, after["weights"][k]), k
    assert after["training"] is False and before["training"] is False  # still in eval mode
    assert torch.equal(before["x"], after["x"])
    assert before["y"] is None or torch.equal(before["y"], after["y"])
    for k, v in before["table"].items():
        np.testing.assert_array_equal(v, after["table"][k])
    np.testing.assert_array_equal(before["embedding"], after["embedding"])
    np.testing.assert_array_equal(before["components"], after["components"])
