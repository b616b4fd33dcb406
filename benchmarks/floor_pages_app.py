"""Floor for benchmarks/page_bench.py: the least a page switch and a model switch can cost.

The app's eight page titles and url paths in st.navigation, each page a title and one line,
and a sidebar selectbox that reruns the page: Streamlit's own rerun, the websocket, the
browser and the machine's load, with no model, no data and no figure.
"""

import streamlit as st

PAGES = [
    ("Explore", "explore"),
    ("Encode an image", "encode"),
    ("Traverse", "traverse"),
    ("Interpolate", "interpolate"),
    ("Diagnostics", "diagnostics"),
    ("Demos", "demos"),
    ("Train", "train"),
    ("Model library", "runs"),
]


def page_for(title: str):
    def show() -> None:
        st.title(title)
        st.write(f"The {title} page of the floor app, model {st.session_state.get('model')}.")

    show.__name__ = title.lower().replace(" ", "_")
    return show


st.set_page_config(page_title="floor pages", layout="wide")
page = st.navigation(
    [st.Page(page_for(t), title=t, url_path=u, default=i == 0) for i, (t, u) in enumerate(PAGES)]
)
st.sidebar.selectbox("Model", ["mnist-conv · z32", "digits-mlp · z8"], key="model")
page.run()
