"""Train: set up a run, start it in the background, and watch it learn (curves, KL, samples)."""

import streamlit as st

from vae.ui import frame, models, training

frame.ensure()  # a deep link on a fresh server runs this page alone (vae/ui/frame.py)

st.title("Train a model")
st.caption(
    "Training runs in its own process, so this page (and every other one) stays responsive. "
    "It keeps going when you close the browser; open this page again to watch it. Finished "
    "runs appear in the sidebar's model picker."
)
if models.public_mode():
    st.info(
        "Training is turned off on this shared deployment (VAE_PUBLIC=1): every run would use "
        "the server's CPU for everyone. Run the app on your own machine to train: "
        "`streamlit run app.py`.",
        icon=":material/public:",
    )
    st.stop()

with st.container(border=True):
    st.markdown("##### New training run")
    values = training.form()
    if st.button("Start training", type="primary", icon=":material/play_arrow:", key="tr_start"):
        job = training.start_from_form(values)
        if job is not None:
            st.session_state[training.WATCH] = job.name
            st.rerun()  # a fresh form (new name suggestion) and the new job in the list

st.subheader("Runs")
training.jobs_panel()
