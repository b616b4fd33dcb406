"""Interpolate: walk from one latent code to another, and do arithmetic with latent codes."""

import numpy as np
import streamlit as st

from vae.data import DatasetError
from vae.imageio import ImageError, open_image
from vae.preprocess import PreprocessError
from vae.projection import ProjectionError
from vae.traversal import attribute_vector, nearest_labels, path_codes
from vae.ui import cache, charts, data, frame, image_grids, images, infer, live, maps, models, state

frame.ensure()  # a deep link on a fresh server runs this page alone (vae/ui/frame.py)

URL = "interpolate"
METHOD_NAMES = {"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP"}
MODES = {"lerp": "Straight line (lerp)", "slerp": "Great circle (slerp)"}
SOURCES = {
    "dataset": "Dataset image",
    "map": "Clicked on the map",
    "explore": "Explore's z",
    "upload": "Upload",
    "random": "Random prior sample",
}

run = models.require_run()
ds = data.try_load(run)  # None without the data: prior samples and uploads still work
D = run.config.latent_dim
model_key = st.session_state[state.MODEL]
name = run.path.name
table = None
if ds is not None:
    try:
        table = cache.latent_table(run, state.map_size(len(ds)))
    except DatasetError as e:
        st.error(f"Could not read the dataset: {e}")
        ds = None
if ds is None:
    SOURCES = {k: v for k, v in SOURCES.items() if k not in ("dataset", "map")}
MAP_PICK = f"_interp_map_rows:{model_key}"  # {"A": row, "B": row} clicked on this page's map

st.title("Interpolate between latent codes")
st.caption(
    "Two ways to move between latent codes: walk from one code to another and decode every "
    "step (Interpolation), or add and subtract codes to carry a style or a class over to "
    "another image (Latent arithmetic)."
)
if ds is None:
    data.missing_notice(
        run,
        "Prior samples, Explore's z and your own uploads still work as endpoints; dataset "
        "images, the map and latent arithmetic wait for the data.",
    )


def default_rows() -> tuple[int, int, int]:
    """Three dataset rows: the first image, another image of the same class, and the first
    image of a different class (just 0, 1, 2 without labels)."""
    last = len(ds) - 1
    if ds.y is None or len(ds) < 3:
        return 0, min(1, last), min(2, last)
    y = ds.y.numpy()
    same = np.flatnonzero(y == y[0])
    other = np.flatnonzero(y != y[0])
    return 0, int(same[1]) if same.size > 1 else 1, int(other[0]) if other.size else min(2, last)


def endpoint(tag: str, default_row: int, default_source: str) -> tuple[np.ndarray | None, str]:
    """Controls for one endpoint in the current column; returns (z or None, a description)."""
    if default_source not in SOURCES:
        default_source = "random"
    if st.session_state.get(f"interp_src_{tag}") not in (None, *SOURCES):
        del st.session_state[f"interp_src_{tag}"]
    src = st.selectbox(
        f"Endpoint {tag}",
        list(SOURCES),
        index=list(SOURCES).index(default_source),
        format_func=SOURCES.get,
        key=f"interp_src_{tag}",
        persist_state="session",
    )
    if src == "dataset":
        row = st.number_input(
            "Image number",
            0,
            len(ds) - 1,
            default_row,
            key=f"interp_row_{tag}:{model_key}",
            help=f"Any of the {len(ds):,} images of the {ds.extra.get('split', 'test')} split.",
        )
        mean, _ = infer.encode(run, data.images(ds, [int(row)]))  # (1, D)
        return mean[0], f"#{row} · label {data.label_of(ds, int(row))}"
    if src == "map":
        row = st.session_state.get(MAP_PICK, {}).get(tag)
        if row is None or row >= len(ds):
            st.info(
                f"Click a dot on the map below to make it endpoint {tag}.",
                icon=":material/touch_app:",
            )
            return None, ""
        mean, _ = infer.encode(run, data.images(ds, [row]))
        return mean[0], f"#{row}, clicked on the map"
    if src == "explore":
        z = state.current_z(D)
        if z is None:
            st.info("Set z with Explore's sliders first.", icon=":material/tune:")
            return None, ""
        return np.asarray(z, np.float32), "z from Explore's sliders"
    if src == "upload":
        up = st.file_uploader(
            "Image", type=["png", "jpg", "jpeg", "webp", "bmp", "gif"], key=f"interp_up_{tag}"
        )
        if up is None:
            st.info("Upload a picture to use as this endpoint.", icon=":material/upload:")
            return None, ""
        means = table.mean if table is not None else np.zeros((0, D), np.float32)  # (N, D)
        try:
            enc = infer.encode_upload(run, open_image(up.getvalue(), up.name), means, k=0)
        except (ImageError, PreprocessError) as e:
            st.error(str(e), icon=":material/broken_image:")
            return None, ""
        return enc.mean, f"your image {images.short_name(up.name)}"
    seed = st.number_input("Seed", 0, 1_000_000, 1 if tag == "A" else 2, key=f"interp_seed_{tag}")
    return infer.prior_sample(D, seed=int(seed), run=run), f"prior sample, seed {seed}"


