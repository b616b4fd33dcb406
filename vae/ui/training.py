"""The Train page's parts: the new-run form, the live view of a job, and the library's charts.

    values = form()                          # the widgets; returns the raw values (dict)
    model_cfg, cfg, errors = parse_form(values, probe)   # validated configs, or messages
    live_view(name)                          # status, actions, curves, KL heatmap, samples, map

Jobs run in their own processes (`vae.jobs`); everything here only reads their files, so a page
reload or a second browser reattaches to a running job. Charts are Plotly; images are PNG grids.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch
from plotly.subplots import make_subplots

from vae import jobs
from vae.checkpoint import (
    CONFIG_FILE,
    METRICS_JSONL,
    WEIGHTS_FILE,
    CheckpointError,
    load_run,
    read_json,
    read_jsonl,
)
from vae.config import ConfigError, ModelConfig, TrainConfig
from vae.data import DATASETS, DatasetError, load_dataset
from vae.data.status import dataset_status as data_status
from vae.device import list_devices
from vae.train import STEPS_FILE
from vae.ui import data, images, plots, state

STATE_BADGE = {  # state -> (label, material icon, colour)
    "starting": ("starting", ":material/hourglass_top:", "blue"),
    "running": ("running", ":material/play_circle:", "green"),
    "stopping": ("stopping", ":material/pause_circle:", "orange"),
    "stopped": ("stopped", ":material/stop_circle:", "orange"),
    "finished": ("finished", ":material/check_circle:", "green"),
    "failed": ("failed", ":material/error:", "red"),
    "ready": ("ready", ":material/inventory_2:", "gray"),
}
DATASET_TITLES = {
    "digits": "digits (8×8, built in)",
    "shapes": "shapes (procedural)",
    "mnist": "MNIST",
    "fashion-mnist": "Fashion-MNIST",
    "folder": "image folder",
    "npz": ".npz arrays",
}
NEEDS_DIR = ("folder", "npz")
RESIZABLE = ("shapes", "folder", "npz")
HIDDEN_DEFAULT = {"mlp": "400", "conv": "32, 64"}
POLL_S = 1.0
WATCH = "train_watch"  # session key: the run shown in the live view
CLEAR_NAME = "_tr_clear_name"
PREVIEW_N = 1000  # test images on the live latent map


# --- small helpers --------------------------------------------------------------------------------
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
    return " · ".join(parts)


# --- the form -------------------------------------------------------------------------------------
@st.cache_data(show_spinner="Checking the dataset…", max_entries=16, ttl=600)
def probe(name: str, data_dir: str | None, image_size: int | None) -> dict[str, Any]:
    """Image shape and train size of a dataset (loads it once; cached). Raises DatasetError."""
    ds = load_dataset(name, "train", data_dir, image_size=image_size)
    return {"image_shape": tuple(ds.image_shape), "n_train": len(ds)}


def dataset_status(name: str, data_dir: str | None) -> dict[str, Any]:
    try:
        return data_status(name, data_dir)
    except DatasetError as e:
        return {"available": False, "downloadable": False, "message": str(e)}


def device_options() -> list[Any]:
    return list_devices()


def device_label(d: Any, busy: dict[str, list[str]]) -> str:
    if not d.available:
        return f"{d.name} (unavailable: {d.reason})"
    label = d.label
    if d.name == "cpu":  # the app's own torch thread count says nothing about a job's
        threads = jobs.default_threads("cpu")
        label = f"cpu — {threads} thread{'s' * (threads != 1)} for training"
    slot = "cuda:0" if d.name == "cuda" else d.name
    if busy.get(slot):
        return f"{label} — busy with {', '.join(busy[slot])}"
    return label


def suggest_name(dataset: str, arch: str, latent: int, root: Path) -> str:
    base = f"{dataset}-{arch}-z{latent}"
    if not (root / base).exists():
        return base
    i = 2
    while (root / f"{base}-{i}").exists():
        i += 1
    return f"{base}-{i}"


def form() -> dict[str, Any]:
    """The new-run widgets, in three columns. Returns the raw values for `parse_form`."""
    v: dict[str, Any] = {}
    c1, c2, c3 = st.columns(3, gap="large")
    with c1:
        st.markdown("**Data**")
        v["dataset"] = st.selectbox(
            "Dataset", DATASETS, key="tr_dataset", format_func=lambda n: DATASET_TITLES.get(n, n)
        )
        v["data_dir"] = None
        if v["dataset"] in NEEDS_DIR:
            what = "Image folder" if v["dataset"] == "folder" else ".npz file"
            v["data_dir"] = st.text_input(what, key="tr_data_dir").strip() or None
        v["image_size"] = None
        if v["dataset"] in RESIZABLE:
            v["image_size"] = int(
                st.number_input("Image size (px)", 8, 64, 32, step=4, key="tr_image_size")
            )
        status = dataset_status(v["dataset"], v["data_dir"])
        v["data_ok"] = bool(status.get("available"))
        v["data_message"] = str(status.get("message") or "")
        if v["data_ok"]:
            st.caption(f":material/check_circle: {v['data_message']}")
        else:
            st.warning(
                v["data_message"] or "This dataset is not available.", icon=":material/folder_off:"
            )
            if status.get("downloadable") and st.button(
                f"Download {v['dataset']}", icon=":material/download:", key="tr_download"
            ):
                data.download_with_progress(v["dataset"], v["data_dir"], on_done=probe.clear)
        st.markdown("**Objective**")
        v["beta"] = st.number_input(
            "β (weight of the KL term)", 0.0, 100.0, 1.0, step=0.5, key="tr_beta",
            help="1 is the plain VAE (Kingma & Welling 2013); more than 1 is a β-VAE "
            "(Higgins et al. 2017), which trades reconstruction for a more regular latent space.",
        )  # fmt: skip
        v["warmup_steps"] = int(
            st.number_input(
                "KL warm-up (steps)", 0, 1_000_000, 0, step=100, key="tr_warmup",
                help="β rises linearly from 0 over this many steps (Bowman et al. 2016), which "
                "helps keep latent dimensions from collapsing early.",
            )
        )  # fmt: skip
        v["free_bits"] = st.number_input(
            "Free bits (nats per dimension)", 0.0, 10.0, 0.0, step=0.1, key="tr_free_bits",
            help="KL below this, per latent dimension, is not penalised (Kingma et al. 2016).",
        )  # fmt: skip
    with c2:
        st.markdown("**Model**")
        v["arch"] = st.segmented_control(
            "Architecture", ["mlp", "conv"], default="mlp", key="tr_arch",
            format_func=lambda a: {"mlp": "MLP", "conv": "Convolutional"}[a],
        ) or "mlp"  # fmt: skip
        v["latent_dim"] = int(
            st.number_input(
                "Latent size", 2, 128, 2, key="tr_latent",
                help="2 draws the latent space directly; more dimensions model the data better "
                "and are shown through a projection.",
            )
        )  # fmt: skip
        v["hidden"] = st.text_input(
            "Hidden sizes", placeholder=HIDDEN_DEFAULT[v["arch"]], key="tr_hidden",
            help="MLP: widths of the hidden layers. Convolutional: channels of each stride-2 "
            "layer. Comma-separated; empty uses the default shown.",
        )  # fmt: skip
        v["likelihood"] = st.selectbox(
            "Decoder likelihood", ["bernoulli", "gaussian"], key="tr_likelihood",
            help="Bernoulli suits black-and-white images such as digits; Gaussian suits photos.",
        )  # fmt: skip
    with c3:
        st.markdown("**Run**")
        root = jobs.runs_root()
        suggestion = suggest_name(v["dataset"], v["arch"], v["latent_dim"], root)
        if st.session_state.pop(CLEAR_NAME, False):
            st.session_state["tr_name"] = ""  # the last name was taken by the job just started
        v["name"] = st.text_input(
            "Name", placeholder=suggestion, key="tr_name",
            help="The run's folder under runs/. Empty uses the name shown.",
        ).strip() or suggestion  # fmt: skip
        a, b = st.columns(2)
        v["epochs"] = int(a.number_input("Epochs", 1, 10_000, 10, key="tr_epochs"))
        v["batch_size"] = int(b.number_input("Batch size", 1, 65_536, 128, key="tr_batch"))
        v["lr"] = a.text_input("Learning rate", "1e-3", key="tr_lr")
        v["seed"] = int(b.number_input("Seed", 0, 2**31 - 1, 0, key="tr_seed"))
        devices = device_options()
        busy: dict[str, list[str]] = {}
        for s in jobs.active_jobs():
            busy.setdefault(s.device, []).append(s.name)
        by_name = {d.name: d for d in devices}
        first_ok = next((d.name for d in devices if d.available and d.name != "cpu"), "cpu")
        if st.session_state.get("tr_device") not in by_name:
            st.session_state["tr_device"] = first_ok
        name = st.selectbox(
            "Device", list(by_name), key="tr_device",
            format_func=lambda n: device_label(by_name[n], busy),
        )  # fmt: skip
        v["device"] = name
        v["device_ok"] = by_name[name].available
        v["device_reason"] = by_name[name].reason
    return v


def parse_hidden(text: str, arch: str) -> tuple[int, ...]:
    text = (text or "").strip() or HIDDEN_DEFAULT[arch]
    try:
        return tuple(int(t) for t in text.replace(" ", ",").split(",") if t)
    except ValueError:
        raise ConfigError(
            f"hidden sizes must be whole numbers separated by commas, got {text!r}"
        ) from None


def parse_form(
    v: dict[str, Any], shape: tuple[int, int, int] | None
) -> tuple[ModelConfig | None, TrainConfig | None, list[str]]:
    """Build and validate the configs. Returns (model config, train config, error messages)."""
    errors: list[str] = []
    try:
        jobs.check_name(v["name"])
        if (jobs.runs_root() / v["name"]).exists():
            errors.append(f"Name: a run named {v['name']!r} already exists; pick another name.")
    except jobs.JobError as e:
        errors.append(f"Name: {e}.")
    if not v.get("data_ok"):
        errors.append(f"Dataset: {v.get('data_message') or 'not available'}")
    if not v.get("device_ok"):
        errors.append(f"Device: {v['device']} is not available ({v.get('device_reason')}).")
    model_cfg = cfg = None
    try:
        hidden = parse_hidden(v["hidden"], v["arch"])
        if shape is not None:
            model_cfg = ModelConfig(
                image_shape=shape,
                latent_dim=v["latent_dim"],
                arch=v["arch"],
                hidden=hidden,
                likelihood=v["likelihood"],
            )
    except ConfigError as e:
        errors.append(f"Model: {e}.")
    try:
        lr = float(str(v["lr"]).strip())
    except ValueError:
        errors.append(f"Learning rate: {v['lr']!r} is not a number (try 1e-3).")
        lr = None
    if lr is not None:
        try:
            cfg = TrainConfig(
                dataset=v["dataset"],
                data_dir=v.get("data_dir"),
                image_size=v.get("image_size"),
                epochs=v["epochs"],
                batch_size=v["batch_size"],
                lr=lr,
                beta=float(v["beta"]),
                warmup_steps=v["warmup_steps"],
                free_bits=float(v["free_bits"]),
                seed=v["seed"],
                device=v["device"],
            )
        except ConfigError as e:
            errors.append(f"Training: {e}.")
    return model_cfg, cfg, errors


def log_every(n_train: int, epochs: int, batch_size: int) -> int:
    """About 300 points on the live curves, and at least one every 20 steps."""
    total = max(1, n_train // batch_size) * epochs
    return int(max(1, min(20, total // 300)))


def start_from_form(v: dict[str, Any]) -> jobs.JobStatus | None:
    """Validate the form and start the job; shows every problem and returns None on failure."""
    info = None
    if v.get("data_ok"):
        try:
            info = probe(v["dataset"], v.get("data_dir"), v.get("image_size"))
        except DatasetError as e:
            v["data_ok"], v["data_message"] = False, str(e)
    model_cfg, cfg, errors = parse_form(v, info["image_shape"] if info else None)
    if errors or model_cfg is None or cfg is None:
        for msg in errors or ["The settings are incomplete."]:
            st.error(msg, icon=":material/error:")
        return None
    try:
        job = jobs.start(
            v["name"], model_cfg, cfg,
            log_every=log_every(info["n_train"], cfg.epochs, cfg.batch_size),
        )  # fmt: skip
    except jobs.JobError as e:
        st.error(str(e), icon=":material/block:")
        return None
    st.session_state[CLEAR_NAME] = True
    return job


# --- figures --------------------------------------------------------------------------------------
def curves_figure(steps: list[dict], epochs: list[dict], height: int = 300) -> go.Figure:
    """Training ELBO, reconstruction and KL per logged step; test values per epoch as dots."""
    fig = make_subplots(
        rows=1, cols=3, horizontal_spacing=0.07,
        subplot_titles=("ELBO (nats, higher is better)", "Reconstruction −log p(x|z)",
                        "KL(q(z|x) ‖ p(z))"),
    )  # fmt: skip
    x = [r["step"] for r in steps]
    for col, key, color in ((1, "elbo", "#4c78a8"), (2, "recon", "#f58518"), (3, "kl", "#54a24b")):
        fig.add_trace(
            go.Scatter(
                x=x, y=[r[key] for r in steps], mode="lines", name=f"train {key}",
                line=dict(color=color, width=1.6), showlegend=False,
                hovertemplate=f"step %{{x}}<br>train {key} %{{y:.2f}}<extra></extra>",
            ),
            row=1, col=col,
        )  # fmt: skip
        tk = f"test_{key}"
        ep = [r for r in epochs if isinstance(r.get(tk), (int, float))]
        if ep:
            fig.add_trace(
                go.Scatter(
                    x=[r["step"] for r in ep], y=[r[tk] for r in ep],
                    mode="lines+markers" if len(ep) < 40 else "lines",
                    name=f"test {key}", marker=dict(color="#333", size=5),
                    line=dict(color="#333", width=1, dash="dot"), showlegend=False,
                    hovertemplate=f"epoch %{{text}}<br>test {key} %{{y:.2f}}<extra></extra>",
                    text=[r["epoch"] for r in ep],
                ),
                row=1, col=col,
            )  # fmt: skip
    fig.update_xaxes(title_text="step", showgrid=True, gridcolor="#eee")
    fig.update_yaxes(showgrid=True, gridcolor="#eee")
    fig.update_annotations(font_size=13)
    fig.update_layout(
        height=height, margin=dict(l=10, r=10, t=30, b=10), plot_bgcolor="white",
        uirevision="curves",
    )  # fmt: skip
    return fig


def kl_heatmap(epochs: list[dict], height: int = 300) -> go.Figure | None:
    """Test KL of each latent dimension (rows) after each epoch (columns)."""
    rows = [r for r in epochs if isinstance(r.get("test_kl_per_dim"), list)]
    if not rows:
        return None
    kl = np.array([r["test_kl_per_dim"] for r in rows], dtype=np.float32).T  # (D, E)
    fig = go.Figure(
        go.Heatmap(
            z=kl, x=[r["epoch"] for r in rows], y=[f"z{d}" for d in range(kl.shape[0])],
            colorscale="Viridis", zmin=0, colorbar=dict(title=dict(text="nats"), thickness=10),
            hovertemplate="epoch %{x}, %{y}: %{z:.3f} nats<extra></extra>",
        )
    )  # fmt: skip
    fig.update_layout(
        height=height, margin=dict(l=10, r=10, t=30, b=10),
        title=dict(text="KL per latent dimension", font=dict(size=13)),
        xaxis=dict(title="epoch", dtick=max(1, round(len(rows) / 8)), tickangle=0),
        yaxis=dict(autorange="reversed", showticklabels=kl.shape[0] <= 32),
    )  # fmt: skip
    return fig


def compare_figure(runs: dict[str, tuple[list[dict], list[dict]]], height: int = 360) -> go.Figure:
    """Overlay of several runs: train ELBO per step (lines) and test ELBO per epoch (dots)."""
    fig = make_subplots(
        rows=1, cols=2, horizontal_spacing=0.08,
        subplot_titles=("Train ELBO per step", "Test ELBO per epoch"),
    )  # fmt: skip
    for i, (name, (steps, epochs)) in enumerate(runs.items()):
        color = plots.PALETTE[i % len(plots.PALETTE)]
        fig.add_trace(
            go.Scatter(
                x=[r["step"] for r in steps], y=[r["elbo"] for r in steps], mode="lines",
                name=name, legendgroup=name, line=dict(color=color, width=1.6),
            ),
            row=1, col=1,
        )  # fmt: skip
        ep = [r for r in epochs if isinstance(r.get("test_elbo"), (int, float))]
        fig.add_trace(
            go.Scatter(
                x=[r["epoch"] for r in ep], y=[r["test_elbo"] for r in ep],
                mode="lines+markers" if len(ep) <= 40 else "lines",
                name=name, legendgroup=name, showlegend=False, line=dict(color=color),
            ),
            row=1, col=2,
        )  # fmt: skip
    fig.update_xaxes(title_text="step", row=1, col=1)
    fig.update_xaxes(title_text="epoch", row=1, col=2)
    fig.update_yaxes(title_text="nats")
    fig.update_layout(
        height=height, margin=dict(l=10, r=10, t=30, b=10), plot_bgcolor="white",
        legend=dict(orientation="h", y=-0.2),
    )  # fmt: skip
    return fig


# --- the checkpoint preview (redrawn when model.safetensors changes) -----------------------------
@st.cache_resource(show_spinner=False, max_entries=3)
def _test_images(name: str, data_dir: str | None, image_size: int | None) -> dict[str, Any]:
    """A fixed sample of the test split: up to PREVIEW_N images and labels (torch tensors)."""
    ds = load_dataset(name, "test", data_dir, image_size=image_size)
    idx = torch.randperm(len(ds), generator=torch.Generator().manual_seed(0))[:PREVIEW_N]
    return {
        "x": ds.x[idx].clone(),
        "y": None if ds.y is None else ds.y[idx].clone(),
        "label_names": list(ds.label_names or []),
    }


@dataclass
class Preview:
    samples: Any  # PIL image: a grid of decoded prior samples
    recon: Any  # PIL image: test images (top rows) over their reconstructions
    xy: np.ndarray | None  # (N, 2) latent means (2-d) or their PCA
    labels: np.ndarray | None
    label_names: list[str]
    axes: tuple[str, str]


@st.cache_data(show_spinner=False, max_entries=12)
def preview(path: str, stamp: tuple[int, int]) -> Preview:
    """Samples, reconstructions and the latent map of the checkpoint in `path`, whose weights
    file has `stamp` (mtime, size): hashed, so each new checkpoint gets a fresh entry."""
    run = load_run(path)
    torch.manual_seed(0)
    with torch.no_grad():
        z = torch.randn(16, run.config.latent_dim, generator=torch.Generator().manual_seed(0))
        samples = run.model.decode(z).numpy()  # (16, C, H, W)
    samples_img = images.grid(list(samples), ncol=4)
    train = run.meta.get("train") or {}
    try:
        test_set = _test_images(
            str(train.get("dataset")), train.get("data_dir"), train.get("image_size")
        )
    except DatasetError:
        return Preview(samples_img, None, None, None, [], ("", ""))
    x = test_set["x"]  # (N, C, H, W)
    with torch.no_grad():
        rec = run.model.reconstruct(x[:8]).numpy()  # (8, C, H, W)
        mean = run.model.encode(x).mean.numpy()  # (N, D)
    xs = x[:8].numpy()
    recon_img = images.grid([*xs[:4], *rec[:4], *xs[4:], *rec[4:]], ncol=4)  # image over recon
    if mean.shape[1] == 2:
        xy, axes = mean, ("z0", "z1")
    else:
        from sklearn.decomposition import PCA

        xy, axes = PCA(2, random_state=0).fit_transform(mean), ("PC 1", "PC 2")
    labels = None if test_set["y"] is None else test_set["y"].numpy()
    names = test_set["label_names"]
    return Preview(samples_img, recon_img, xy.astype(np.float32), labels, names, axes)


def weights_stamp(run_dir: Path) -> tuple[int, int] | None:
    try:
        s = (run_dir / WEIGHTS_FILE).stat()
    except OSError:
        return None
    return s.st_mtime_ns, s.st_size


def show_preview(run_dir: Path, epoch: int) -> None:
    stamp = weights_stamp(run_dir)
    if stamp is None:
        st.caption("Samples appear after the first checkpoint.")
        return
    try:
        p = preview(str(run_dir), stamp)
    except Exception as e:  # a checkpoint mid-replace or an unreadable one: try next poll
        st.caption(f"Could not read the checkpoint yet ({type(e).__name__}).")
        return
    when = f"after epoch {epoch}" if epoch else "at initialisation"
    a, b, c = st.columns([1, 1, 1.2], gap="medium")
    with a:
        st.markdown(f"**Samples** from the prior, {when}")
        st.image(
            images.upscale(p.samples, 360), width="stretch", output_format="PNG",
            alt="training samples",
        )  # fmt: skip
    with b:
        st.markdown(f"**Reconstructions**, {when}")
        if p.recon is None:
            st.caption("The dataset is not available here, so there is nothing to reconstruct.")
        else:
            st.image(
                images.upscale(p.recon, 360), width="stretch", output_format="PNG",
                alt="training reconstructions",
            )  # fmt: skip
            st.caption("Rows 1 and 3: test images. Rows 2 and 4: what the model makes of them.")
    with c:
        if p.xy is not None:
            st.markdown(f"**Latent map** of {len(p.xy)} test images ({p.axes[0]}, {p.axes[1]})")
            color = p.labels if p.labels is not None else np.zeros(len(p.xy))
            fig = plots.latent_map(
                p.xy, color, categorical=p.labels is not None, color_title="label",
                category_names=p.label_names or None, axis_titles=p.axes, height=300,
            ).figure  # fmt: skip
            fig.update_layout(dragmode="pan", margin=dict(l=10, r=10, t=10, b=10))
            st.plotly_chart(fig, key=f"live_map_{run_dir.name}", config={"displaylogo": False})


# --- the live view of one job ---------------------------------------------------------------------
def summary(run_dir: Path, s: jobs.JobStatus) -> str:
    """One line: dataset, model and settings of a run, from its config.json."""
    try:
        meta = read_json(run_dir / CONFIG_FILE)
    except CheckpointError:
        return f"on {s.device}" if s.device else ""
    m, t = meta.get("model") or {}, meta.get("train") or {}
    hidden = ", ".join(str(h) for h in m.get("hidden") or [])
    parts = [
        str(t.get("dataset", "?")),
        f"{str(m.get('arch', '?')).upper()} ({hidden})",
        f"{m.get('latent_dim')}-d latent",
        f"{m.get('likelihood')} decoder",
        f"β {t.get('beta')}",
        f"batch {t.get('batch_size')}",
        f"lr {t.get('lr'):g}" if isinstance(t.get("lr"), (int, float)) else "",
        f"on {s.device}" if s.device else "",
    ]
    return " · ".join(p for p in parts if p)


def explore_button(name: str, key: str, **kw: Any) -> None:
    if st.button("Explore this model", icon=":material/explore:", key=key, **kw):
        state.request_model(f"run:{name}")
        st.switch_page("pages/explore.py")


def actions(s: jobs.JobStatus) -> None:
    """Stop / Resume / Explore / Delete for the watched run, in one row."""
    row = st.container(horizontal=True, vertical_alignment="center")
    with row:
        if s.active and st.button(
            "Stop", icon=":material/stop:", key=f"stop_{s.name}", disabled=s.state == "stopping",
            help="Finishes the current step, saves a checkpoint and stops; you can resume later.",
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
    st.progress(1.0 if s.state == "finished" else s.progress, text=progress_text(s))
    actions(s)
    if s.state == "failed":
        st.error(s.message, icon=":material/error:")
    elif s.state == "stopped":
        st.info(s.message, icon=":material/pause_circle:")
    steps = read_jsonl(run_dir / STEPS_FILE)
    epochs = read_jsonl(run_dir / METRICS_JSONL)
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
