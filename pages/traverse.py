"""Traverse: what each latent dimension does, one dimension (or two) at a time."""

import numpy as np
import streamlit as st

from vae.data import DatasetError
from vae.projection import ProjectionError
from vae.traversal import direction_plane_codes, manifold_codes, offsets, traversal_codes
from vae.ui import (
    cache,
    data,
    frame,
    image_grids,
    images,
    infer,
    live,
    maps,
    models,
    sliders,
    state,
)

frame.ensure()  # a deep link on a fresh server runs this page alone (vae/ui/frame.py)

URL = "traverse"
STEPS = [5, 7, 9, 11, 13]

run = models.require_run()
D = run.config.latent_dim
model_key = st.session_state[state.MODEL]
name = run.path.name

st.title("Traverse the latent dimensions")
st.caption(
    "Change z a little at a time around a centre and decode every step: one dimension per row, "
    "two at once as a grid, live on a pad under your pointer, or as an animation. The Centre "
    "below applies to every tab, the Span to all but the pad (which spans the sliders' range)."
)

prior = infer.prior_info(run)  # N(0, I), or a learned mixture

# --- which dimensions matter (KL per dimension needs the dataset; the grid itself does not) -------
table = None
try:
    table = cache.latent_table(run, state.map_size(len(data.load(run))))
    kl = np.asarray(table.kl_per_dim, np.float32)
    order = [int(d) for d in table.dim_order()]
except DatasetError:
    kl, order = None, list(range(D))
    data.missing_notice(
        run,
        "The traversals need only the decoder, so they work now; without the data the "
        "dimensions are in index order, without their KL.",
    )


def dim_label(d: int) -> str:
    if kl is None:
        return f"z{d}"
    return f"z{d} · KL {kl[d]:.2f}" + (" · collapsed" if kl[d] < maps.COLLAPSED_KL else "")


# --- controls -------------------------------------------------------------------------------------
c1, c2, _ = st.columns([3, 2, 4], vertical_alignment="bottom")
centre_mode = c1.segmented_control(
    "Centre",
    ["explore", "prior"],
    default="explore",
    required=True,
    key="trav_centre",
    persist_state="session",
    format_func=lambda m: {
        "explore": "z from Explore",
        "prior": "Prior mean" if prior.learned else "Prior mean (z = 0)",
    }[m],
    help="Traverse around the z set by Explore's sliders, or around the centre of the prior.",
)
span = c2.slider(
    "Span (±σ)",
    0.5,
    4.0,
    3.0,
    0.5,
    key="trav_span",
    persist_state="session",
    help="How far each column goes, in prior standard deviations.",
)

z_explore = state.current_z(D)
if centre_mode == "explore" and z_explore is not None:
    centre = np.asarray(z_explore, np.float32)
    centre_text = "z from Explore's sliders"
elif prior.learned and centre_mode == "prior":
    centre = np.asarray(prior.mean, np.float32)
    centre_text = f"the mean of the prior, {prior.name}"
else:
    centre = np.zeros(D, np.float32)
    centre_text = "z = 0, the prior mean" if not prior.learned else "z = 0"
    if centre_mode == "explore":
        st.caption("Explore's sliders have not been set yet, so the centre is z = 0.")
if prior.learned:
    st.caption(
        f"This model's prior is {prior.name}, not N(0, I): Span counts units of z, and the "
        f"prior's own spread per dimension is σ = {float(prior.std.min()):.2f} to "
        f"{float(prior.std.max()):.2f}."
    )


def tick(v: float) -> str:
    """+0.75, -1.5, +3 and 0 for the centre: short ASCII labels (no trailing zeros)."""
    text = f"{v:+.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("+0", "-0") else text


tab_rows, tab_plane, tab_pad, tab_gif = st.tabs(
    ["One dimension per row", "Two dimensions at once", "Live 2-D pad", "Animated GIF"]
)

