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


def test_anomaly_histogram_off_scale_bars_are_in_their_groups_colours():
    import numpy as np

    from vae.ui.charts import elbo_histograms

    rng = np.random.default_rng(0)
    groups = {
        "test set": rng.normal(-30, 3, 500),
        "noise": np.r_[rng.normal(-2000, 50, 90), rng.normal(-40, 2, 10)],
    }
    fig = elbo_histograms(groups, threshold=-40.0)
    shown = [t for t in fig.data if t.showlegend is not False]
    assert [t.name for t in shown] == ["test set", "noise"]  # every colour drawn is in the legend
    colour = {t.name: t.marker.color for t in shown}
    for name in groups:
        traces = [t for t in fig.data if t.legendgroup == name]
        assert {t.marker.color for t in traces} == {colour[name]}
        total = sum(float(np.sum(t.y)) for t in traces)
        assert abs(total - 1.0) < 1e-9  # in-range bars plus the hatched one: the whole group
    (hatched,) = [t for t in fig.data if t.showlegend is False]
    assert hatched.legendgroup == "noise" and abs(hatched.y[0] - 0.9) < 1e-9  # 90 of 100 far out


def test_the_ideas_shows_the_elbo_terms_and_resamples_eps(app, model_dirs):
    import numpy as np
    import torch

    from vae.checkpoint import load_run

    goto(app, "demos")
    open_tour(app, "The ideas")
    m = {x.label: float(x.value.split()[0]) for x in app.metric}
    recon, kl, elbo = (
        m["Reconstruction E[log p(x|z)]"],
        m["KL(q(z|x) ‖ p(z))"],
        m["ELBO(x) = reconstruction − KL"],
    )
    assert abs(elbo - (recon - kl)) < 0.11  # as shown, rounded
    # independently: the model's own KL, and a 4000-sample estimate of the reconstruction term
    from vae.ui import data as uidata

    run = load_run(model_dirs["assets"] / "digits-mlp")
    x = torch.from_numpy(uidata.images(uidata.load(run), [0]))  # (1, C, H, W)
    model = run.model.eval()
    with torch.no_grad():
        q = model.encode(x)
        z = q.sample(torch.Generator().manual_seed(0), n=4000)[:, 0]  # (4000, D)
        ll = model.log_likelihood(model.decode_params(z), x)  # (4000,)
    assert abs(kl - float(q.kl()[0])) < 0.01
    se = float(ll.std()) / np.sqrt(8)  # the page averages 8 samples
    assert abs(recon - float(ll.mean())) < 5 * se + 0.1
    before = [i.value for i in app.get("image")]
    app.button(key="demo_resample").click().run()
    m2 = {x.label: float(x.value.split()[0]) for x in app.metric}
    assert m2["KL(q(z|x) ‖ p(z))"] == kl  # exact: no sampling
    assert m2["Reconstruction E[log p(x|z)]"] != recon  # new ε, new estimate
    assert [i.value for i in app.get("image")] != before  # new decodes
