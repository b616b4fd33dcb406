"""Encode: upload your own images and see where the model puts them in its latent space."""

import numpy as np
import streamlit as st

from vae.data import DatasetError
from vae.imageio import ImageError, open_image
from vae.preprocess import PreprocessError
from vae.ui import cache, charts, data, frame, images, infer, maps, models, state

frame.ensure()  # a deep link on a fresh server runs this page alone (vae/ui/frame.py)

K = 8  # nearest neighbours shown

ACCEPTED = ["png", "jpg", "jpeg", "webp", "bmp", "gif"]

run = models.require_run()
ds = data.try_load(run)  # None without the data: encoding needs only the model

st.title("Encode your own image")
st.caption(
    "Upload a photo or drawing. It is prepared the way the model's training images were made "
    "(each step is shown), then the encoder maps it to a distribution over latent codes: a mean "
    "and a spread σ per dimension. You see how the model redraws it, how typical it finds it, "
    "which dataset images are closest in latent space, and where it lands on the latent map."
)

up_col, cam_col = st.columns([3, 1], vertical_alignment="bottom")
# Any file is taken and checked here (not only by the browser's file filter), so a wrong type gets
# a sentence naming the accepted ones instead of a bare red chip.
uploads = up_col.file_uploader(
    "Images (PNG, JPEG, WebP, BMP or GIF)",
    accept_multiple_files=True,
    key="encode_uploads",
    help="Any photo or drawing in one of these formats; several at once are compared on one map.",
)
files = []
for f in uploads or []:
    if f.name.rsplit(".", 1)[-1].lower() not in ACCEPTED:
        st.error(
            f"**{f.name}** is not an image this page can read. Upload a PNG, JPEG, WebP, BMP or "
            "GIF file.",
            icon=":material/block:",
        )
        continue
    files.append((f.name, f.getvalue()))
if cam_col.toggle("Use the camera", key="encode_camera"):
    shot = st.camera_input("Take a photo of a digit on paper")
    if shot is not None:
        files.append(("camera photo", shot.getvalue()))

if ds is None:
    data.missing_notice(
        run,
        "Your images are still encoded and redrawn below; how typical each one is, its nearest "
        "dataset images and the map wait for the data.",
    )
if not files:
    st.info("Upload one or more images to encode them.", icon=":material/upload:")
    st.stop()

table = proj = scores = None
no_likelihood = models.likelihood_missing(run)  # a user's model may have no ELBO
if ds is not None:
    try:
        table = cache.latent_table(run, state.map_size(len(ds)))
        proj = cache.projection(run, table, state.projection_method())
        scores = None if no_likelihood else cache.elbo_scores(run, table)
    except (DatasetError, ValueError, ImportError) as e:
        st.error(f"Could not prepare the dataset's latent codes: {e}")
        table = proj = scores = None
D = run.config.latent_dim
means = table.mean if table is not None else np.zeros((0, D), np.float32)  # (N, D)

