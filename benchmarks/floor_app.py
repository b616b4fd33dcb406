"""Floor for benchmarks/interaction_bench.py: the least a slider -> image round trip can cost.

One slider and one image in a fragment, no model: what remains is Streamlit's own rerun,
the websocket, the browser and the machine's load.
"""

import numpy as np
import streamlit as st

from vae.ui import images


@st.fragment
def panel() -> None:
    v = st.slider("z0 · KL 1.00", -3.0, 3.0, 0.0, 0.1, key="z0")
    img = np.full((1, 28, 28), (v + 3) / 6, np.float32)  # a grey square as bright as v
    st.image(images.data_uri(images.upscale(img, 256)), width=256, alt="decoded z")


panel()
