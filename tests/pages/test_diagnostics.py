"""The Diagnostics page through AppTest, on models trained in seconds."""

from __future__ import annotations

import numpy as np

from tests.helpers import ok
from tests.pages.shared import (
    fresh_app,
    goto,
)

MODELS = "trained"


def open_tab(at, label: str):
    """Click a tab of the page (each tab runs only while it is open)."""
    at.session_state["diag_tab"] = label
    at.run()
    ok(at)
    return at


def charts(at) -> set[str]:
    return {c.key for c in at.get("plotly_chart")}


def test_diagnostics_curves_usage_and_iwae(app):
    goto(app, "diagnostics")
    assert app.title[0].value == "Model diagnostics"
    assert {"curve_elbo", "curve_terms", "curve_steps"} <= charts(app)
    assert not {"diag_kl", "diag_activity"} & charts(app)  # a closed tab is not drawn
    active = next(m for m in app.metric if m.label == "Active units")
    assert active.value.endswith("of 4")
    open_tab(app, "Latent usage")
    assert {"diag_kl", "diag_activity"} <= charts(app) and "curve_elbo" not in charts(app)
    open_tab(app, "Likelihood")
    assert not any(m.label == "IWAE NLL" for m in app.metric)
    app.number_input(key="iwae_n:asset:digits-mlp").set_value(20).run()
    app.select_slider(key="iwae_k").set_value(10).run()
    open_tab(app, "Samples")  # the inputs of a closed tab keep their values
    open_tab(app, "Likelihood")
    assert app.number_input(key="iwae_n:asset:digits-mlp").value == 20
    app.button(key="iwae_go").click().run()
    ok(app)
    nll = next(m for m in app.metric if m.label == "IWAE NLL")
    value = float(nll.value.split()[0])
    assert np.isfinite(value) and value > 0
    assert any(c.value.startswith("20 images, k = 10 samples") for c in app.caption)
    open_tab(app, "Disentanglement")
    assert any("MIG" in i.value for i in app.info)  # digits have no factors


def test_diagnostics_mig_for_shapes(model_dirs, monkeypatch):
    at = fresh_app(model_dirs, monkeypatch, model="asset:shapes-mlp")
    goto(at, "diagnostics")
    assert not any(c.key == "curve_elbo" for c in at.get("plotly_chart"))  # no training log
    assert any("no training log" in i.value for i in at.info)
    open_tab(at, "Disentanglement")
    mig = next(m for m in at.metric if m.label == "MIG")
    assert 0.0 <= float(mig.value) <= 1.0
    assert any(c.key == "diag_mi" for c in at.get("plotly_chart"))
