"""The new-run form of the Train page: widgets, validation, and starting the job.

    values = form()                                   # the widgets' raw values (dict)
    model_cfg, cfg, errors = parse_form(values, shape)   # validated configs, or messages
    job = start_from_form(values)                     # validates, starts, or shows the errors

Every widget keeps its value for the whole session (`persist_state="session"`), so leaving the
Train page and coming back shows the settings as they were left.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st

from vae import jobs
from vae.config import OBJECTIVES, ConfigError, ModelConfig, TrainConfig
from vae.data import DATASETS, DatasetError, load_dataset
from vae.data.status import dataset_status as data_status
from vae.device import DeviceInfo, list_devices
from vae.objectives import check_pair_terms
from vae.ui import data

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
OBJECTIVE_TITLES = {"elbo": "ELBO", "btcvae": "β-TCVAE (total correlation)"}
CLEAR_NAME = "_tr_clear_name"  # session flag: empty the Name field on the next run
KEEP = "session"  # persist_state of every form widget: kept across page switches


# --- what the form offers -------------------------------------------------------------------------
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


def device_options() -> list[DeviceInfo]:
    return list_devices()


def _threads(n: int | None) -> str:
    return "torch's default threads" if not n else f"{n} thread{'s' * (n != 1)}"


def device_label(d: DeviceInfo) -> str:
    """A short option label that never changes ("cpu · 2 threads", "cuda:0"): the select box is
    narrow, and it keeps showing the label it had when picked, so what changes (free memory,
    the runs keeping it busy) goes in `device_note`, under it."""
    if not d.available:
        return f"{d.name} (unavailable)"
    if d.name == "cpu":  # the app's own torch thread count says nothing about a job's
        return f"cpu · {_threads(jobs.default_threads('cpu'))}"
    return d.name


def device_note(d: DeviceInfo, busy: dict[str, list[str]]) -> str:
    """What the chosen device is, in full: its name and memory, why it is unavailable, or which
    runs keep it busy."""
    if not d.available:
        return f"{d.name} is not available here: {d.reason or d.label}."
    note = d.label
    if d.name == "cpu":
        note = f"CPU, {_threads(jobs.default_threads('cpu'))} for training"
    slot = "cuda:0" if d.name == "cuda" else d.name
    names = busy.get(slot)
    if not names:
        return f"{note}."
    try:
        full = len(names) >= jobs.max_jobs_per_device()
    except jobs.JobError:
        full = True
    it = "it" if len(names) == 1 else "one of them"
    then = f"; stop {it} or pick another device to start a new run" if full else ""
    return f"{note}. Busy with {', '.join(names)}{then}."


def suggest_name(dataset: str, arch: str, latent: int, root: Path) -> str:
    base = f"{dataset}-{arch}-z{latent}"
    if not (root / base).exists():
        return base
    i = 2
    while (root / f"{base}-{i}").exists():
        i += 1
    return f"{base}-{i}"


# --- the widgets ----------------------------------------------------------------------------------
def form() -> dict[str, Any]:
    """The new-run widgets, in three columns. Returns the raw values for `parse_form`."""
    v: dict[str, Any] = {}
    c1, c2, c3 = st.columns(3, gap="large")
    with c1:
        _data_column(v)
    with c2:
        _model_column(v)
    with c3:
        _run_column(v)
    return v


def _data_column(v: dict[str, Any]) -> None:
    st.markdown("**Data**")
    v["dataset"] = st.selectbox(
        "Dataset", DATASETS, key="tr_dataset", persist_state=KEEP,
        format_func=lambda n: DATASET_TITLES.get(n, n),
    )  # fmt: skip
    v["data_dir"] = None
    if v["dataset"] in NEEDS_DIR:
        what = "Image folder" if v["dataset"] == "folder" else ".npz file"
        v["data_dir"] = st.text_input(what, key="tr_data_dir", persist_state=KEEP).strip() or None
    v["image_size"] = None
    if v["dataset"] in RESIZABLE:
        v["image_size"] = int(
            st.number_input(
                "Image size (px)", 8, 64, 32, step=4, key="tr_image_size", persist_state=KEEP
            )
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
    v["objective"] = st.selectbox(
        "Objective", OBJECTIVES, key="tr_objective", persist_state=KEEP,
        format_func=lambda o: OBJECTIVE_TITLES.get(o, o),
        help="ELBO: the evidence lower bound (Kingma & Welling 2013). β-TCVAE (Chen et al. "
        "2018, *Isolating Sources of Disentanglement in VAEs*): the ELBO with its KL split into "
        "index-code mutual information, total correlation (TC) and dimension-wise KL, estimated "
        "over each batch by minibatch-weighted sampling; weighting the TC more than 1 pushes the "
        "latent dimensions towards independence (disentanglement).",
    )  # fmt: skip
    v["tc_beta"] = TrainConfig.tc_beta
    if v["objective"] == "btcvae":
        v["tc_beta"] = st.number_input(
            "TC weight (β of β-TCVAE)", 0.0, 100.0, TrainConfig.tc_beta, step=1.0,
            key="tr_tc_beta", persist_state=KEEP,
            help="Weight of the total correlation KL(q(z) || Π_j q(z_j)); 1 is the plain ELBO "
            "(Chen et al. 2018). The mutual information and dimension-wise KL keep weight β.",
        )  # fmt: skip
    v["beta"] = st.number_input(
        "β (weight of the KL term)", 0.0, 100.0, 1.0, step=0.5, key="tr_beta",
        persist_state=KEEP,
        help="1 is the plain VAE (Kingma & Welling 2013); more than 1 is a β-VAE "
        "(Higgins et al. 2017), which trades reconstruction for a more regular latent space. "
        "With β-TCVAE it weights all three parts of the KL (the TC times the TC weight).",
    )  # fmt: skip
    v["warmup_steps"] = int(
        st.number_input(
            "KL warm-up (steps)", 0, 1_000_000, 0, step=100, key="tr_warmup", persist_state=KEEP,
            help="β rises linearly from 0 over this many steps (Bowman et al. 2016), which "
            "helps keep latent dimensions from collapsing early.",
        )
    )  # fmt: skip
    v["free_bits"] = 0.0
    if v["objective"] == "elbo":  # β-TCVAE splits the KL otherwise than per dimension
        v["free_bits"] = st.number_input(
            "Free bits (nats per dimension)", 0.0, 10.0, 0.0, step=0.1, key="tr_free_bits",
            persist_state=KEEP,
            help="KL below this, per latent dimension, is not penalised (Kingma et al. 2016).",
        )  # fmt: skip


def _model_column(v: dict[str, Any]) -> None:
    st.markdown("**Model**")
    v["arch"] = st.segmented_control(
        "Architecture", ["mlp", "conv"], default="mlp", key="tr_arch", persist_state=KEEP,
        format_func=lambda a: {"mlp": "MLP", "conv": "Convolutional"}[a],
    ) or "mlp"  # fmt: skip
    v["latent_dim"] = int(
        st.number_input(
            "Latent size", 2, 128, 2, key="tr_latent", persist_state=KEEP,
            help="2 draws the latent space directly; more dimensions model the data better "
            "and are shown through a projection.",
        )
    )  # fmt: skip
    v["hidden"] = st.text_input(
        "Hidden sizes", placeholder=HIDDEN_DEFAULT[v["arch"]], key="tr_hidden", persist_state=KEEP,
        help="MLP: widths of the hidden layers. Convolutional: channels of each stride-2 "
        "layer. Comma-separated; empty uses the default shown.",
    )  # fmt: skip
    v["likelihood"] = st.selectbox(
        "Decoder likelihood", ["bernoulli", "gaussian"], key="tr_likelihood", persist_state=KEEP,
        help="Bernoulli suits black-and-white images such as digits; Gaussian suits photos.",
    )  # fmt: skip


def _run_column(v: dict[str, Any]) -> None:
    st.markdown("**Run**")
    root = jobs.runs_root()
    suggestion = suggest_name(v["dataset"], v["arch"], v["latent_dim"], root)
    if st.session_state.pop(CLEAR_NAME, False):
        st.session_state["tr_name"] = ""  # the last name was taken by the job just started
    v["name"] = st.text_input(
        "Name", placeholder=suggestion, key="tr_name", persist_state=KEEP,
        help="The run's folder under runs/. Empty uses the name shown.",
    ).strip() or suggestion  # fmt: skip
    a, b = st.columns(2)
    v["epochs"] = int(a.number_input("Epochs", 1, 10_000, 10, key="tr_epochs", persist_state=KEEP))
    v["batch_size"] = int(
        b.number_input("Batch size", 1, 65_536, 128, key="tr_batch", persist_state=KEEP)
    )
    v["lr"] = a.text_input("Learning rate", "1e-3", key="tr_lr", persist_state=KEEP)
    v["seed"] = int(b.number_input("Seed", 0, 2**31 - 1, 0, key="tr_seed", persist_state=KEEP))
    devices = device_options()
    busy: dict[str, list[str]] = {}
    for s in jobs.active_jobs():
        busy.setdefault(s.device, []).append(s.name)
    by_name = {d.name: d for d in devices}
    first_ok = next((d.name for d in devices if d.available and d.name != "cpu"), "cpu")
    if st.session_state.get("tr_device") not in by_name:
        st.session_state["tr_device"] = first_ok
    name = st.selectbox(
        "Device", list(by_name), key="tr_device", persist_state=KEEP,
        format_func=lambda n: device_label(by_name[n]),
    )  # fmt: skip
    st.caption(device_note(by_name[name], busy))
    v["device"] = name
    v["device_ok"] = by_name[name].available
    v["device_reason"] = by_name[name].reason


# --- validation and start -------------------------------------------------------------------------
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
                free_bits=float(v.get("free_bits", 0.0)),
                objective=v.get("objective", "elbo"),
                tc_beta=float(v.get("tc_beta", TrainConfig.tc_beta)),
                seed=v["seed"],
                device=v["device"],
            )
            if cfg.objective == "btcvae" and model_cfg is not None:
                check_pair_terms(cfg.batch_size, model_cfg.latent_dim)
        except ConfigError as e:
            errors.append(f"Training: {e}.")
            cfg = None
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
