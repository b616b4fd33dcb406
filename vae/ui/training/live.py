"""The live view of a training job: status, progress, Stop / Resume, curves, KL and preview.

    jobs_panel()        # pick a run; its live view polls every POLL_S while the job is active
    live_view(name)     # the body of that polling fragment, read from the run's files

Jobs run in their own processes (`vae.jobs`); everything here only reads their files, so a page
reload or a second browser reattaches to a running job.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import streamlit as st

from vae import jobs
from vae.record import RecordError, RunRecord, read_logs
from vae.ui import state
from vae.ui.training.figures import curves_figure, kl_heatmap
from vae.ui.training.preview import show_preview

STATE_BADGE = {  # state -> (label, material icon, colour)
    "starting": ("starting", ":material/hourglass_top:", "blue"),
    "running": ("running", ":material/play_circle:", "green"),
    "stopping": ("stopping", ":material/pause_circle:", "orange"),
    "mapping": ("making the map", ":material/scatter_plot:", "blue"),
    "stopped": ("stopped", ":material/stop_circle:", "orange"),
    "finished": ("finished", ":material/check_circle:", "green"),
    "failed": ("failed", ":material/error:", "red"),
    "ready": ("ready", ":material/inventory_2:", "gray"),
}
POLL_S = 1.0
WATCH = "train_watch"  # session key: the run shown in the live view


# --- words for a job's state ----------------------------------------------------------------------
def badge(state_: str) -> None:
    label, icon, color = STATE_BADGE.get(state_, (state_, None, "gray"))
    st.badge(label, icon=icon, color=color)


def badge_text(state_: str) -> str:
    label, _, color = STATE_BADGE.get(state_, (state_, None, "gray"))
    return f":{color}-badge[{label}]"


def duration(seconds: float | None) -> str:
    """42 s, 3 min 05 s, 1 h 02 min."""
    if seconds is None or not math.isfinite(seconds):
        return "—"
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def progress_text(s: jobs.JobStatus) -> str:
    if s.state == "starting":
        return "Starting: loading PyTorch and the data…"
    if s.state == "ready" or not s.epochs:
        return "No training record here: imported, or trained elsewhere."
    parts = [f"Epoch {min(s.epoch + (s.state == 'running'), s.epochs)} of {s.epochs}"]
    if s.total_steps:
        parts.append(f"step {s.step:,} of {s.total_steps:,}")
    if s.state == "running" and s.eta_s is not None:
        parts.append(f"about {duration(s.eta_s)} left")
    if s.state in jobs.TERMINAL:
        parts.insert(0, s.state.capitalize())
    if s.state == "mapping":  # trained; the job makes the t-SNE map so Explore opens on it
        parts.insert(0, "Trained")
        parts.append("making the map for Explore")
    return " · ".join(parts)


def summary(run_dir: Path, s: jobs.JobStatus) -> str:
    """One line: dataset, model and settings of a run, from its config.json."""
    try:
        rec = RunRecord.read(run_dir)
    except RecordError:
        return f"on {s.device}" if s.device else ""
    m, t = rec.model, rec.train
    parts = [
        t.dataset,
        f"{m.arch.upper()} ({', '.join(map(str, m.hidden))})",
        f"{m.latent_dim}-d latent",
        f"{m.likelihood} decoder",
        f"β {t.beta:g}",
        f"β-TCVAE, TC weight {t.tc_beta:g}" if t.objective == "btcvae" else "",
        f"batch {t.batch_size}",
        f"lr {t.lr:g}",
        f"on {s.device}" if s.device else "",
    ]
    return " · ".join(p for p in parts if p)


# --- buttons --------------------------------------------------------------------------------------
def explore_button(name: str, key: str, **kw: Any) -> None:
    if st.button("Explore this model", icon=":material/explore:", key=key, **kw):
        state.request_model(f"run:{name}")
        st.switch_page("pages/explore.py")


def actions(s: jobs.JobStatus) -> None:
    """Stop / Resume / Explore / Delete for the watched run, in one row."""
    row = st.container(horizontal=True, vertical_alignment="center")
    with row:
        if s.active and st.button(
            "Stop", icon=":material/stop:", key=f"stop_{s.name}",
            disabled=s.state in ("stopping", "mapping"),
            help="Finishes the current step, saves a checkpoint and stops; you can resume later."
            + (" Training has ended; the map takes a few more seconds." if s.state == "mapping"
               else ""),
        ):  # fmt: skip
            try:
                jobs.stop(s.name)
            except jobs.JobError as e:
                st.toast(str(e))
            st.rerun(scope="fragment")
        if s.can_resume and st.button(
            "Resume", icon=":material/play_arrow:", key=f"resume_{s.name}", type="primary",
            help="Continue from the last checkpoint.",
        ):  # fmt: skip
            try:
                jobs.resume(s.name)
                st.rerun(scope="app")
            except jobs.JobError as e:
                st.error(str(e))
        if s.has_model and not s.active:
            kind = "primary" if s.state == "finished" else "secondary"
            explore_button(s.name, f"explore_{s.name}", type=kind)
        if not s.active:
            with st.popover("Delete", icon=":material/delete:"):
                st.markdown(f"Delete **{s.name}** and all its files? This cannot be undone.")
                if st.button("Yes, delete it", key=f"delete_{s.name}", type="primary"):
                    try:
                        jobs.delete_run(s.name)
                        st.session_state.pop(WATCH, None)
                        st.rerun(scope="app")
                    except jobs.JobError as e:
                        st.error(str(e))


# --- the view -------------------------------------------------------------------------------------
def live_view(name: str) -> None:
    """Everything about one run, read from its files (the body of the polling fragment)."""
    run_dir = jobs.runs_root() / name
    if not run_dir.is_dir():
        st.info(f"The run {name} no longer exists.")
        return
    s = jobs.job_status(run_dir)
    was_active = st.session_state.setdefault("_tr_was_active", {})
    if was_active.get(name) and not s.active:
        was_active[name] = False
        st.rerun(scope="app")  # stop polling, refresh the model picker
    was_active[name] = s.active
    st.markdown(f"#### {name} &nbsp; {badge_text(s.state)}")
    st.caption(summary(run_dir, s))
    st.progress(1.0 if s.state in ("finished", "mapping") else s.progress, text=progress_text(s))
    actions(s)
    if s.state == "failed":
        st.error(s.message, icon=":material/error:")
    elif s.state == "stopped":
        st.info(s.message, icon=":material/pause_circle:")
    epochs, steps = read_logs(run_dir)
    left, right = st.columns([2.2, 1], gap="medium")
    with left:
        if steps:
            st.plotly_chart(curves_figure(steps, epochs), key=f"curves_{name}",
                            config={"displaylogo": False})  # fmt: skip
        else:
            st.caption("The curves appear with the first logged steps.")
    with right:
        fig = kl_heatmap(epochs)
        if fig is not None:
            st.plotly_chart(fig, key=f"klmap_{name}", config={"displaylogo": False})
        else:
            st.caption("The KL of each latent dimension appears after the first epoch.")
    show_preview(run_dir, s.epoch)
    with st.expander("Log", expanded=s.state == "failed"):
        st.code(jobs.log_tail(run_dir, 40) or "(empty)", language=None)


def watch_options() -> list[jobs.JobStatus]:
    """Runs to offer in the live view: active ones first, then the most recently started."""
    found = [jobs.job_status(d) for d in jobs.run_dirs()]
    return sorted(found, key=lambda s: (not s.active, -(s.started or 0), s.name))


def jobs_panel() -> None:
    """Pick a run and watch it; polls every second while a job is active."""
    options = watch_options()
    if not options:
        st.info("No training runs yet. Start one above.", icon=":material/info:")
        return
    by_name = {s.name: s for s in options}
    if st.session_state.get(WATCH) not in by_name:
        st.session_state[WATCH] = options[0].name
    active = [s for s in options if s.active]
    c1, c2 = st.columns([2, 3], vertical_alignment="bottom")
    c1.selectbox("Run", list(by_name), key=WATCH, help="Active runs first, then the newest.")
    c2.caption(
        f"{len(active)} job{'s' * (len(active) != 1)} running"
        + (f": {', '.join(s.name for s in active)}" if active else "")
        + ". Jobs keep running when you close the page; come back to watch them."
    )
    name = st.session_state[WATCH]
    run_every = POLL_S if by_name[name].active else None
    st.fragment(run_every=run_every)(live_view)(name)