# --- one dimension per row ------------------------------------------------------------------------
with tab_rows:
    st.caption(
        "Each row changes **one** latent dimension of z and keeps all the others fixed. Columns "
        "go from −span to +span prior standard deviations around the centre (framed in orange). "
        "A row whose pictures change is a dimension the decoder uses; a row that stays the same "
        "is a *collapsed* dimension that carries no information."
    )
    r1, r2, r3 = st.columns([2, 3, 2], vertical_alignment="bottom")
    steps = r1.select_slider("Columns", STEPS, value=9, key="trav_steps", persist_state="session")
    hide_collapsed = r3.toggle(
        "Hide collapsed",
        value=False,
        key="trav_hide",
        persist_state="session",
        disabled=kl is None,
        help=f"Leave out dimensions whose KL is below {maps.COLLAPSED_KL:g} nats: they do nothing",
    )
    offs = offsets(int(steps), float(span))
    col_labels = [tick(v) for v in offs]
    mid = int(steps) // 2
    dims = [
        d for d in order if not (hide_collapsed and kl is not None and kl[d] < maps.COLLAPSED_KL)
    ]
    if not dims:
        st.info(
            "Every dimension is collapsed: the decoder ignores z entirely.",
            icon=":material/blur_off:",
        )
    else:
        top = min(len(dims), 12)
        n_rows = top
        if len(dims) > 1:
            n_rows = r2.slider(
                "Rows (most informative first)",
                1,
                len(dims),
                top,
                key=f"trav_rows:{model_key}",
            )
        dims = dims[:n_rows]
        codes = traversal_codes(centre, dims, offs)  # (R, S, D)
        tiles = infer.decode(run, codes.reshape(-1, D))  # (R*S, C, H, W)
        muted = [r for r, d in enumerate(dims) if kl is not None and kl[d] < maps.COLLAPSED_KL]
        tile = int(np.clip(640 // int(steps), 44, 80))
        pic = image_grids.labelled_grid(
            tiles,
            int(steps),
            row_labels=[dim_label(d) for d in dims],
            col_labels=col_labels,
            muted_rows=muted,
            highlight_col=mid if int(steps) % 2 else None,
            tile=tile,
        )
        st.image(pic, output_format="PNG")
        st.caption(
            f"Centre: {centre_text}. Rows are sorted by KL (how much information the dimension "
            "carries, averaged over the dataset); greyed rows are collapsed."
        )
        st.download_button(
            "Download grid (PNG)",
            images.png_bytes(pic),
            file_name=f"traversal-{name}.png",
            mime="image/png",
            on_click="ignore",
            icon=":material/download:",
            key="trav_png",
        )

# --- two dimensions: a 2-D manifold ---------------------------------------------------------------
with tab_plane:
    st.caption(
        "A grid over two directions at once: two latent dimensions, or the plane of the two "
        "principal components of the dataset's codes, through the centre."
    )
    kinds = ["dims", "pca"] if D >= 2 else []
    plane = None
    if not kinds:
        st.info(
            "This model has a single latent dimension; see the first tab.", icon=":material/info:"
        )
    else:
        p1, p2, p3, p4 = st.columns([3, 2, 2, 2], vertical_alignment="bottom")
        kind = p1.segmented_control(
            "Plane",
            kinds,
            default="dims",
            required=True,
            key="trav_plane_kind",
            persist_state="session",
            format_func=lambda k: {"dims": "Two latent dimensions", "pca": "PCA plane"}[k],
            help="The PCA plane runs along the two directions in which the dataset's codes vary "
            "most, through the centre; Span is measured in the data's spread (σ) along each.",
        )
        n_grid = p4.select_slider(
            "Grid size", [5, 7, 9, 11, 15, 21], value=11, key="trav_grid", persist_state="session"
        )
        plane = None
        if kind == "dims":
            dx = p2.selectbox(
                "Across (x)", order, index=0, format_func=dim_label, key=f"trav_dx:{model_key}"
            )
            dy = p3.selectbox(
                "Up (y)", order, index=1, format_func=dim_label, key=f"trav_dy:{model_key}"
            )
            if dx == dy:
                st.warning("Pick two different dimensions.", icon=":material/swap_horiz:")
            else:
                g = offsets(int(n_grid), float(span))
                plane = manifold_codes(centre, int(dx), int(dy), g).reshape(-1, D)  # (S*S, D)
                row_labels, cols = [tick(v) for v in g[::-1]], [tick(v) for v in g]
                what = (
                    f"x moves z{dx} and y moves z{dy} by −{span:g}…+{span:g} around the centre "
                    f"({centre_text}); larger values are right and up."
                )
        elif table is None:
            st.info("The PCA plane needs the dataset's latent codes.", icon=":material/folder_off:")
        else:
            try:
                proj = cache.projection(run, table, "pca")
            except (ProjectionError, ValueError) as e:
                proj = None
                st.error(f"Could not fit PCA to the latent codes: {e}")
            if proj is not None:
                g = offsets(int(n_grid), float(span))
                sigma = np.asarray(proj.embedding, np.float64).std(0)  # (2,) spread along each PC
                plane = direction_plane_codes(centre, proj.components, sigma, g).reshape(-1, D)
                row_labels, cols = [tick(v) for v in g[::-1]], [tick(v) for v in g]
                ev = proj.explained_variance_ratio
                what = (
                    f"x moves along the first principal component ({100 * ev[0]:.0f}% of the "
                    f"variance of the dataset's codes) and y along the second "
                    f"({100 * ev[1]:.0f}%), by −{span:g}…+{span:g} times the data's spread (σ) "
                    f"along each, around the centre ({centre_text}). Every other direction stays "
                    "at the centre."
                )
    if plane is not None:
        tiles = infer.decode(run, plane)  # (S*S, C, H, W)
        tile = int(np.clip(720 // int(n_grid), 32, 72))
        pic2 = image_grids.labelled_grid(
            tiles, int(n_grid), row_labels=row_labels, col_labels=cols, tile=tile, font_size=11
        )
        st.image(pic2, output_format="PNG")
        st.caption(what + " Smooth changes from tile to tile mean a smooth latent space.")
        st.download_button(
            "Download manifold (PNG)",
            images.png_bytes(pic2),
            file_name=f"manifold-{name}.png",
            mime="image/png",
            on_click="ignore",
            icon=":material/download:",
            key="trav_plane_png",
        )

# --- a live pad over two dimensions (decoded in the browser) -------------------------------------
with tab_pad:
    live_dec = live.decoder(run)
    if live_dec is None:
        reason = live.unsupported_reason(run)
        st.info(
            "The live pad decodes in your browser, which this model's decoder does not allow"
            + (f": {reason}." if reason else " (browser decoding is turned off).")
            + " The **Two dimensions at once** tab shows the same plane as a grid.",
            icon=":material/grid_off:",
        )
    else:
        pad_limit = sliders.limit_for(table.mean) if table is not None else sliders.LIMIT
        st.caption(
            f"Set two dimensions at once around the centre ({centre_text}); the other "
            f"{D - 2} stay fixed. Releasing the handle makes this z the one Explore shows."
        )
        pad_z = live.pad_panel(
            run,
            live_dec,
            key=f"trav-pad-{model_key}",
            z=np.clip(centre, -pad_limit, pad_limit),
            order=order,
            label=dim_label,
            limit=pad_limit,
            group=model_key,
        )
        if pad_z is not None:
            state.set_current_z(np.clip(pad_z, -pad_limit, pad_limit).astype(np.float32))

# --- one dimension as an animation ----------------------------------------------------------------
with tab_gif:
    g1, g2, g3 = st.columns([3, 2, 2], vertical_alignment="bottom")
    d_gif = g1.selectbox("Dimension", order, format_func=dim_label, key=f"trav_gif_dim:{model_key}")
    frames = g2.slider("Frames", 5, 41, 21, 2, key="trav_frames", persist_state="session")
    fps = g3.slider("Frames per second", 2, 24, 10, key="trav_fps", persist_state="session")
    codes = traversal_codes(centre, [int(d_gif)], offsets(int(frames), float(span)))[0]  # (F, D)
    gif = image_grids.gif_bytes(infer.decode(run, codes), size=192, fps=float(fps))
    a, b = st.columns([1, 3], vertical_alignment="center")
    a.image(gif, width=192)
    b.caption(
        f"z{d_gif} sweeps from −{span:g} to +{span:g} around the centre ({centre_text}) and back, "
        "looping. The file plays in any browser or slide deck."
    )
    b.download_button(
        "Download GIF",
        gif,
        file_name=f"traverse-z{d_gif}-{name}.gif",
        mime="image/gif",
        on_click="ignore",
        icon=":material/download:",
        key="trav_gif",
    )

state.sync_url(page=URL)