placed: list[tuple[str, np.ndarray]] = []
for i, (name, blob) in enumerate(files):
    with st.container(border=True):
        st.subheader(f"{len(placed) + 1} · {name}" if len(files) > 1 else name)
        try:
            labels = table.labels if table is not None else None
            enc = infer.encode_upload(run, open_image(blob, name), means, labels, K)
        except (ImageError, PreprocessError) as e:
            st.error(str(e), icon=":material/broken_image:")
            continue
        placed.append((name, enc.mean))

        st.caption("Preparation, step by step (the last picture is what the encoder sees):")
        steps = enc.steps[:8]
        for col, (step, pic) in zip(st.columns(len(steps)), steps, strict=True):
            col.image(images.letterbox(pic, 112), caption=step, width=112, output_format="PNG")

        left, right = st.columns([2, 3], gap="large")
        with left:
            a, b = st.columns(2)
            a.image(images.upscale(enc.x, 160), caption="Model input", output_format="PNG")
            b.image(images.upscale(enc.recon, 160), caption="Reconstruction", output_format="PNG")
            st.metric("ELBO", "—" if no_likelihood else f"{enc.elbo:.1f} nats")
            if no_likelihood:
                st.caption(no_likelihood)
            elif scores is not None:
                pct = 100.0 * float((scores.elbo < enc.elbo).mean())
                st.caption(
                    f"Higher than {pct:.0f}% of the dataset's images: "
                    + (
                        "the model finds it typical."
                        if pct >= 20
                        else "the model finds it unusual (a lower ELBO means a worse fit)."
                    )
                )
            else:
                st.caption("Higher is better: the model finds the image more typical.")
            if st.button(
                "Open in Explore",
                key=f"to_explore_{i}",
                type="primary",
                icon=":material/explore:",
                help="Load this image's latent mean into Explore's sliders (same tab).",
            ):
                state.request_z(enc.mean)
                state.set_selected_index(None)
                st.switch_page("pages/explore.py")
        with right:
            order = table.dim_order() if table is not None else np.arange(D)
            prior = infer.prior_info(run)
            st.plotly_chart(
                charts.posterior_bars(
                    enc.mean,
                    enc.std,
                    dims=order[: min(len(order), 32)],
                    prior_mean=prior.mean,
                    prior_std=prior.std,
                ),
                key=f"posterior_{i}",
                config={"displayModeBar": False},
            )
            st.caption(
                "The encoder's answer per latent dimension: the dot is the mean, the bar ±σ. "
                + (
                    "The grey bands are the prior N(0, 1) (±1 and ±2). A dimension whose dot "
                    "sits at 0 with σ ≈ 1 says nothing about this image."
                    if not prior.learned
                    else f"This model's prior is {prior.name}: the grey bars are its marginal "
                    "p(z_d) per dimension, mean ± 1 and ± 2 standard deviations (σ = "
                    f"{float(prior.std.min()):.2f} to {float(prior.std.max()):.2f}). A dimension "
                    "whose dot sits mid-bar with a bar as long as the prior's says nothing about "
                    "this image."
                )
            )

        if table is None:
            continue
        st.markdown("**Nearest dataset images** in latent space")
        cols = st.columns(len(enc.neighbours))
        for rank, (col, pos, dist) in enumerate(
            zip(cols, enc.neighbours, enc.distances, strict=True)
        ):
            row = int(table.rows[pos])
            col.image(
                images.upscale(data.images(ds, [row])[0], 96),
                caption=f"label {data.label_of(ds, row)} · d={dist:.2f}",
                alt=f"neighbour {rank + 1}",
                output_format="PNG",
            )

if placed and table is not None:
    st.subheader("Where they land on the map")
    xy = np.asarray(proj.embedding, np.float32)
    color = table.labels if table.labels is not None else table.kl
    fig = maps.latent_map(
        xy,
        color,
        categorical=table.labels is not None,
        color_title="label" if table.labels is not None else "KL",
        category_names=ds.label_names,
        rows=table.rows,
        height=480,
    ).figure
    pts = np.asarray(proj.transform(np.stack([m for _, m in placed])), np.float32)  # (M, 2)
    # several uploads: numbered stars (names would overlap), the names in the hover and below
    many = len(placed) > 1
    maps.add_stars(
        fig,
        pts,
        [str(k + 1) if many else n for k, (n, _) in enumerate(placed)],
        hover=[n for n, _ in placed],
    )
    st.plotly_chart(fig, key="encode_map", config={"displaylogo": False})
    key_text = " · ".join(f"★{k + 1} {n}" for k, (n, _) in enumerate(placed)) + ". " if many else ""
    st.caption(
        key_text + "Each ★ is an uploaded image, placed with the map's existing projection "
        f"(nothing is refitted). Dots are {len(table):,} dataset images."
    )
