"""Baseline for benchmarks/interaction_bench.py: the obvious single-script explorer.

A 10,000-point latent map and up to 16 latent sliders in one script with no fragment, so every
slider change reruns everything: the PCA is refitted, the map is rebuilt and re-sent, then the
image is decoded. Model and data loading are cached, as any Streamlit app would do.

    BENCH_MODEL=assets/mnist-conv streamlit run benchmarks/naive_app.py
"""

import os

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch
from sklearn.decomposition import PCA

from vae.checkpoint import load_run
from vae.latents import encode_dataset, run_dataset
from vae.ui import images

st.set_page_config(page_title="naive explorer", layout="wide")


@st.cache_resource
def load(path: str):
    run = load_run(path)
    ds = run_dataset(run, "test")
    if len(ds) < 1000:
        ds = run_dataset(run, "all")
    x = ds.x[:10_000]
    mean, _ = encode_dataset(run.model, x)  # (N, D)
    return run, mean.numpy(), ds.y[:10_000].numpy()


run, means, labels = load(os.environ.get("BENCH_MODEL", "assets/digits-mlp"))
D = run.config.latent_dim
left, right = st.columns([3, 2])
with right:
    z = np.array(
        [st.slider(f"z{d}", -3.0, 3.0, 0.0, 0.1, key=f"z{d}") for d in range(min(D, 16))]
        + [0.0] * max(0, D - 16),
        dtype=np.float32,
    )
pca = PCA(2).fit(means)
xy = pca.transform(means)
fig = go.Figure(
    go.Scattergl(x=xy[:, 0], y=xy[:, 1], mode="markers", marker=dict(color=labels, size=5))
)
fig.add_trace(go.Scatter(x=pca.transform(z[None])[:, 0], y=pca.transform(z[None])[:, 1]))
left.plotly_chart(fig)
with torch.no_grad():
    img = run.model.decode(torch.from_numpy(z)[None])[0].numpy()  # (C, H, W)
right.image(images.data_uri(images.upscale(img, 256)), width=256, alt="decoded z")
