"""A model with a learned mixture prior in the app: Random z, prior samples and the KL come from
its own prior, and every page that speaks of the prior says which one it is.

The prior is moved far from N(0, I) (every component at +2.5 with σ ≈ 0.02) after training, so a
page that drew from N(0, I), or used the closed-form KL to N(0, I), would fail here.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from scipy import stats
from scipy.special import logsumexp

from tests.helpers import app_test, digit_photo_png, far_mixture_run, ok
from tests.pages.shared import goto, latent_sliders, open_tour, plotly_values

K, D, AT = 3, 4, 2.5


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("mixture")
    far_mixture_run(root / "assets" / "digits-mlp", components=K, latent_dim=D, at=AT)
    (root / "runs").mkdir()
    (root / "data").mkdir()
    return {"assets": root / "assets", "runs": root / "runs", "cache": root / "cache", "root": root}


def start(model_dirs, monkeypatch, **env):
    at = app_test(model_dirs, monkeypatch, VAE_DATA_DIR=str(model_dirs["root"] / "data"), **env)
    ok(at)
    return at


def weights(model_dirs) -> dict[str, np.ndarray]:
    w = load_file(model_dirs["assets"] / "digits-mlp" / "model.safetensors")
    return {k: v.numpy().astype(np.float64) for k, v in w.items()}


def test_random_z_draws_from_the_learned_prior(model_dirs, monkeypatch):
    at = start(model_dirs, monkeypatch, VAE_LIVE_DECODER="0")  # server sliders: readable here
    button = next(b for b in at.button if b.label == "Random z")
    assert "learned mixture of 3 Gaussians" in button.help
    button.click().run()
    ok(at)
    z = np.array([s.value for s in latent_sliders(at)])
    assert len(z) == D and np.all(np.abs(z - AT) < 0.15), z  # N(0, I) would spread over ±2
    assert any("learned prior (3-Gaussian mixture)" in c.value for c in at.sidebar.caption)
    text = " ".join(c.value for c in at.caption)
    assert "learned mixture of 3 Gaussians" in text and "do not add up" in text


def test_prior_samples_and_interpolation_endpoints_come_from_it(model_dirs, monkeypatch):
    from vae.ui import infer

    at = start(model_dirs, monkeypatch)
    goto(at, "diagnostics")
    open_tour(at, "Samples")
    assert any("learned mixture of 3 Gaussians" in c.value for c in at.caption)
    from vae.checkpoint import load_run

    run = load_run(model_dirs["assets"] / "digits-mlp")
    draws = infer.prior_draws(D, 500, seed=0, run=run)  # (500, D)
    assert np.abs(draws - AT).max() < 0.2
    assert np.all(np.abs(infer.prior_sample(D, seed=3, run=run) - AT) < 0.2)


def test_the_ideas_tour_estimates_the_kl_to_the_mixture(model_dirs, monkeypatch):
    from vae.checkpoint import load_run
    from vae.data import load_dataset

    at = start(model_dirs, monkeypatch)
    goto(at, "demos")
    open_tour(at, "The ideas")
    metric = next(m for m in at.metric if m.label.startswith("KL("))
    assert "1,000 samples" in metric.help
    shown = float(metric.value.split()[0])
    # independently: scipy densities and 20,000 draws of q(z|x) for image 0 of the split shown
    run = load_run(model_dirs["assets"] / "digits-mlp")
    from vae.ui import data

    ds = data.load(run)
    x = data.images(ds, [0])
    with torch.no_grad():
        q = run.model.encode(torch.from_numpy(x))
    mean, std = q.mean[0].double().numpy(), q.std[0].double().numpy()
    w = weights(model_dirs)
    pi = np.exp(w["prior.logits"] - logsumexp(w["prior.logits"]))
    sd = np.exp(0.5 * np.clip(w["prior.logvars"], -9, 5))
    z = np.random.default_rng(0).normal(mean, std, size=(20000, D))
    log_q = stats.norm(mean, std).logpdf(z).sum(1)
    log_p = logsumexp(
        [np.log(pi[k]) + stats.norm(w["prior.means"][k], sd[k]).logpdf(z).sum(1) for k in range(K)],
        axis=0,
    )
    ratio = log_q - log_p
    se = ratio.std() / math.sqrt(1000) + ratio.std() / math.sqrt(20000)
    assert abs(shown - ratio.mean()) < 5 * se + 0.01
    closed = 0.5 * float(np.sum(mean**2 + std**2 - 1 - 2 * np.log(std)))  # KL to N(0, I)
    assert abs(shown - closed) > 10 * se  # the page did not use N(0, I)
    assert load_dataset  # the split is the app's own (data.load)


def test_traverse_centres_on_the_prior_mean(model_dirs, monkeypatch):
    at = start(model_dirs, monkeypatch)
    goto(at, "traverse")
    control = next(s for s in at.get("button_group") if s.label == "Centre")
    assert "Prior mean" in str(control.proto)
    assert any("learned mixture of 3 Gaussians" in c.value for c in at.caption)


def test_interpolate_measures_lengths_against_the_learned_prior(model_dirs, monkeypatch):
    at = start(model_dirs, monkeypatch)
    goto(at, "interpolate")
    caption = next(c.value for c in at.caption if c.value.startswith("Length of z"))
    # every component sits at (2.5, …, 2.5) with σ ≈ 0.02, so prior samples have ‖z‖ ≈ 2.5·√D
    assert f"‖z‖ ≈ {AT * math.sqrt(D):.2f}" in caption, caption
    assert "√D" not in caption  # that is N(0, I)'s length, not this prior's
    chart = next(c for c in at.get("plotly_chart") if "interp_norms" in str(c.proto.id))
    assert "typical sample of the learned prior (5.00)" in chart.proto.spec


def test_encode_draws_the_learned_prior_marginals(model_dirs, monkeypatch):
    import json

    at = start(model_dirs, monkeypatch)
    goto(at, "encode")
    at.get("file_uploader")[0].set_value(("seven.png", digit_photo_png(), "image/png")).run()
    ok(at)
    chart = next(c for c in at.get("plotly_chart") if "posterior_0" in str(c.proto.id))
    spec = json.loads(chart.proto.spec)
    bars = {t["name"]: t for t in spec["data"] if t["type"] == "bar"}
    assert set(bars) == {"prior ±1σ", "prior ±2σ"}
    assert not [s for s in spec["layout"].get("shapes", []) if s["type"] == "rect"]  # no N(0, 1)
    # independently: the mixture's marginal moments per dimension from its weights
    w = weights(model_dirs)
    pi = np.exp(w["prior.logits"] - logsumexp(w["prior.logits"]))  # (K,)
    var = np.exp(np.clip(w["prior.logvars"], -9, 5))  # (K, D)
    m = pi @ w["prior.means"]  # (D,)
    sd = np.sqrt(pi @ (var + w["prior.means"] ** 2) - m**2)  # (D,)
    one = bars["prior ±1σ"]
    dims = [int(lbl[1:]) for lbl in one["x"]]
    np.testing.assert_allclose(plotly_values(one["base"]), (m - sd)[dims], atol=1e-4)
    np.testing.assert_allclose(plotly_values(one["y"]), 2 * sd[dims], atol=1e-4)
    caption = " ".join(c.value for c in at.caption)
    assert "grey bars are its marginal" in caption and "learned mixture of 3 Gaussians" in caption
