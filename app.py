"""VAE Latent Explorer: the frame around the pages (navigation, model picker, dataset, device).

Run with `streamlit run app.py`. Each page is a flat script in pages/; to add one, add a row to
PAGES. Rows whose script does not exist yet are skipped. Your own PyTorch VAE opens with
`streamlit run app.py -- --model my_vae.py:build --weights my_vae.safetensors --data digits`
(README, "Bring your own model"): only the server's command line can name code to run.
"""

import sys
from pathlib import Path

import streamlit as st

from vae.ui import data, frame, guard, infer, models, state

st.set_page_config(
    page_title="VAE Latent Explorer",
    page_icon="🧭",
    layout="wide",
    initial_sidebar_state="expanded",
)

ROOT = Path(__file__).resolve().parent
# Streamlit leaves about 100 px above each page title; a title near the top leaves room for the map.
st.html(
    "<style>[data-testid='stMainBlockContainer'] { padding-top: 2.5rem; }"
    "[data-testid='stSidebarUserContent'] { padding-top: 0.5rem; }</style>"
)

# (script, title, icon, url path). The first row is the home page. Each url path is its file's
# name, which is also the path Streamlit gives the file when it takes pages/ for a legacy page
# folder (on a fresh server, until this script's first st.navigation call): a deep link then runs
# the page alone, and its `frame.ensure()` brings it back into this frame (vae/ui/frame.py).
PAGES = [
    ("pages/explore.py", "Explore", ":material/explore:", "explore"),
    ("pages/encode.py", "Encode an image", ":material/upload:", "encode"),
    ("pages/traverse.py", "Traverse", ":material/linear_scale:", "traverse"),
    ("pages/interpolate.py", "Interpolate", ":material/timeline:", "interpolate"),
    ("pages/diagnostics.py", "Diagnostics", ":material/monitoring:", "diagnostics"),
    ("pages/demos.py", "Demos", ":material/school:", "demos"),
    ("pages/train.py", "Train", ":material/model_training:", "train"),
    ("pages/runs.py", "Model library", ":material/inventory_2:", "runs"),
]

# The home page is served at "/", so Streamlit would answer a link to /explore with "Page not
# found": a hidden page at that path takes such a link home. (Streamlit keys pages by url path,
# so the home page itself is registered under another one, which no link shows.)
present = [row for row in PAGES if (ROOT / row[0]).is_file()]
HOME = present[0][3]
pages = {
    url: st.Page(
        script,
        title=title,
        icon=icon,
        url_path=f"{url}-home" if url == HOME else url,
        default=url == HOME,
    )
    for script, title, icon, url in present
}
home_alias = st.Page(lambda: None, title=pages[HOME].title, url_path=HOME, visibility="hidden")

threads = infer.configure_threads()
# --model/--weights/--data after `--` in `streamlit run app.py -- ...`, which makes this script
# sys.argv[0] (under a test runner, sys.argv is the runner's own)
models.configure_user_model(sys.argv[1:] if Path(sys.argv[0]).name == Path(__file__).name else [])
state.init()
page = st.navigation([*pages.values(), home_alias])
if page is home_alias:
    st.switch_page(pages[HOME])
url_path = next((u for u, p in pages.items() if p is page), "")
wanted = state.take_url_page()
if wanted in pages and wanted != url_path:
    st.switch_page(pages[wanted])
elif wanted and wanted not in pages:
    state.link_notice(
        f"The link's page {state.quote_value(wanted)} does not exist, so Explore is shown."
    )
state.set_page(url_path)

# --- sidebar --------------------------------------------------------------------------------------
with st.sidebar:
    st.markdown("### :material/explore: VAE Latent Explorer")


def sidebar() -> None:
    """Model picker, the model's summary and dataset, adding a model, the device."""
    entry = models.picker()
    run = models.load(entry) if entry is not None else None
    if run is not None:
        c, h, w = run.config.image_shape
        st.sidebar.caption(
            f"{entry.dataset} · {w}×{h} {'colour' if c == 3 else 'grey'} images · "
            f"{run.config.latent_dim}-d latent · "
            + (
                f"your {run.config.class_name} · "
                if entry.source == "yours"
                else f"{run.config.arch.upper()} · "
            )
            + (f"{run.config.likelihood} decoder" if run.config.likelihood else "no likelihood")
            + (
                f" · learned prior ({run.config.prior_components}-Gaussian mixture)"
                if getattr(run.config, "prior", "normal") == "mixture"
                else ""
            )
            + (f" · {entry.score_long}" if entry.score_long else "")
        )
        data.dataset_panel(run)


# A broken model or file shows its message where it happened and never breaks the other part.
with st.sidebar:
    guard.run(sidebar, "Could not load this model")
    guard.run(models.add_model_panel, "Could not add the model")
    st.caption(
        f":material/memory: Running on **{models.device_name()}**"
        + (
            f" ({threads} CPU thread{'s' if threads > 1 else ''})"
            if models.device_name() == "cpu"
            else ""
        )
    )

# --- the page -------------------------------------------------------------------------------------
for notice in state.link_notices(url_path):  # a link's value that was not used, and why
    st.warning(notice, icon=":material/link_off:")
with frame.framed():
    guard.run(page.run)