def show(z: np.ndarray, caption: str, size: int = 128) -> None:
    st.image(
        images.upscale(infer.decode(run, z), size), caption=caption, width=size, output_format="PNG"
    )


def on_map_click() -> None:
    """A dot clicked on this page's map becomes the endpoint set to "Clicked on the map" (A
    first; with both set so, the clicks alternate)."""
    event, positions = st.session_state.get("interp_map"), st.session_state.get("_interp_pos")
    if not event or positions is None or table is None:
        return
    picked = maps.MapFigure(None, positions).selected_rows(event.selection.get("points", []))
    if not picked:
        return
    row = int(table.rows[picked[0]])
    tags = [t for t in "AB" if st.session_state.get(f"interp_src_{t}") == "map"]
    if not tags:
        return
    picks = st.session_state.setdefault(MAP_PICK, {})
    tag = tags[0] if len(tags) == 1 else ("B" if picks.get("_last") == "A" else "A")
    picks[tag], picks["_last"] = row, tag


# The arithmetic tab runs only while it is open (a click on it reruns the page). The
# interpolation tab always runs: its endpoints (an upload too) must outlive a look at the other.
tab_path, tab_math = st.tabs(
    ["Interpolation", "Latent arithmetic"], key="interp_tab", on_change="rerun"
)

