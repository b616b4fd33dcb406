"""Model library: every training run, compared, renamed, downloaded, imported or deleted."""

import pandas as pd
import streamlit as st

from vae import archive, jobs
from vae.checkpoint import METRICS_JSONL, CheckpointError, read_jsonl
from vae.train import STEPS_FILE
from vae.ui import state, training

VERSION = "_library_version"  # bumped after a change, to reset the table selection and upload


def changed() -> None:
    st.session_state[VERSION] = st.session_state.get(VERSION, 0) + 1
    st.rerun()


st.title("Model library")
st.caption(
    f"Every run in `{jobs.runs_root()}`. Select rows to compare their learning curves; select "
    "one to open it, rename it, download it as a zip or delete it."
)

runs = jobs.list_runs()
rows = [
    {
        "Name": r.name,
        "State": r.status.state,
        "Dataset": r.dataset,
        "Latent": r.latent_dim,
        "Arch": r.arch,
        "Epochs": r.epochs,
        "Score": r.score or "—",
        "Wall time": training.duration(r.wall_time_s),
        "Device": r.device or "—",
        "Created": r.created.replace("T", " ")[:16],
        "Size (MB)": round(r.size_bytes / 1e6, 2),
    }
    for r in runs
]
selected: list[jobs.RunInfo] = []
if runs:
    event = st.dataframe(
        pd.DataFrame(rows),
        key=f"library_table_{st.session_state.get(VERSION, 0)}",
        on_select="rerun",
        selection_mode="multi-row",
        hide_index=True,
        column_config={
            "Score": st.column_config.TextColumn(
                help="IWAE NLL when the run was evaluated (lower is better), else the final "
                "test ELBO (higher is better), in nats"
            ),
            "Latent": st.column_config.NumberColumn(help="latent dimensions"),
        },
    )
    selected = [runs[i] for i in event.selection.rows if i < len(runs)]
else:
    st.info(
        "No runs yet. Train one on the Train page, or import a zip below.", icon=":material/info:"
    )

# --- compare --------------------------------------------------------------------------------------
if selected:
    st.subheader("Compare" if len(selected) > 1 else selected[0].name)
    curves = {
        r.name: (read_jsonl(r.status.path / STEPS_FILE), read_jsonl(r.status.path / METRICS_JSONL))
        for r in selected
    }
    if any(steps or epochs for steps, epochs in curves.values()):
        st.plotly_chart(
            training.compare_figure(curves), key="compare", config={"displaylogo": False}
        )
    else:
        st.caption("These runs have no recorded learning curves (imported or trained elsewhere).")

# --- manage one run -------------------------------------------------------------------------------
if len(selected) == 1:
    r = selected[0]
    s = r.status
    st.markdown(f"{training.badge_text(s.state)} &nbsp; {training.summary(s.path, s)}")
    if s.message:
        st.caption(s.message)
    with st.container(horizontal=True, vertical_alignment="center"):
        if s.has_model:
            training.explore_button(r.name, "lib_explore", type="primary")
            st.download_button(
                "Download zip",
                data=lambda: archive.export_zip(s.path),
                file_name=f"{r.name}.zip",
                mime="application/zip",
                icon=":material/download:",
                key="lib_download",
                help="config.json, model.safetensors and the metrics files (no training state)",
            )
        with st.popover("Rename", icon=":material/edit:", disabled=s.active):
            new = st.text_input("New name", value=r.name, key=f"lib_new_name_{r.name}")
            if st.button("Rename", key="lib_rename", type="primary"):
                try:
                    jobs.rename_run(r.name, new)
                    if st.session_state.get(state.MODEL) == f"run:{r.name}":
                        state.request_model(f"run:{new.strip()}")
                    changed()
                except jobs.JobError as e:
                    st.error(str(e))
        with st.popover("Delete", icon=":material/delete:", disabled=s.active):
            st.markdown(f"Delete **{r.name}** and all its files? This cannot be undone.")
            if st.button("Yes, delete it", key="lib_delete", type="primary"):
                try:
                    jobs.delete_run(r.name)
                    changed()
                except jobs.JobError as e:
                    st.error(str(e))
    if s.active:
        st.caption("Rename and delete are disabled while the run is training.")

# --- import ---------------------------------------------------------------------------------------
st.subheader("Import a model")
up = st.file_uploader(
    "A zip holding config.json and model.safetensors (metrics files optional)",
    type=["zip"],
    key=f"lib_upload_{st.session_state.get(VERSION, 0)}",
)
if up is not None:
    data = up.getvalue()
    try:
        ck = archive.check_zip(data)
        default = ck.folder or up.name.rsplit(".", 1)[0]
    except CheckpointError as e:
        st.error(str(e), icon=":material/block:")
        st.stop()
    name = st.text_input("Name in the library", value=default, key="lib_import_name")
    if st.button("Import", key="lib_import", icon=":material/upload:", type="primary"):
        try:
            path = jobs.import_zip(data, name)
            st.toast(f"Imported {path.name}.", icon=":material/check_circle:")
            changed()
        except (jobs.JobError, CheckpointError) as e:
            st.error(str(e), icon=":material/block:")
