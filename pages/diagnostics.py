"""Diagnostics: how training went, which latent dimensions are used, and how good the model is."""

import math

import streamlit as st

from vae.thresholds import ACTIVE_UNIT, COLLAPSED_KL
from vae.ui import analysis, cache, charts, data, frame, image_grids, infer, models, state

frame.ensure()  # a deep link on a fresh server runs this page alone (vae/ui/frame.py)

URL = "diagnostics"
K_CHOICES = [1, 10, 50, 100, 500, 1000, 5000]

run = models.require_run()
D = run.config.latent_dim
prior = infer.prior_info(run)  # N(0, I), or a learned mixture
model_key = st.session_state[state.MODEL]
ds = data.try_load(run)

st.title("Model diagnostics")
st.caption(
    "How training went, how the model uses its latent dimensions, how well it explains the "
    "data (the likelihood), and what it generates. All numbers are in nats (natural-log units); "
    "for an ELBO, higher is better, for a negative log-likelihood (NLL), lower is better."
)

epochs, steps = analysis.training_logs(run)
stored = analysis.stored_metrics(run)
table = None
if ds is not None:
    table = cache.latent_table(run, state.map_size(len(ds)))

# --- headline numbers -----------------------------------------------------------------------------
last = epochs[-1] if epochs else stored
m1, m2, m3, m4 = st.columns(4)
test_elbo = last.get("test_elbo")
m1.metric(
    "Test ELBO",
    f"{test_elbo:.2f}" if isinstance(test_elbo, (int, float)) else "—",
    help="Evidence lower bound on held-out images, averaged (single sample), in nats.",
)
m2.metric("Epochs", str(last.get("epoch", stored.get("epochs", "—"))))
if ds is not None:
    n_active, activity = analysis.active_units(run)
    m3.metric(
        "Active units",
        f"{n_active} of {D}",
        help="Dimensions whose posterior mean varies across images: "
        f"Cov_x(E_q[z_d]) > {ACTIVE_UNIT:g} "
        "(Burda et al. 2015).",
    )
else:
    n_active, activity = None, None
    m3.metric("Active units", "—")
evaluation = stored.get("evaluation") if isinstance(stored.get("evaluation"), dict) else {}
saved_nll = next(
    (
        (split, ev)
        for split, ev in evaluation.items()
        if isinstance(ev, dict) and isinstance(ev.get("iwae_nll"), (int, float))
    ),
    None,
)
m4.metric(
    "IWAE NLL (saved)",
    f"{saved_nll[1]['iwae_nll']:.2f}" if saved_nll else "—",
    help="From `python -m vae.evaluate RUN --save`, stored in metrics.json.",
)
if ds is None:
    data.missing_notice(
        run,
        "Until then this page shows the training log, the stored figures and prior samples.",
    )

# Each tab runs only while it is open: a click on another one reruns the page for that tab.
tabs = st.tabs(
    ["Training curves", "Latent usage", "Likelihood", "Samples", "Disentanglement"],
    key="diag_tab",
    on_change="rerun",
)

# --- training curves ------------------------------------------------------------------------------
with tabs[0]:
    if tabs[0].open:
        if not epochs and not steps:
            st.info(
                "This model has no training log (metrics.jsonl). Models trained with "
                "`python -m vae.train` write one line per epoch.",
                icon=":material/show_chart:",
            )
        if epochs:
            a, b = st.columns(2)
            a.markdown("**ELBO per epoch** (higher is better)")
            a.plotly_chart(
                charts.curves(
                    epochs,
                    {"train_elbo": "train ELBO", "test_elbo": "test ELBO"},
                    dashed=["test_elbo"],
                ),
                key="curve_elbo",
            )
            b.markdown("**The two terms**: reconstruction error and KL (lower is better)")
            b.plotly_chart(
                charts.curves(
                    epochs,
                    {
                        "train_recon": "train reconstruction",
                        "test_recon": "test reconstruction",
                        "train_kl": "train KL",
                        "test_kl": "test KL",
                    },
                    dashed=["test_recon", "test_kl"],
                ),
                key="curve_terms",
            )
            st.caption(
                "ELBO = −(reconstruction error) − KL. The reconstruction error is how badly the "
                "decoder redraws an image from its code; the KL is how far the encoder's "
                f"distribution strays from the prior {prior.name}, i.e. how much information "
                "the code "
                "holds. A test curve well below the train curve means overfitting."
            )
            betas = [r.get("beta") for r in epochs if isinstance(r.get("beta"), (int, float))]
            if betas and (min(betas) != max(betas) or betas[0] != 1.0):
                st.caption(
                    f"β went from {betas[0]:g} to {betas[-1]:g} (KL warm-up or a β-VAE): the "
                    "training loss weighs the KL by β, the ELBO above always uses β = 1."
                )
        if steps:
            st.markdown(f"**Every logged training step** ({len(steps):,} points from steps.jsonl)")
            st.plotly_chart(
                charts.curves(
                    steps,
                    {"elbo": "ELBO", "recon": "reconstruction", "kl": "KL"},
                    x="step",
                ),
                key="curve_steps",
            )

