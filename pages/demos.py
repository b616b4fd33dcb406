"""Demos: short guided tours of the ideas behind a VAE, each run on a live model."""

import numpy as np
import streamlit as st

from vae.anomaly import detection
from vae.checkpoint import CheckpointError
from vae.data import DatasetError
from vae.traversal import far_from_data, nearest_labels, offsets, traversal_codes
from vae.ui import (
    analysis,
    cache,
    charts,
    data,
    frame,
    image_grids,
    images,
    infer,
    maps,
    models,
    state,
)

frame.ensure()  # a deep link on a fresh server runs this page alone (vae/ui/frame.py)

URL = "demos"
TOURS = ["The ideas", "Smooth latent spaces", "What each dimension does", "Anomaly detection"]
TWINS = {"digits-beta0": "β = 0 (no KL term)", "digits-2d": "β = 1 (a real VAE)"}
TWIN_COMMAND = (
    "python -m vae.train --dataset digits --arch mlp --hidden 256 --latent-dim 2 --beta {beta} "
    "--epochs 150 --lr 2e-3 --seed 0 --threads 1 --out assets/{name}"
)

run = models.require_run()
D = run.config.latent_dim
model_name = run.path.name

st.title("Guided demos")
st.caption(
    "Four short tours. Each one uses a real model: the one picked in the sidebar, or for the "
    "smoothness tour two small shipped twins that differ only in the KL term."
)

tabs = st.tabs(TOURS, key="demo_tour", on_change="rerun")


def pic(arrs, ncol: int, tile: int = 48, **kw) -> None:
    st.image(image_grids.labelled_grid(list(arrs), ncol, tile=tile, **kw), output_format="PNG")


