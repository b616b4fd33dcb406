"""VAE Latent Explorer (placeholder until the explorer pages land)."""

import streamlit as st

st.set_page_config(page_title="VAE Latent Explorer", page_icon="🧭", layout="wide")
st.title("VAE Latent Explorer")
st.write("The explorer pages are being built. Train a model with `python -m vae.train`.")
