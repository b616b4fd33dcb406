"""Model library: every training run and shipped model, compared, renamed, downloaded, imported
or deleted."""

import pandas as pd
import streamlit as st

from vae import archive, jobs
from vae.checkpoint import CheckpointError, train_state_meta
from vae.record import read_logs
from vae.ui import frame, models, state, training

frame.ensure()  # a deep link on a fresh server runs this page alone (vae/ui/frame.py)

VERSION = "_library_version"  # bumped after a change, to reset the table selection and upload


def changed() -> None:
    st.session_state[VERSION] = st.session_state.get(VERSION, 0) + 1
    st.rerun()


st.title("Model library")
st.caption(
    f"Every run in `{jobs.runs_root()}`, and the models shipped with the app (read-only) to "
    "compare them against. Select rows to compare their learning curves; select one to open it, "
    "rename it, download it as a zip or delete it."
)
if st.session_state.get("_library_notice"):
    st.success(st.session_state.pop("_library_notice"), icon=":material/check_circle:")

public = models.public_mode()  # a shared deployment: the library is read-only for visitors
if public:
    st.info(
        "This is a shared deployment: the library is read-only here (no import, rename or "
        "delete). Add a model of your own with the sidebar's **Add a model**.",
        icon=":material/public:",
    )
skipped: list[str] = []  # "<folder>: why" for each run whose files cannot be read
runs = jobs.list_runs(problems=skipped)
n_own = len(runs)
runs += jobs.list_runs(models.assets_dir(), skipped)  # shipped: for comparison, never changed
for msg in skipped:
    st.warning(f"Skipped a run folder: {models.plain(msg)}", icon=":material/warning:")


def shipped(i: int) -> bool:
    return i >= n_own


rows = [
    {
        "Name": r.name,
        "State": "shipped" if shipped(i) else r.status.state,
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
    for i, r in enumerate(runs)
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
                help="Test negative log-likelihood in nats, lower is better: the IWAE "
                "estimate when the run was evaluated, else bounded by the final test ELBO "
                "(NLL ≤ −ELBO)"
            ),
            "Latent": st.column_config.NumberColumn(help="latent dimensions"),
        },
    )
    picked = [i for i in event.selection.rows if i < len(runs)]
    selected = [runs[i] for i in picked]
else:
    st.info(
        "No runs yet. Train one on the Train page, or import a zip below.", icon=":material/info:"
    )

# --- compare --------------------------------------------------------------------------------------
if selected:
    st.subheader("Compare" if len(selected) > 1 else selected[0].name)
    logs = {r.name: read_logs(r.status.path) for r in selected}  # (epochs, steps)
    curves = {name: (steps, epochs) for name, (epochs, steps) in logs.items() if steps or epochs}
    if curves:
        st.plotly_chart(
            training.compare_figure(curves), key="compare", config={"displaylogo": False}
        )
    no_steps = [name for name, (_, steps) in logs.items() if not steps]
    if no_steps:
        st.caption(
            f"No step log for {', '.join(no_steps)} (imported as a model zip, or trained "
            "elsewhere): "
            + ("no learning curves to show." if not curves else "only its per-epoch points.")
        )

# --- manage one run -------------------------------------------------------------------------------
if len(selected) == 1 and shipped(picked[0]):
    r = selected[0]
    st.caption(f"Shipped with the app in `{r.status.path}`: read-only. {r.score or ''}")
    with st.container(horizontal=True, vertical_alignment="center"):
        if st.button("Explore this model", icon=":material/explore:", key="lib_explore_asset"):
            state.request_model(f"asset:{r.name}")
            st.switch_page("pages/explore.py")
        st.download_button(
            "Download zip",
            data=lambda: archive.export_zip(r.status.path),
            file_name=f"{r.name}.zip",
            mime="application/zip",
            icon=":material/download:",
            key="lib_download_asset",
        )
elif len(selected) == 1:
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
                help="config.json, model.safetensors and the metrics files: enough to explore it",
            )
            st.download_button(
                "Full backup",
                data=lambda: archive.export_zip(s.path, full=True),
                file_name=f"{r.name}-backup.zip",
                mime="application/zip",
                icon=":material/backup:",
                key="lib_backup",
                help="Also the step log and the training state: imports as a resumable run "
                "with its learning curves",
            )
        with st.popover("Rename", icon=":material/edit:", disabled=s.active or public):
            new = st.text_input("New name", value=r.name, key=f"lib_new_name_{r.name}")
            if st.button("Rename", key="lib_rename", type="primary"):
                try:
                    jobs.rename_run(r.name, new)
                    if st.session_state.get(state.MODEL) == f"run:{r.name}":
                        state.request_model(f"run:{new.strip()}")
                    changed()
                except jobs.JobError as e:
                    st.error(str(e))
        with st.popover("Delete", icon=":material/delete:", disabled=s.active or public):
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
if public:
    st.stop()
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
            resumable = train_state_meta(path) is not None
            st.session_state["_library_notice"] = f"Imported **{path.name}**" + (
                " with its training state: select it to resume training on the Train page."
                if resumable
                else "."
            )
            changed()
        except (jobs.JobError, CheckpointError) as e:
            st.error(str(e), icon=":material/block:")