# --- 1. the ideas ---------------------------------------------------------------------------------
if tabs[0].open:
    with tabs[0]:
        st.markdown(
            "A VAE has an **encoder** that turns an image x into a distribution q(z|x) over "
            "latent codes z, and a **decoder** that turns a code back into an image, p(x|z). "
            "New images come from decoding z drawn from the **prior** p(z) = N(0, I). Three "
            "ideas make it work (Kingma & Welling 2013)."
        )
        st.markdown("##### 1. The ELBO: the quantity training maximises")
        st.latex(
            r"\log p(x) \;\ge\; \underbrace{\mathbb{E}_{q(z\mid x)}\big[\log p(x\mid z)\big]}"
            r"_{\text{reconstruction}} \;-\; \underbrace{\mathrm{KL}\big(q(z\mid x)\,\|\,p(z)"
            r"\big)}_{\text{stay close to the prior}} \;=\; \text{ELBO}(x)"
        )
        st.markdown(
            "We cannot compute log p(x) directly, but this *evidence lower bound* is "
            "computable. The first term rewards codes that let the decoder redraw the image; "
            "the second charges for every nat of information the code carries, and pulls all "
            "codes towards one shared, simple region: the prior."
        )
        st.markdown("##### 2. The reparameterization trick")
        st.latex(
            r"z = \mu_\phi(x) + \sigma_\phi(x) \odot \varepsilon,\qquad "
            r"\varepsilon \sim \mathcal{N}(0, I)"
        )
        st.markdown(
            "Sampling z is random, and gradients do not flow through a random draw. Writing the "
            "sample as a deterministic function of the encoder's outputs (μ, σ) and outside "
            "noise ε moves the randomness out of the way, so backpropagation reaches the "
            "encoder."
        )
        st.markdown("##### 3. KL to the prior, in closed form")
        st.latex(
            r"\mathrm{KL}\big(\mathcal{N}(\mu, \sigma^2)\,\|\,\mathcal{N}(0, 1)\big) = "
            r"\tfrac12\sum_{d=1}^{D}\big(\mu_d^2 + \sigma_d^2 - 1 - \log \sigma_d^2\big)"
        )
        st.markdown(
            "For Gaussians the KL needs no sampling (Kingma & Welling 2013, App. B). It is zero "
            "only when μ = 0 and σ = 1, that is when the code says nothing about the image."
        )
        st.divider()
        st.markdown(f"##### Try it on **{model_name}**")
        no_likelihood = models.likelihood_missing(run)  # a user's model may declare none
        try:
            ds = None if no_likelihood else data.load(run)
        except DatasetError:
            ds = None
            data.missing_notice(run, key="ideas")
        if no_likelihood:
            st.info(no_likelihood, icon=":material/block:")
        if ds is not None:
            table = cache.latent_table(run, state.map_size(len(ds)))
            c_row, c_eps, _ = st.columns([1, 1, 2], vertical_alignment="bottom")
            row = c_row.number_input(
                "Image number", 0, len(ds) - 1, 0, key=f"demo_idea_row:{model_name}"
            )
            draws_key = f"_demo_eps:{model_name}"
            if c_eps.button(
                "Resample ε",
                icon=":material/casino:",
                key="demo_resample",
                help="Draw new noise ε ~ N(0, I): the same μ and σ of the same image give new "
                "codes z = μ + σ·ε, and so new decodes and a new estimate of the reconstruction "
                "term. The KL does not change: it needs no sampling.",
            ):
                st.session_state[draws_key] = st.session_state.get(draws_key, 0) + 1
            draw = int(st.session_state.get(draws_key, 0))
            x = data.images(ds, [int(row)])  # (1, C, H, W)
            mean, logvar = infer.encode(run, x)
            mean, std = mean[0], np.exp(0.5 * logvar[0])
            prior = infer.prior_info(run)
            if prior.learned:  # no closed form: sampled total, marginal KL per dimension
                kl_mc, kl_d = infer.mixture_kl(run, mean, 2 * np.log(std), seed=int(row))
            else:
                kl_d = 0.5 * (mean**2 + std**2 - 1 - 2 * np.log(std))  # (D,)
            rng = np.random.default_rng([int(row), draw])
            eps = rng.standard_normal((8, D)).astype(np.float32)  # (8, D)
            zs = mean[None] + std[None] * eps  # (8, D): the reparameterization
            ll = infer.log_likelihood(run, x[0], zs)  # (8,) log p(x|z) per code
            recon = float(ll.mean())
            kl = kl_mc if prior.learned else float(kl_d.sum())
            m1, m2, m3 = st.columns(3)
            m1.metric(
                "Reconstruction E[log p(x|z)]",
                f"{recon:.1f} nats",
                help="The first term of the ELBO: the mean of log p(x|z) over the 8 codes z "
                "below (a Monte Carlo estimate, so it moves a little with every ε).",
            )
            m2.metric(
                "KL(q(z|x) ‖ p(z))",
                f"{kl:.2f} nats",
                help="The second term, exact (closed form): the price of the information the "
                "code carries."
                if not prior.learned
                else f"The second term. This model's prior is {prior.name}, which has no "
                "closed-form KL, so it is estimated from 1,000 samples of q(z|x).",
            )
            m3.metric(
                "ELBO(x) = reconstruction − KL",
                f"{recon - kl:.1f} nats",
                help="A lower bound on log p(x): higher means the model finds x more typical.",
            )
            a, b = st.columns([1, 2], gap="large")
            order = [int(d) for d in table.dim_order()[: min(D, 16)]]  # the dataset's KL order
            with a:
                st.image(images.upscale(x[0], 160), caption="x", output_format="PNG")
                top = int(np.argmax(kl_d))
                if prior.learned:
                    st.caption(
                        f"z{top} strays furthest from the prior's marginal ({kl_d.max():.2f} "
                        "nats); with a mixture prior the dimensions' KLs do not add up to the KL."
                    )
                else:
                    st.caption(f"Of its KL, the largest share is z{top}'s ({kl_d.max():.2f} nats).")
            with b:
                st.plotly_chart(
                    charts.posterior_bars(mean, std, dims=order, height=240),
                    key="demo_posterior",
                    config={"displayModeBar": False},
                )
                st.caption(
                    "The encoder's answer q(z|x): mean μ (dot) ± σ per dimension, in the "
                    "dataset's KL order (as on every page)."
                )
            pic(infer.decode(run, zs), 8, tile=64, col_labels=[f"{v:.0f}" for v in ll])
            st.caption(
                f"Eight codes z = μ + σ·ε with different noise ε (draw {draw + 1}), decoded; "
                "above each, its log p(x|z) in nats. Their mean is the reconstruction term. The "
                "spread is what the decoder is trained on: every code near μ must still give x."
            )