# --- interpolation ------------------------------------------------------------------------------
with tab_path:
    st.caption(
        "Pick two endpoints A and B and decode the points on the way from one to the other. In "
        "a smooth latent space every step in between is a plausible image; the map shows the "
        "path the walk takes through latent space."
    )
    row_a, _, row_b = default_rows() if ds is not None else (0, 0, 0)
    ca, cb, cs = st.columns([2, 2, 3], gap="medium")
    with ca:
        za, what_a = endpoint("A", row_a, "dataset")
        if za is not None:
            show(za, f"A: {what_a}")
    with cb:
        zb, what_b = endpoint("B", row_b, "dataset")
        if zb is not None:
            show(zb, f"B: {what_b}")
    with cs:
        mode = st.segmented_control(
            "Path",
            ["lerp", "slerp"],
            default="lerp",
            required=True,
            key="interp_mode",
            persist_state="session",
            format_func=MODES.get,
            help="lerp: z(t) = (1 − t)·A + t·B. slerp rotates from A to B along a great circle "
            "(White 2016), keeping ‖z‖ closer to that of typical prior samples.",
        )
        steps = st.slider("Steps", 3, 20, 10, key="interp_steps", persist_state="session")
        st.caption(
            "A path through the middle of the prior (lerp between far-apart codes) can pass "
            "through low-density regions where the decoder has seen no data."
        )
        st.caption(":material/keyboard: Tab to a control, then use the arrow keys to change it.")

    codes = None
    if za is None or zb is None:
        st.info("Choose both endpoints to see the path.", icon=":material/swap_horiz:")
    else:
        codes = path_codes(za, zb, int(steps), mode)  # (S, D)
        decoded = infer.decode(run, codes)  # (S, C, H, W)
        t = np.linspace(0.0, 1.0, int(steps))
        st.subheader(f"{int(steps)} steps from A to B")
        tile = int(np.clip(900 // int(steps), 56, 96))
        st.image(
            [images.upscale(x, tile) for x in decoded],
            caption=[f"t={v:.2f}" for v in t],
            width=tile,
            output_format="PNG",
        )
        live_dec = live.decoder(run)
        if live_dec is not None:
            st.markdown("**Scrub along the path**")
            live.path(
                "interp-scrub",
                {
                    "decoder": live_dec.id,
                    "za": [float(v) for v in za],
                    "zb": [float(v) for v in zb],
                    "interp": mode,
                    "t": 0.5,
                },
            )
            st.caption(
                "Drag the handle from A to B (or use the arrow keys): every point of the "
                f"{MODES.get(mode, mode)} path is decoded in your browser as you move."
            )
        strip = image_grids.strip(decoded, [f"{v:.2f}" for v in t], tile=72)
        gif = image_grids.gif_bytes(decoded, size=192, fps=6)
        d1, d2, _ = st.columns([1, 1, 3])
        d1.download_button(
            "Strip (PNG)",
            images.png_bytes(strip),
            file_name=f"interpolation-{mode}-{name}.png",
            mime="image/png",
            on_click="ignore",
            icon=":material/download:",
            key="interp_png",
        )
        d2.download_button(
            "Animation (GIF)",
            gif,
            file_name=f"interpolation-{mode}-{name}.gif",
            mime="image/gif",
            on_click="ignore",
            icon=":material/download:",
            key="interp_gif",
        )

        with st.columns([3, 2], gap="large")[1]:
            norms = {
                m: np.linalg.norm(path_codes(za, zb, int(steps), m), axis=1)
                for m in ("lerp", "slerp")
            }
            prior = infer.prior_info(run)
            typical = infer.typical_norm(prior, D)
            label = (
                f"typical sample of the learned prior ({typical:.2f})"
                if prior.learned
                else "typical prior sample (√D)"
            )
            st.plotly_chart(
                charts.norm_profile(t, norms, typical, typical_label=label),
                key="interp_norms",
                config={"displayModeBar": False},
            )
            na, nb = float(norms["lerp"][0]), float(norms["lerp"][-1])
            lo, hi = float(norms["slerp"].min()), float(norms["slerp"].max())
            same = abs(na - nb) <= 0.02 * max(na, nb, 1e-6)
            st.caption(
                "Length of z along both paths. Prior samples have ‖z‖ ≈ "
                + (
                    f"{typical:.2f} (the learned prior's root-mean-square length)"
                    if prior.learned
                    else "√D"
                )
                + "; a straight line "
                "between two such codes cuts through the inside of that shell, where there is "
                f"little probability mass. Here ‖A‖ = {na:.2f} and ‖B‖ = {nb:.2f}: lerp's length "
                f"dips to {float(norms['lerp'].min()):.2f}, slerp's stays between {lo:.2f} and "
                f"{hi:.2f}"
                + (
                    ", so slerp keeps to the endpoints' shell."
                    if same
                    else ". slerp keeps to one shell only when A and B have the same length."
                )
            )
            if st.button("Open the middle step in Explore", key="interp_to_explore",
                         icon=":material/explore:"):  # fmt: skip
                state.request_z(codes[len(codes) // 2])
                st.switch_page("pages/explore.py")

    # The map: the path on it, and a click makes a dot an endpoint ("Clicked on the map").
    method = state.projection_method()
    if table is not None:
        try:
            proj = cache.projection(run, table, method)
            path_xy = proj.transform(codes) if codes is not None else None  # (S, 2)
        except (ProjectionError, ValueError, ImportError) as e:
            proj = None
            st.error(f"Could not place the path on the {METHOD_NAMES.get(method)} map: {e}")
        if proj is not None:
            labelled = table.labels is not None
            map_fig = maps.latent_map(
                proj.embedding,
                table.labels if labelled else table.kl,
                categorical=labelled,
                color_title="label" if labelled else "KL",
                category_names=ds.label_names,
                rows=table.rows,
                axis_titles=("PC 1", "PC 2") if method == "pca" else ("", ""),
                height=460,
            )
            st.session_state["_interp_pos"] = map_fig.positions  # to map a click back to a row
            fig = map_fig.figure
            if path_xy is not None:
                maps.add_path(fig, path_xy)
            st.plotly_chart(
                fig,
                key="interp_map",
                on_select=on_map_click,
                selection_mode="points",
                config={"displaylogo": False},
            )
            st.caption(
                f"The {METHOD_NAMES.get(method, method)} map of {len(table):,} dataset images"
                + (
                    ""
                    if path_xy is None
                    else " with the path on it"
                    + (
                        " (exact: PCA is a linear projection, so a straight lerp stays straight)"
                        if method == "pca"
                        else " (placed with the map's transform, an approximation; the "
                        "projection method is chosen on the Explore page)"
                    )
                )
                + ". Set an endpoint to “Clicked on the map”, then click a dot to use it."
            )

# --- latent arithmetic ---------------------------------------------------------------------------
with tab_math:
    if tab_math.open:
        st.caption(
            "Codes add up: the difference between two codes is a direction, and adding it to a "
            "third code carries a style or a class over to it."
        )
        if ds is None:
            st.info(
                "Latent arithmetic starts from dataset images and class means, so it waits for the "
                "data (see above).",
                icon=":material/dataset:",
            )
        else:
            st.markdown("#### Analogies: A − B + C")
            st.caption(
                "Subtract one code from another and add a third: if the difference between A and B "
                "is a consistent *direction* in latent space (style, slant, thickness), adding it "
                "to C carries it over. By default A and B show the same class in two styles, so "
                "the result should be C drawn with A's style instead of B's."
            )
            rows = default_rows()
            inputs, pics = st.columns(4), st.columns(4)
            zs = []
            for i, (tag, row) in enumerate(zip("ABC", rows, strict=True)):
                r = inputs[i].number_input(
                    f"{tag}: image number",
                    0,
                    len(ds) - 1,
                    min(row, len(ds) - 1),
                    key=f"arith_{tag}:{model_key}",
                    persist_state="page",
                )
                mean, _ = infer.encode(run, data.images(ds, [int(r)]))
                zs.append(mean[0])
                with pics[i]:
                    show(mean[0], f"{tag}: #{r} · label {data.label_of(ds, int(r))}", 112)
            result = zs[0] - zs[1] + zs[2]
            with pics[3]:
                show(result, "A − B + C", 112)
            if table.labels is not None:
                lab, share = nearest_labels(result[None], table.mean, table.labels, k=10)
                names = ds.label_names or []
                guess = names[lab[0]] if lab[0] < len(names) else str(lab[0])
                inputs[3].caption(
                    f"Result: of its 10 nearest dataset codes, {100 * share[0]:.0f}% are “{guess}”."
                )

            st.divider()
            st.markdown("#### Attribute vectors: add “class-ness”")
            if table.labels is None:
                st.info(
                    "This dataset has no labels, so there are no class means to use.",
                    icon=":material/label_off:",
                )
            else:
                st.latex(
                    r"z' = z + \alpha\,\big(\bar z_{\text{class}} - \bar z_{\text{all}}\big),"
                    r"\qquad \bar z_{\text{class}} = \text{mean of the codes of that class}"
                )
                names = ds.label_names or [str(i) for i in range(int(table.labels.max()) + 1)]
                present = sorted({int(v) for v in np.unique(table.labels)})
                first = int(ds.y[rows[0]]) if ds.y is not None else -1
                other = int(ds.y[rows[2]]) if ds.y is not None else 0
                want = 7 if first != 7 else other  # "7-ness"
                a1, a2, a3 = st.columns([2, 2, 3], vertical_alignment="bottom")
                base_row = a1.number_input(
                    "Start from image number",
                    0,
                    len(ds) - 1,
                    rows[0],
                    key=f"attr_row:{model_key}",
                    persist_state="page",
                )
                cls = a2.selectbox(
                    "Add the attribute of class",
                    present,
                    index=present.index(want) if want in present else 0,
                    format_func=lambda k: names[k] if k < len(names) else str(k),
                    key=f"attr_cls:{model_key}",
                    persist_state="page",
                )
                alpha = a3.slider(
                    "α (how much)", -5.0, 5.0, 3.0, 0.1, key="attr_alpha", persist_state="session"
                )
                base, _ = infer.encode(run, data.images(ds, [int(base_row)]))
                vec = attribute_vector(table.mean, table.labels, int(cls))  # (D,)
                alphas = np.linspace(0.0, float(alpha), 7)
                walk = base[0][None, :] + alphas[:, None] * vec[None, :]  # (7, D)
                ticks = [f"{a:+.2f}".rstrip("0").rstrip(".") for a in alphas]
                pic = image_grids.strip(infer.decode(run, walk), ticks, tile=80)
                st.image(pic, output_format="PNG")
                st.caption(
                    f"The numbers above the pictures are α. From image #{base_row} (left, α = 0) "
                    f"to α = {alpha:+.1f} times the "
                    f"“{names[cls] if cls < len(names) else cls}” direction (right). The vector is "
                    f"the mean code of that class minus the mean code of all {len(table):,} "
                    f"images; its length is {np.linalg.norm(vec):.2f}. Negative α removes the "
                    "attribute."
                )

state.sync_url(page=URL)
