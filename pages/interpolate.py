"""Interpolate: walk from one latent code to another, and do arithmetic with latent codes."""

import numpy as np
import streamlit as st

from vae.data import DatasetError
from vae.imageio import ImageError, open_image
from vae.preprocess import PreprocessError
from vae.projection import ProjectionError
from vae.traversal import attribute_vector, nearest_labels, path_codes
from vae.ui import cache, charts, data, image_grids, images, infer, live, maps, models, state

URL = "interpolate-latents"
METHOD_NAMES = {"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP"}
MODES = {"lerp": "Straight line (lerp)", "slerp": "Great circle (slerp)"}
SOURCES = {
    "dataset": "Dataset image",
    "map": "Selected on the map",
    "explore": "Explore's z",
    "upload": "Upload",
    "random": "Random prior sample",
}

run = models.require_run()
ds = data.require_dataset(run)
D = run.config.latent_dim
model_key = st.session_state[state.MODEL]
name = run.path.name
try:
    table = cache.latent_table(run, state.map_size(len(ds)))
except DatasetError as e:
    st.error(f"Could not read the dataset: {e}")
    st.stop()

st.title("Interpolate between latent codes")
st.caption(
    "Pick two endpoints A and B, encode them to latent codes, and decode the points on the way "
    "from one to the other. In a smooth latent space every step in between is a plausible "
    "image. The map below shows the path the walk takes through latent space."
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
        row = state.selected_index()
        if row is None or row >= len(ds):
            st.info("Click an image on Explore's map first.", icon=":material/touch_app:")
            return None, ""
        mean, _ = infer.encode(run, data.images(ds, [row]))
        return mean[0], f"#{row}, selected on the map"
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
        try:
            enc = infer.encode_upload(run, open_image(up.getvalue(), up.name), table.mean, k=1)
        except (ImageError, PreprocessError) as e:
            st.error(str(e), icon=":material/broken_image:")
            return None, ""
        return enc.mean, f"your image {up.name}"
    seed = st.number_input("Seed", 0, 1_000_000, 1 if tag == "A" else 2, key=f"interp_seed_{tag}")
    return infer.prior_sample(D, seed=int(seed)), f"prior sample, seed {seed}"


def show(z: np.ndarray, caption: str, size: int = 128) -> None:
    st.image(
        images.upscale(infer.decode(run, z), size), caption=caption, width=size, output_format="PNG"
    )


tab_path, tab_math = st.tabs(["Interpolation", "Latent arithmetic"])

# --- interpolation ------------------------------------------------------------------------------
with tab_path:
    row_a, _, row_b = default_rows()
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
            "Keyboard: Tab to a control, arrow keys to change it. A path through the middle of "
            "the prior (lerp between far-apart codes) can pass through low-density regions "
            "where the decoder has seen no data."
        )

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

        left, right = st.columns([3, 2], gap="large")
        method = state.projection_method()
        with left:
            try:
                proj = cache.projection(run, table, method)
                path_xy = proj.transform(codes)  # (S, 2)
            except (ProjectionError, ValueError, ImportError) as e:
                proj = None
                st.error(f"Could not place the path on the {METHOD_NAMES.get(method)} map: {e}")
            if proj is not None:
                labelled = table.labels is not None
                fig = maps.latent_map(
                    proj.embedding,
                    table.labels if labelled else table.kl,
                    categorical=labelled,
                    color_title="label" if labelled else "KL",
                    category_names=ds.label_names,
                    rows=table.rows,
                    axis_titles=("PC 1", "PC 2") if method == "pca" else ("", ""),
                    height=460,
                ).figure
                maps.add_path(fig, path_xy)
                fig.update_layout(dragmode="pan")
                st.plotly_chart(fig, key="interp_map", config={"displaylogo": False})
                st.caption(
                    f"The path on the {METHOD_NAMES.get(method, method)} map of "
                    f"{len(table):,} dataset images"
                    + (
                        " (exact: PCA is a linear projection, so a straight lerp stays straight)."
                        if method == "pca"
                        else " (placed with the map's transform, an approximation; the "
                        "projection method is chosen on the Explore page)."
                    )
                )
        with right:
            norms = {
                m: np.linalg.norm(path_codes(za, zb, int(steps), m), axis=1)
                for m in ("lerp", "slerp")
            }
            st.plotly_chart(
                charts.norm_profile(t, norms, float(np.sqrt(D))),
                key="interp_norms",
                config={"displayModeBar": False},
            )
            st.caption(
                "Length of z along both paths. Prior samples have ‖z‖ ≈ √D; a straight line "
                "between two such codes cuts through the inside of that shell, where there is "
                "little probability mass. slerp stays on it."
            )
            if st.button("Open the middle step in Explore ↗", key="interp_to_explore"):
                state.request_z(codes[len(codes) // 2])
                st.switch_page("pages/explore.py")

# --- latent arithmetic ---------------------------------------------------------------------------
with tab_math:
    st.markdown("#### Analogies: A − B + C")
    st.caption(
        "Subtract one code from another and add a third: if the difference between A and B is "
        "a consistent *direction* in latent space (style, slant, thickness), adding it to C "
        "carries it over. By default A and B show the same class in two styles, so the result "
        "should be C drawn with A's style instead of B's."
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
            r"z' = z + \alpha\,\big(\bar z_{\text{class}} - \bar z_{\text{all}}\big),\qquad "
            r"\bar z_{\text{class}} = \text{mean of the codes of that class}"
        )
        names = ds.label_names or [str(i) for i in range(int(table.labels.max()) + 1)]
        present = sorted({int(v) for v in np.unique(table.labels)})
        first = int(ds.y[rows[0]]) if ds.y is not None else -1
        want = 7 if first != 7 else (int(ds.y[rows[2]]) if ds.y is not None else 0)  # "7-ness"
        a1, a2, a3 = st.columns([2, 2, 3], vertical_alignment="bottom")
        base_row = a1.number_input(
            "Start from image number", 0, len(ds) - 1, rows[0], key=f"attr_row:{model_key}"
        )
        cls = a2.selectbox(
            "Add the attribute of class",
            present,
            index=present.index(want) if want in present else 0,
            format_func=lambda k: names[k] if k < len(names) else str(k),
            key=f"attr_cls:{model_key}",
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
            f"The numbers above the pictures are α. From image #{base_row} (left, α = 0) to "
            f"α = {alpha:+.1f} times the "
            f"“{names[cls] if cls < len(names) else cls}” direction (right). The vector is the "
            f"mean code of that class minus the mean code of all {len(table):,} images; its "
            f"length is {np.linalg.norm(vec):.2f}. Negative α removes the attribute."
        )

state.sync_url(page=URL)