# --- 2. smooth latent spaces ----------------------------------------------------------------------
if tabs[1].open:
    with tabs[1]:
        st.markdown(
            "**Why the KL term makes the space smooth.** Two 2-D models of the same 8×8 digits, "
            "trained the same way, except that the left one ignores the KL term (β = 0, a plain "
            "autoencoder with noise) and the right one is a real VAE (β = 1). With 2 latent "
            "dimensions, the map below *is* the latent space: no projection."
        )
        twins = {}
        for name in TWINS:
            path = models.assets_dir() / name
            try:
                twins[name] = models.load(path)
            except CheckpointError:
                beta = "0.0" if name == "digits-beta0" else "1.0"
                st.info(
                    f"This tour needs the shipped model **{name}**, which is missing. Train it "
                    f"with:\n\n```\n{TWIN_COMMAND.format(beta=beta, name=name)}\n```",
                    icon=":material/science:",
                )
        n_samples = 16
        if len(twins) == 2:
            seed = st.columns([1, 3])[0].number_input(
                "Seed for the prior samples", 0, 10_000, 0, key="demo_seed"
            )
            z_prior = (
                np.random.default_rng(int(seed)).standard_normal((n_samples, 2)).astype(np.float32)
            )
            cols = st.columns(2, gap="large")
            for col, (name, twin) in zip(cols, twins.items(), strict=True):
                with col:
                    st.markdown(f"##### {TWINS[name]}")
                    table = cache.latent_table(twin, 2000)
                    tds = data.load(twin)
                    xy = table.mean[:, :2]
                    fig = maps.latent_map(
                        xy,
                        table.labels,
                        categorical=True,
                        color_title="digit",
                        category_names=tds.label_names,
                        rows=table.rows,
                        axis_titles=("z0", "z1"),
                        height=420,
                    ).figure
                    for r, dash in ((1, "solid"), (2, "dot")):
                        fig.add_shape(
                            type="circle",
                            x0=-r,
                            y0=-r,
                            x1=r,
                            y1=r,
                            line=dict(color="#444", dash=dash, width=1.5),
                        )
                    holes = far_from_data(xy, 8)  # (8, 2)
                    maps.add_points(fig, z_prior, "prior samples", symbol="x")
                    maps.add_points(fig, holes, "holes", symbol="circle-open", color="#e4572e")
                    fig.update_layout(dragmode="pan", yaxis=dict(scaleanchor="x", scaleratio=1))
                    st.plotly_chart(fig, key=f"demo_map_{name}", config={"displaylogo": False})
                    sigma = float(np.exp(0.5 * table.logvar).mean())
                    lab, _ = nearest_labels(z_prior, table.mean, table.labels, k=5)
                    m1, m2 = st.columns(2)
                    m1.metric("Typical posterior σ", f"{sigma:.3f}")
                    m2.metric("Digits among the samples", f"{len(np.unique(lab))} of 10")
                    st.caption("Prior samples z ~ N(0, I), decoded:")
                    pic(infer.decode(twin, z_prior), 8, tile=44)
                    st.caption(
                        "8 “holes” (inside the cloud, far from every training code), decoded:"
                    )
                    pic(infer.decode(twin, holes), 8, tile=44)
            st.markdown(
                "**What to look for.** The circles are the prior's 1σ and 2σ contours, where "
                "generated codes come from. *Without* the KL term (left), nothing ties the codes "
                "to that region: each image becomes a point (posterior σ ≈ 0), the cloud is "
                "stretched and off-centre, so prior samples cover only part of it and produce "
                "only a few kinds of digit, and far from the data the decoder just extrapolates. "
                "*With* the KL term (right), every code is a fuzzy blob of width σ that the "
                "decoder must handle, the blobs overlap and fill the prior, and any z in the "
                "circles decodes to something digit-like: the space is smooth and complete."
            )
            st.caption(
                "“Digits among the samples” counts the distinct labels of the nearest training "
                "codes of the prior samples. The twins were trained with:"
            )
            for twin in twins.values():
                st.code(
                    twin.meta.get("command") or "(no command recorded)",
                    language="bash",
                    wrap_lines=True,
                )

