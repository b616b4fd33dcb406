"""Explore: a map of the latent space, and sliders that walk it with a live decoded image."""

import time

import numpy as np
import streamlit as st

from vae.data import DatasetError
from vae.projection import METHODS, UMAP_INSTALL, PCAProjection, available_methods, warm_up_umap
from vae.ui import (
    cache,
    data,
    fits,
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

METHOD_NAMES = {"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP"}
SIZES = [1000, 2000, 5000, 10_000]
MAP_KEY = "latent_map"

run = models.require_run()
live_dec = live.decoder(run)  # first: the decoder's weights reach the page while the rest runs
ds = data.try_load(run)  # None without the data: the decoder needs none, so the sliders still work
model_key = st.session_state[state.MODEL]
D = run.config.latent_dim
prior = infer.prior_info(run)  # N(0, I), or a learned mixture (Random z draws from it)
no_likelihood = models.likelihood_missing(run)  # a user's model may have none: no recon, no ELBO

st.title("Explore the latent space")
if ds is None:
    st.caption(
        "The map places every dataset image by its latent code, so it waits for the data. The "
        "decoder needs none: move the sliders on the right (or draw a random z) and watch what "
        "it draws."
    )
else:
    st.caption(
        "Every dot is one image of the dataset, placed by the centre of its latent code (the "
        + (
            "posterior mean), in its own 2-D latent plane. "
            if D == 2
            else f"posterior mean), squeezed from {D} dimensions to 2. "
        )
        + "Click a dot to decode it, or select a "
        "group with the lasso tool at the top right of the map. The sliders on the right set a "
        "latent vector z directly; the decoder turns it into the image above them."
    )

if ds is not None:  # the map and everything drawn from the dataset
    # --- map controls -----------------------------------------------------------------------------
    methods = available_methods()  # UMAP is listed without umap-learn too, marked as missing
    if state.projection_method() not in methods:
        state.set_projection_method("pca")
    if st.session_state.get("proj_widget") not in METHODS:
        st.session_state["proj_widget"] = state.projection_method()

    def method_label(m: str) -> str:
        if m == "pca" and D == 2:
            return "Latent plane"
        return METHOD_NAMES.get(m, m) + ("" if m in methods else " (not installed)")

    c1, c2, c3 = st.columns([2, 2, 2], vertical_alignment="bottom")
    method = c1.segmented_control(
        "Projection",
        list(METHODS),
        key="proj_widget",
        format_func=method_label,
        help="PCA is exact and instant; t-SNE and UMAP keep neighbours together but take a while "
        "the first time (then they are cached on disk). UMAP also compiles its code once per "
        "server, in the background from when this page opens."
        + ("" if "umap" in methods else f" UMAP needs umap-learn: `{UMAP_INSTALL}`."),
    )
    method = method or "pca"
    if method not in methods:
        st.info(
            f"UMAP needs the umap-learn package, which is not installed here. Install it with "
            f"`{UMAP_INSTALL}` and restart the app. PCA and t-SNE work without it."
        )
        st.stop()
    state.set_projection_method(method)
    sizes = [s for s in SIZES if s < len(ds)] + [len(ds)] if len(ds) < SIZES[-1] else SIZES
    if st.session_state.get("map_n_widget") not in sizes:
        n0 = state.map_size(len(ds))
        st.session_state["map_n_widget"] = min(sizes, key=lambda s: abs(s - n0))
    n = c3.select_slider(
        "Images on the map",
        sizes,
        key="map_n_widget",
        help="A class-balanced sample of the dataset.",
    )
    state.set_map_size(n)

    try:
        table = cache.latent_table(run, n)
    except DatasetError as e:
        st.error(f"Could not read the dataset: {e}")
        st.stop()

    color_options = (
        (["label"] if table.labels is not None else [])
        + [f"factor:{i}" for i in range(0 if table.factors is None else table.factors.shape[1])]
        + ([] if no_likelihood else ["recon"])
        + ["kl"]
    )
    if st.session_state.get("color_by") not in (None, *color_options):
        del st.session_state["color_by"]  # another model's choice that this one cannot colour by
    factor_names = ds.factor_names or []

    def color_name(opt: str) -> str:
        if opt == "label":
            return "label"
        if opt.startswith("factor:"):
            i = int(opt.removeprefix("factor:"))
            return f"factor: {factor_names[i] if i < len(factor_names) else i}"
        return {"recon": "reconstruction error", "kl": "KL to the prior"}[opt]

    color_by = c2.selectbox("Colour by", color_options, format_func=color_name, key="color_by")

    progress_slot = st.empty()

    def on_progress(frac: float, message: str) -> None:
        progress_slot.progress(float(np.clip(frac, 0, 1)), text=message)

    # A t-SNE map not made yet is fitted in the background (vae.ui.fits) and drawn as it forms;
    # meanwhile the latent panel places z on the PCA map, and PCA is one click away.
    forming = None
    if method == "tsne" and fits.ready(run, table, "tsne") is None:
        forming = fits.start(run, table, "tsne")
        if forming.error is not None:
            st.error(f"Could not compute the t-SNE projection: {forming.error}")
            if st.button("Try again", key="tsne_retry"):
                fits.start(run, table, "tsne", retry=True)
                st.rerun()
            st.caption("Pick PCA above; it always works.")
            st.stop()
        if forming.done:
            forming = None
        else:
            method = "pca"  # for the panel's star and the mini-map until the map is ready
    try:
        proj = (
            fits.ready(run, table, "tsne")
            if method == "tsne"
            else cache.projection(run, table, method, progress=on_progress)
        )
    except (ValueError, ImportError, RuntimeError) as e:
        progress_slot.empty()
        st.error(f"Could not compute the {METHOD_NAMES.get(method, method)} projection: {e}")
        st.caption("Pick PCA above; it always works.")
        st.stop()
    progress_slot.empty()
    warm_up_umap()  # compile UMAP's code in the background, once per server (if installed)
    fits.warm_up()  # and import openTSNE, so that even a shipped t-SNE map opens at once
    plane = D == 2 and method == "pca"  # a 2-D latent space needs no projection: z0, z1 as they are
    if plane:
        proj = PCAProjection.latent_plane(table.mean)
    xy = np.asarray(proj.embedding, dtype=np.float32)  # (N, 2)

    def to_map(z: np.ndarray) -> np.ndarray:
        return np.asarray(proj.transform(np.asarray(z, np.float32).reshape(1, -1)))[0]  # (2,)

    # --- selection from the map (a callback, so it runs once per new selection) -------------------
    def on_select() -> None:
        event = st.session_state.get(MAP_KEY)
        positions = st.session_state.get("_map_positions")
        if not event or positions is None:
            return
        sel = event.selection
        fig = maps.MapFigure(None, positions)  # only used to map selections back to rows
        picked = fig.selected_rows(sel.get("points", []))
        if sel.get("box") or sel.get("lasso"):
            st.session_state["_lasso_rows"] = picked
            return
        st.session_state.pop("_lasso_rows", None)
        if len(picked) == 1:
            pos = picked[0]
            state.set_selected_index(int(table.rows[pos]))
            state.request_z(table.mean[pos])

    # --- colours ----------------------------------------------------------------------------------
    if color_by == "label":
        color, categorical, names = table.labels, True, ds.label_names
    elif color_by.startswith("factor:"):
        i = int(color_by.removeprefix("factor:"))
        color, categorical = table.factors[:, i], True
        sizes_f = ds.factor_sizes or []
        names = [str(v) for v in range(sizes_f[i])] if i < len(sizes_f) else None
    else:
        values = cache.elbo_scores(run, table).recon if color_by == "recon" else table.kl
        color, categorical, names = values, False, None

    hover_labels = None
    if table.labels is not None:
        names_all = ds.label_names or []
        hover_labels = [
            names_all[y] if y < len(names_all) else str(y) for y in table.labels.tolist()
        ]

    sel_row = state.selected_index()
    sel_pos = None
    if sel_row is not None and sel_row < len(ds):
        p = int(np.searchsorted(table.rows, sel_row))
        sel_pos = p if p < len(table.rows) and table.rows[p] == sel_row else None
    elif sel_row is not None:
        state.link_notice(
            f"Image #{sel_row} is not in this dataset (it has {len(ds):,} images), so nothing is "
            "selected."
        )
        state.set_selected_index(None)
        sel_row = None
    lasso_rows = st.session_state.get("_lasso_rows") or []
    lasso_rows = [r for r in lasso_rows if r < len(table.rows)]


left, right = st.columns([5, 4], gap="large")

# --- the latent panel: decoded in the browser while the pointer moves (vae.ui.live) -------------
if ds is not None:
    grid = maps.density_grid(xy)
    limit = sliders.limit_for(table.mean)  # ±3, or wider when the data's codes lie further out
    with right:
        if live_dec is not None and method != "pca":
            table_id = live.table(table.mean, xy, table.rows)  # for the ★'s neighbour median
        else:
            table_id = None
    live_proj = live.projection_spec(proj, table_id) if live_dec is not None else None
    kl_dims = np.asarray(table.kl_per_dim, np.float32)  # (D,)
else:  # no data: no map, no KL per dimension (index order), no snapping to data
    grid, limit, live_proj, kl_dims, method = None, sliders.LIMIT, None, None, "pca"


def live_prior(p: infer.PriorInfo) -> dict | None:
    """The mixture prior for the browser's Random z: weights, means and σ, rounded."""
    if not p.learned:
        return None
    return {
        "w": [round(float(v), 6) for v in p.weights],
        "m": np.round(p.means, 4).tolist(),
        "s": np.round(p.stds, 4).tolist(),
        "name": p.name,
    }


def prior_caption(p: infer.PriorInfo) -> str:
    if not p.learned:
        return ""
    return (
        f" This model's prior is not N(0, I) but {p.name}, learned with the model: Random z "
        "draws from it, and each dimension's KL is to the prior's own marginal for that "
        "dimension, so the per-dimension values do not add up to an image's KL (the mixture "
        "ties the dimensions together)."
    )


def panel_caption(kl: np.ndarray | None) -> str:
    if kl is None:
        return (
            "Sliders are in index order: without the dataset the app cannot tell which "
            "dimensions carry information." + prior_caption(prior)
        )
    n_collapsed = int((kl < maps.COLLAPSED_KL).sum())
    return (
        "Sliders are ordered by how much information each dimension carries (mean KL to the "
        "prior)."
        + prior_caption(prior)
        + (
            f" {n_collapsed} of {D} dimensions are collapsed: the decoder ignores them."
            if n_collapsed
            else ""
        )
        + (
            f" They span ±{limit:g} instead of the prior's ±3 because some images' codes lie "
            "that far out."
            if limit > sliders.LIMIT
            else ""
        )
    )


@st.fragment
def latent_panel() -> None:
    if live_dec is None:
        server_panel()
        return
    zv_key, seen_key = f"_zv:{model_key}", f"_zseen:{model_key}"
    pending = state.pop_z(D)
    if pending is not None:
        state.set_current_z(np.clip(np.round(pending, 2), -limit, limit))
        st.session_state[zv_key] = st.session_state.get(zv_key, 0) + 1
    panel_key = f"live-{model_key}"
    new = live.take_z(panel_key, seen_key, D)  # released in the browser: taken before drawing
    if new is not None:
        state.set_current_z(np.clip(new, -limit, limit).astype(np.float32))
    z = state.current_z(D)
    z = np.zeros(D, np.float32) if z is None else z
    st.subheader("Decoded z")
    show_all = D > sliders.TOP and st.toggle(f"Show all {D} dimensions", key="show_all_dims")
    kl = kl_dims
    order = [int(d) for d in sliders.order(kl)] if kl is not None else list(range(D))
    minimap = None
    if grid is not None:
        _, ex, ey = grid
        minimap = {
            "png": images.data_uri(maps.position_image(grid, None, size=160)),
            "extent": [float(ex[0]), float(ex[-1]), float(ey[0]), float(ey[-1])],
        }
    res = live.latent_panel(
        panel_key,
        {
            "decoder": live_dec.id,
            "group": model_key,
            "z": [float(v) for v in z],
            "zv": st.session_state.get(zv_key, 0),
            "order": order,
            "kl": None if kl is None else [round(float(v), 4) for v in kl],
            "collapsed": maps.COLLAPSED_KL,
            "limit": limit,
            "top": sliders.TOP,
            "showAll": bool(show_all) or D <= sliders.TOP,
            "proj": live_proj,
            "serverStar": None if ds is None else [float(v) for v in to_map(z)],
            "minimap": minimap,
            "mapKey": None if ds is None else MAP_KEY,
            "snap": ds is not None,
            "prior": live_prior(prior),
            "note": ""
            if method == "pca"
            else "While you drag, the ★ is placed approximately (the median map position of the "
            f"{live.NEIGHBOURS} nearest codes), then by the map's own transform on release.",
        },
    )
    if getattr(res, "snap", None) is not None:
        idx, _ = infer.nearest(np.asarray(res.snap, np.float32), table.mean, k=1)
        pos = int(idx[0])
        state.request_z(table.mean[pos])
        row = int(table.rows[pos])
        st.session_state["_snapped"] = (row, data.label_of(ds, row))
        live.rerun_view()
    if st.session_state.get("_snapped") is not None:
        row, label = st.session_state.pop("_snapped")
        st.caption(f"Snapped to image #{row} (label {label}).")
    st.caption(panel_caption(kl))
    with st.expander("2-D pad: drag over two dimensions at once", icon=":material/grid_on:"):
        pad_z = live.pad_panel(
            run,
            live_dec,
            key=f"pad-{model_key}",
            z=z,
            order=order,
            label=lambda d: f"z{d}" if kl is None else f"z{d} · KL {kl[d]:.2f}",
            limit=limit,
            group=model_key,
            zv=st.session_state.get(zv_key, 0),
        )
    if pad_z is not None:
        z = np.clip(pad_z, -limit, limit).astype(np.float32)
        state.set_current_z(z)
    state.sync_url(z=z)


def server_panel() -> None:
    """Sliders decoded on the server, for decoders the browser cannot run (or with
    `VAE_LIVE_DECODER=0`): each release reruns this fragment."""
    keys = sliders.slider_keys(model_key, D)
    z = sliders.take_z(keys, D, limit)
    st.subheader("Decoded z")
    reason = live.unsupported_reason(run)
    st.caption(
        f"Decoded on the server after each slider release: {reason}."
        if reason
        else "Decoded on the server after each slider release (browser decoding is off)."
    )
    img_col, map_col = st.columns([3, 2], vertical_alignment="top")
    decoded = infer.decode(run, z)  # (C, H, W)
    img_col.image(
        images.data_uri(images.upscale(decoded, 256)),
        width="stretch",
        caption="What the decoder draws for the z set by the sliders below.",
        alt="decoded z",
    )
    if grid is not None:
        server_minimap(map_col, z)
    server_buttons(keys, z)
    kl = kl_dims
    show_all = False
    if D > sliders.TOP:
        show_all = st.toggle(f"Show all {D} dimensions", key="show_all_dims")
    st.caption(panel_caption(kl))
    with st.container(height=520 if (show_all or D > 8) else "content", border=False):
        sliders.draw(keys, kl, show_all=show_all, limit=limit)
    state.sync_url(z=z)


def server_minimap(map_col, z: np.ndarray) -> None:
    with map_col:
        st.image(
            images.data_uri(maps.position_image(grid, to_map(z))),
            width="stretch",
            alt="position of z",
        )
        st.caption("★ where z lies on the map (grey: where the data is).")
        if st.button(
            "Move the map's ★ here",
            icon=":material/my_location:",
            key="star_to_map",
            type="tertiary",
            help="The big map is not redrawn while you move sliders (that keeps them fast).",
        ):
            st.rerun()  # a full run redraws the big map with the current z


def server_buttons(keys: list[str], z: np.ndarray) -> None:
    b1, b2, b3 = st.columns(3)
    b1.button(
        "Reset to 0",
        on_click=sliders.set_z,
        args=(keys, np.zeros(D, np.float32), limit),
        width="stretch",
        help="z = 0 is the centre of the prior N(0, I): the 'average' image."
        if not prior.learned
        else "z = 0, the origin of the latent space.",
    )
    seed = st.session_state.get("_prior_draws", 0)
    b2.button(
        "Random z",
        on_click=_draw_prior,
        args=(keys, seed),
        width="stretch",
        help=f"Draw z from the prior {prior.name}, the way a VAE generates new images.",
    )
    if ds is not None:
        b3.button(
            "Snap to data",
            on_click=_snap,
            args=(keys, z),
            width="stretch",
            help="Jump to the latent code of the closest dataset image.",
        )
    if st.session_state.get("_snapped") is not None:
        row, label = st.session_state.pop("_snapped")
        st.caption(f"Snapped to image #{row} (label {label}).")


def _draw_prior(keys: list[str], seed: int) -> None:
    st.session_state["_prior_draws"] = seed + 1
    sliders.set_z(keys, infer.prior_sample(D, seed=seed + 1000 * D, run=run), limit)


def _snap(keys: list[str], z: np.ndarray) -> None:
    idx, _ = infer.nearest(z, table.mean, k=1)
    pos = int(idx[0])
    sliders.set_z(keys, table.mean[pos], limit)
    row = int(table.rows[pos])
    st.session_state["_snapped"] = (row, data.label_of(ds, row))


with right:
    latent_panel()

# With server-side decoding, a session's first run leaves the map to a second run a moment
# later: the browser then paints the decoded image before it spends seconds loading Plotly and
# drawing 10,000 WebGL points (measured: first image about 1 s sooner on a busy 2-core machine).
# The browser decoder needs no such pause (and a click during it could be lost to the rerun).
if ds is None:
    with left:
        data.missing_notice(
            run,
            "The decoder needs no data, so the sliders, Random z, Traverse and Interpolate "
            "between prior samples all work now.",
        )
    st.stop()

defer_map = live_dec is None and not st.session_state.get("_map_drawn")
st.session_state["_map_drawn"] = True


@st.fragment(run_every=0.35)
def forming_view(job: fits.FitJob) -> None:
    """The t-SNE map as it forms, redrawn about three times a second; the finished map (or its
    error) takes over with a full run."""
    if job.done:
        st.rerun()
    st.progress(float(np.clip(job.frac, 0, 1)), text=job.message)
    if job.partial is not None and len(job.partial) == len(table.rows):
        fig = maps.latent_map(
            job.partial,
            color,
            categorical=categorical,
            color_title=color_name(color_by),
            category_names=names,
            rows=table.rows,
            hover_labels=hover_labels if not categorical else None,
        )
        st.plotly_chart(fig.figure, key="forming_map", config={"displayModeBar": False})
    st.caption(
        f"t-SNE is forming: {len(table):,} images, drawn as the optimisation moves them. Switch "
        "to PCA at any time; this fit carries on in the background and is saved, so the map is "
        "ready when you come back."
    )


with left:
    if forming is not None:
        forming_view(forming)
        state.sync_url()
        st.stop()
    if defer_map:
        st.caption("Drawing the map…")
        time.sleep(0.3)
        st.rerun()
    # Built after the sliders' fragment, so the decoded image reaches the browser first.
    # With browser decoding the ★ is drawn over the map by the latent panel and follows z live.
    marker = to_map(state.peek_z(D)) if live_dec is None else None
    highlight = xy[[sel_pos]] if sel_pos is not None else None
    map_fig = maps.latent_map(
        xy,
        color,
        categorical=categorical,
        color_title=color_name(color_by),
        category_names=names,
        rows=table.rows,
        marker=marker,
        selected=highlight,
        axis_titles=("z0", "z1") if plane else ("PC 1", "PC 2") if method == "pca" else ("", ""),
        hover_labels=hover_labels if not categorical else None,
    )
    st.session_state["_map_positions"] = map_fig.positions
    st.plotly_chart(
        map_fig.figure,
        key=MAP_KEY,
        on_select=on_select,
        selection_mode=("points", "box", "lasso"),
        # the mode bar always shows, so the lasso and box tools the caption names are visible
        config={"scrollZoom": True, "displaylogo": False, "displayModeBar": True},
    )
    st.caption(
        f"{len(table):,} images of the "
        + ("whole dataset" if table.split == "all" else f"{table.split} split")
        + (", the latent plane" if plane else f", {METHOD_NAMES.get(method, method)}")
        + (
            (
                " (exact: the ★ is the true position of z"
                if method == "pca"
                else " (★ placed with the fitted map's transform, an approximation"
            )
            + (", and it follows the sliders as you drag" if live_dec is not None else "")
            + ")"
        )
        + (
            ". Hover over the map to see the decoding under the pointer"
            if live_dec is not None
            else ""
        )
        + ". Click a dot to open it; pick the lasso or box tool (top right of the map) to select "
        "a group; double-click to clear."
    )

    # --- what is selected -------------------------------------------------------------------------
    if lasso_rows:
        rows = table.rows[lasso_rows]
        st.subheader(f"{len(rows)} images selected")
        g1, g2 = st.columns([2, 1])
        shown = rows[np.unique(np.linspace(0, len(rows) - 1, min(len(rows), 64)).astype(int))]
        g1.image(
            images.upscale(image_grids.tiles(list(data.images(ds, shown)), pad=1), 384),
            caption="The selected originals"
            + (" (64 of them, evenly spread)." if len(rows) > 64 else "."),
            output_format="PNG",
        )
        mean_z = table.mean[lasso_rows].mean(0)
        g2.image(
            images.upscale(infer.decode(run, mean_z), 160),
            caption="Decoding of their mean latent code.",
            output_format="PNG",
        )
        if g2.button("Load into sliders", key="lasso_to_sliders", width="stretch"):
            state.request_z(mean_z)
            st.rerun()
    elif sel_row is not None:
        x = data.images(ds, [sel_row])  # (1, C, H, W)
        st.subheader(f"Image #{sel_row} · label {data.label_of(ds, sel_row)}")
        o, r, info = st.columns([1, 1, 2])
        o.image(images.upscale(x[0], 160), caption="Original", output_format="PNG")
        r.image(
            images.upscale(infer.reconstruct(run, x)[0], 160),
            caption="Reconstruction",
            output_format="PNG",
        )
        if sel_pos is not None and no_likelihood:
            info.caption(f"KL to the prior {table.kl[sel_pos]:.1f} nats. {no_likelihood}")
        elif sel_pos is not None:
            scores = cache.elbo_scores(run, table)
            info.metric("ELBO (nats)", f"{scores.elbo[sel_pos]:.1f}")
            info.caption(
                f"KL to the prior {table.kl[sel_pos]:.1f} nats, reconstruction error "
                f"{scores.recon[sel_pos]:.1f} nats. Its latent mean is now in the sliders."
            )
    else:
        st.caption("Click a dot to see that image next to its reconstruction.")

state.sync_url()