# --- latent usage ---------------------------------------------------------------------------------
with tabs[1]:
    if tabs[1].open:
        if table is None or activity is None:
            st.info("Latent usage needs the dataset.", icon=":material/folder_off:")
        else:
            order = [int(d) for d in table.dim_order()]
            a, b = st.columns(2)
            a.plotly_chart(charts.kl_sorted_bars(table.kl_per_dim, order), key="diag_kl")
            a.caption(
                (
                    "Mean KL(q(z_d|x) ‖ N(0, 1)) per dimension: how many nats of information each "
                    f"dimension carries about an image. Grey: below {COLLAPSED_KL:g} nats."
                )
                if not prior.learned
                else (
                    "Mean KL(q(z_d|x) ‖ p(z_d)) per dimension, to the marginal of this model's "
                    f"learned prior ({prior.name}) for that dimension. The mixture ties the "
                    "dimensions together, so these do not add up to the KL. Grey: below "
                    f"{COLLAPSED_KL:g} nats."
                )
            )
            b.plotly_chart(charts.activity_bars(activity, order), key="diag_activity")
            b.caption(
                "Activity: the variance over the dataset of each dimension's posterior mean. An "
                "inactive dimension gives the same answer for every image."
            )
            inactive = D - n_active
            if n_active == 0:
                st.error(
                    "**Posterior collapse: no latent dimension is active.** The encoder returns "
                    "the prior N(0, I) for every image, so z says nothing about the input and the "
                    "decoder draws the same average picture every time. Retrain with a KL warm-up "
                    "(`--warmup-steps`), free bits (`--free-bits 0.5`) or a smaller β.",
                    icon=":material/blur_off:",
                )
            elif inactive >= max(2, D // 2):
                st.warning(
                    f"**Partial posterior collapse: {inactive} of {D} dimensions are inactive.** "
                    "For those dimensions the encoder outputs the prior N(0, 1) whatever the "
                    "image, because paying KL for them would not improve the reconstruction "
                    "enough. The model works in fewer dimensions than it has. That is normal for a "
                    "big latent "
                    "space on simple data; if it hurts the reconstructions, try a KL warm-up "
                    "(`--warmup-steps`), free bits (`--free-bits`) or a smaller β.",
                    icon=":material/warning:",
                )
            elif inactive:
                st.info(
                    f"{inactive} of {D} dimensions are inactive (the model does not need them); "
                    f"the other {n_active} carry the information.",
                    icon=":material/info:",
                )
            else:
                st.success(f"All {D} latent dimensions are active.", icon=":material/check_circle:")

# --- likelihood -----------------------------------------------------------------------------------
with tabs[2]:
    if tabs[2].open:
        st.markdown(
            "The ELBO is only a lower bound on log p(x). The **importance-weighted bound** (IWAE, "
            "Burda et al. 2015) averages k samples from the encoder and gets tighter as k grows; "
            "its negative is the usual NLL estimate reported in papers."
        )
        st.latex(
            r"\log p(x) \;\ge\; \mathbb{E}\Big[\log \frac{1}{k}\sum_{i=1}^{k} "
            r"\frac{p(x\mid z_i)\,p(z_i)}{q(z_i\mid x)}\Big],\qquad z_i \sim q(z\mid x)"
        )
        for split, ev in evaluation.items():
            if isinstance(ev, dict) and isinstance(ev.get("iwae_nll"), (int, float)):
                st.caption(
                    f"Saved evaluation on the {split} split: IWAE NLL **{ev['iwae_nll']:.2f}** "
                    f"nats (k = {ev.get('iw_samples', '?')}, {ev.get('n', '?')} images"
                    + (", binarized" if ev.get("binarized") else "")
                    + f"), and the ELBO of those same images {ev.get('elbo', float('nan')):.2f}"
                    + (
                        f" (one fixed binarization draw, seed {ev.get('seed', 0)}; the Test ELBO"
                        " above is the trainer's last-epoch figure over its own draws, hence the "
                        "small difference)."
                        if ev.get("binarized")
                        else "."
                    )
                )
        no_likelihood = models.likelihood_missing(run)  # a user's model may declare none
        if no_likelihood:
            st.info(no_likelihood, icon=":material/block:")
        elif ds is None:
            st.info("Estimating the NLL needs the dataset.", icon=":material/folder_off:")
        else:
            c1, c2, c3 = st.columns([2, 2, 2], vertical_alignment="bottom")
            n_img = c1.number_input(
                "Images",
                1,
                len(ds),
                min(500, len(ds)),
                step=50,
                key=f"iwae_n:{model_key}",
                persist_state="page",  # kept while another tab is open
                help=f"The first images of the {ds.extra.get('split', 'test')} split.",
            )
            k = c2.select_slider(
                "Samples per image (k)",
                K_CHOICES,
                value=100,
                key="iwae_k",
                persist_state="session",
                help="k = 1 gives the ELBO; papers use k = 5000. Cost grows with n × k.",
            )
            go = c3.button(
                "Estimate NLL", key="iwae_go", type="primary", icon=":material/calculate:"
            )
            result_key = f"_iwae:{model_key}"
            if go:
                bar = st.progress(0.0, text="Starting…")

                def on_progress(done: int, total: int) -> None:
                    bar.progress(done / max(total, 1), text=f"IWAE k={k}: {done} of {total} images")

                st.session_state[result_key] = analysis.iwae_nll(
                    run, int(n_img), int(k), progress=on_progress
                )
                bar.empty()
            res = st.session_state.get(result_key)
            if res:
                r1, r2, r3 = st.columns([1, 1, 2], vertical_alignment="center")
                finite = math.isfinite(res["nll"])
                r1.metric(
                    "IWAE NLL",
                    f"{res['nll']:.2f} nats" if finite else "not finite",
                    help="−log p̂(x): lower is better.",
                )
                r2.metric(
                    "−ELBO, same images",
                    f"{res['neg_elbo']:.2f} nats",
                    help="The single-sample bound; the gap to the NLL is what k samples buy.",
                )
                r3.caption(
                    f"{res['n']} images, k = {res['k']} samples each, computed in "
                    f"{res['seconds']:.1f} s. The NLL should be below the −ELBO; the gap shrinks "
                    "when the encoder's q(z|x) is close to the true posterior. For the full test "
                    f"set run `python -m vae.evaluate {models.cli_target(run)} --save`."
                )
            else:
                st.caption(
                    "Press the button to estimate; it takes seconds for a few hundred images."
                )

# --- samples and reconstructions ------------------------------------------------------------------
with tabs[3]:
    if tabs[3].open:
        a, b = st.columns(2, gap="large")
        with a:
            st.markdown("**Samples from the prior**")
            seed = st.number_input("Seed", 0, 1_000_000, 0, key="diag_seed", persist_state="page")
            z = infer.prior_draws(D, 32, int(seed), run)  # (32, D)
            st.image(
                image_grids.labelled_grid(infer.decode(run, z), 8, tile=56), output_format="PNG"
            )
            st.caption(
                f"z ~ {'p(z), ' + prior.name if prior.learned else 'N(0, I)'}, decoded: what "
                "the model generates on its own. Blurry or mixed "
                "pictures come from regions of latent space that no training image mapped to."
            )
        with b:
            st.markdown("**Reconstructions**")
            if ds is None:
                st.info("Reconstructions need the dataset.", icon=":material/folder_off:")
            else:
                start = st.number_input(
                    "First image",
                    0,
                    max(0, len(ds) - 8),
                    0,
                    step=8,
                    key=f"diag_rec:{model_key}",
                    persist_state="page",
                )
                x = data.images(ds, list(range(int(start), min(len(ds), int(start) + 8))))
                rec = infer.reconstruct(run, x)
                pic = image_grids.labelled_grid(
                    list(x) + list(rec),
                    len(x),
                    row_labels=["original", "recon"],
                    tile=int(400 // len(x)),
                )
                st.image(pic, output_format="PNG")
                st.caption(
                    "Top: dataset images. Bottom: the decoder's redrawing from each image's "
                    "posterior mean. What is lost here is what the latent code does not keep."
                )

# --- disentanglement ------------------------------------------------------------------------------
with tabs[4]:
    if tabs[4].open:
        result = analysis.mig(run, table) if table is not None else None
        if result is None:
            st.info(
                "The mutual information gap (MIG) needs a dataset with known generative "
                "factors, such as `shapes` (shape, scale, rotation, x, y), and at least 2 latent "
                "dimensions.",
                icon=":material/extension:",
            )
        else:
            names = ds.factor_names or [f"factor {i}" for i in range(table.factors.shape[1])]
            c1, c2 = st.columns([1, 3])
            c1.metric(
                "MIG",
                f"{result['mig']:.3f}",
                help="0: no dimension specialises; 1: each factor lives in exactly one dimension.",
            )
            per = result["per_factor"]
            c2.caption(
                "Per factor: "
                + ", ".join(
                    f"{n} {v:.2f}" if v is not None else f"{n} —"
                    for n, v in zip(names, per, strict=False)
                )
            )
            order = [int(d) for d in table.dim_order()]
            st.plotly_chart(charts.mi_heatmap(result["mi"], names, order), key="diag_mi")
            st.latex(
                r"\text{MIG} = \frac{1}{K}\sum_{k=1}^{K}\frac{I(v_k; z_{j^{(k)}}) - "
                r"I(v_k; z_{j'^{(k)}})}{H(v_k)}"
            )
            st.caption(
                "Each cell is the mutual information between a true factor (row) and a latent "
                "dimension (column, most informative first), estimated from "
                f"{len(table):,} images. A disentangled model has one bright cell per row. MIG "
                "(Chen et al. 2018) averages, over factors, the gap between the best and the "
                "second-best dimension, divided by the factor's entropy."
            )

state.sync_url(page=URL)