# --- 3. what each dimension does ------------------------------------------------------------------
if tabs[2].open:
    with tabs[2]:
        st.markdown(
            f"**What does each dimension do?** The dimensions of **{model_name}** that carry the "
            "most information (highest KL), each swept from −3 to +3 around z = 0 while the "
            "others stay at 0. Pick another model in the sidebar to compare."
        )
        try:
            ds = data.load(run)
            table = cache.latent_table(run, state.map_size(len(ds)))
        except DatasetError:
            table = None
            data.missing_notice(run, key="dims")
        if table is not None:
            kl = table.kl_per_dim
            order = [int(d) for d in table.dim_order()]
            top = order[: min(4, D)]
            offs = offsets(7, 3.0)  # -3, -2, ..., +3
            mig = analysis.mig(run, table) if table.factors is not None else None
            names = ds.label_names or []
            for d in top:
                codes = traversal_codes(np.zeros(D, np.float32), [d], offs)[0]  # (7, D)
                st.markdown(f"**z{d}** · KL {kl[d]:.2f} nats")
                pic(infer.decode(run, codes), 7, tile=60, col_labels=[f"{v:+.0f}" for v in offs])
                if mig is not None:
                    f = int(np.argmax(mig["mi"][:, d]))
                    st.caption(
                        f"Mostly about **{ds.factor_names[f]}** (mutual information "
                        f"{mig['mi'][f, d]:.2f} nats, the largest for this dimension)."
                    )
                elif table.labels is not None:
                    lab, share = nearest_labels(codes[[0, -1]], table.mean, table.labels, k=10)
                    ends = [names[v] if v < len(names) else str(v) for v in lab]
                    st.caption(
                        f"At −3 the nearest training codes are mostly “{ends[0]}” "
                        f"({100 * share[0]:.0f}%), at +3 mostly “{ends[1]}” "
                        f"({100 * share[1]:.0f}%)."
                        + (" It changes style more than class." if lab[0] == lab[1] else "")
                    )
            collapsed = [d for d in order if kl[d] < maps.COLLAPSED_KL]
            if collapsed:
                d = collapsed[0]
                codes = traversal_codes(np.zeros(D, np.float32), [d], offs)[0]
                st.markdown(f"**z{d}** · KL {kl[d]:.3f} nats · *collapsed*")
                pic(infer.decode(run, codes), 7, tile=60, col_labels=[f"{v:+.0f}" for v in offs])
                st.caption(
                    f"{len(collapsed)} of {D} dimensions are collapsed, like this one: the "
                    "decoder ignores them, so sweeping them changes nothing."
                )
            else:
                st.caption(f"None of the {D} dimensions is collapsed.")
            st.page_link(
                "pages/traverse.py",
                label="All dimensions on the Traverse page",
                icon=":material/open_in_new:",
            )

# --- 4. anomaly detection -------------------------------------------------------------------------
if tabs[3].open:
    with tabs[3]:
        st.markdown(
            f"**Anomaly detection with the ELBO.** A VAE scores any input by its ELBO: high "
            f"for images like its training data, low for others. Here **{model_name}** scores "
            "test images and four kinds of unusual input: pixel noise, inverted images, "
            "images rotated by 90°, and pictures from a different dataset."
        )
        no_likelihood = models.likelihood_missing(run)  # scores are ELBOs: a likelihood needed
        scores = None
        if no_likelihood:
            st.info(no_likelihood, icon=":material/block:")
        else:
            try:
                scores = analysis.ood_scores(run, n=500)
                examples = analysis.ood_examples(run, n=8)
            except DatasetError:
                data.missing_notice(run, key="anomaly")
        if scores is not None:
            cols = st.columns(len(examples))
            for col, (name, x) in zip(cols, examples.items(), strict=True):
                with col:
                    st.image(
                        image_grids.labelled_grid(list(x), 4, tile=36),
                        caption=name,
                        output_format="PNG",
                    )
            rate = st.columns([2, 3])[0].slider(
                "Accepted false-alarm rate (share of normal test images flagged)",
                0.01,
                0.20,
                0.05,
                0.01,
                key="demo_far",
                format="%.2f",
            )
            test = scores["test images"]
            results = {n: detection(test, s, rate) for n, s in scores.items() if n != "test images"}
            threshold = next(iter(results.values()))["threshold"]
            st.plotly_chart(charts.elbo_histograms(scores, threshold), key="demo_hist", config={})
            ms = st.columns(len(results))
            for m, (name, r) in zip(ms, results.items(), strict=True):
                m.metric(
                    f"{name}: detected",
                    f"{100 * r['detected']:.0f}%",
                    help=f"AUROC {r['auroc']:.3f} (1 = perfect separation, 0.5 = chance).",
                )
            missed = [n for n, r in results.items() if r["detected"] < 0.5]
            st.caption(
                f"Rule: flag an input when its ELBO is below {threshold:.1f} nats, the "
                f"{100 * rate:.0f}th percentile of the test ELBOs (so {100 * rate:.0f}% of "
                f"normal images are flagged by mistake). Each of the {len(test)} test images and "
                "each unusual input was scored with one seeded sample of z."
                + (
                    f" Most {' and '.join(missed)} inputs slip through. Either they are not so "
                    "unusual for this model (a rotated shape is still a shape), or they are "
                    "unusual but *simple*: likelihood models can give simple images a high "
                    "score (Nalisnick et al. 2019). The ELBO alone is not a complete anomaly "
                    "detector."
                    if missed
                    else ""
                )
            )

state.sync_url(page=URL)
