"""The Demos page through AppTest, on models trained in seconds."""

from __future__ import annotations

from tests.pages.shared import (
    TOURS,
    fresh_app,
    goto,
    open_tour,
)

MODELS = "trained"


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
