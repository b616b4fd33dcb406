"""Finding, describing, loading and adding checkpoints for the app.

A model is named by a *key*: `asset:<name>` (shipped in `assets/`), `run:<name>` (a training run
under `runs/`, or `$VAE_RUNS_DIR`), `upload:<hash>` (a zip uploaded in the app) or `path:<dir>`
(a folder added by path in this session), or `yours:<name>`, the user's own PyTorch model named
on the server's command line (`streamlit run app.py -- --model my_vae.py:build --weights
w.safetensors --data digits`, `vae.adapter`). Only asset, run and upload keys are honoured from
a URL, and a `yours` key only selects the model the command line named, so a link cannot make
the server read an arbitrary folder or run any code.

    entries = discover()                 # ModelEntry list, read from config.json only (and
                                         # the command line's own model, loaded once)
    run = load(entry)                    # vae.checkpoint.Run, cached and shared across sessions
    entry = picker()                     # the sidebar selectbox; remembers the choice in the URL
    run = require_run()                  # for pages: the selected Run, or an st.error + st.stop
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import streamlit as st

from vae import archive, diskcache
from vae.adapter import (  # noqa: F401  (likelihood_missing re-exported for the pages)
    SOURCE,
    AdapterError,
    UserModelSpec,
    UserRun,
    likelihood_missing,
    load_user_model,
)
from vae.checkpoint import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    CheckpointError,
    Run,
    load_run,
    refuse_pickle,
)
from vae.errors import ExplorerError
from vae.record import RecordError, RunRecord, headline, read_metrics
from vae.runjson import os_reason
from vae.ui import state

REPO_ROOT = Path(__file__).resolve().parents[2]
SOURCES = {
    "asset": "shipped",
    "run": "run",
    "upload": "uploaded",
    "path": "added",
    "yours": "yours",  # the user's own PyTorch model, from the command line (vae.adapter)
}
MAX_ZIP_BYTES = archive.MAX_ZIP_BYTES  # compressed upload
MAX_UNZIPPED_BYTES = archive.MAX_UNZIPPED_BYTES  # sum of the members we extract
ADDED_KEY = "_added_models"  # session: list of model keys added by path or upload
CURRENT_KEY = "_model_entry"  # session: the ModelEntry the picker chose in this run


# --- where models live ----------------------------------------------------------------------------
def assets_dir() -> Path:
    """Shipped checkpoints; `$VAE_ASSETS_DIR` overrides (tests point it at a temp folder)."""
    return Path(os.environ.get("VAE_ASSETS_DIR") or REPO_ROOT / "assets")


def runs_dir() -> Path:
    return Path(os.environ.get("VAE_RUNS_DIR") or "runs")


def user_dir() -> Path:
    """Per-user folder for caches and uploaded models (`$VAE_CACHE_DIR` overrides)."""
    return diskcache.user_dir()


# --- shared deployments (VAE_PUBLIC=1) -----------------------------------------------------------
PUBLIC_ENV = "VAE_PUBLIC"
SESSION_UPLOADS = 5  # models one visitor may upload on a shared deployment ...
SESSION_UPLOAD_BYTES = 50 * 1024 * 1024  # ... and their unzipped size together
SESSION_MAX_AGE_S = 24 * 3600  # a visitor's uploads are removed a day after the last one


def public_mode() -> bool:
    """A shared deployment: no folder paths, no training, uploads kept per session with a quota.
    Turned on with `VAE_PUBLIC=1` (README, "Security and reliability")."""
    return os.environ.get(PUBLIC_ENV, "").strip().lower() not in ("", "0", "false", "no")


def _session_token() -> str:
    return st.session_state.setdefault("_upload_session", uuid.uuid4().hex[:16])


def uploads_dir() -> Path:
    """Uploaded models: shared by everyone on a local app, one folder per visitor when public."""
    root = user_dir() / "uploads"
    return root / "sessions" / _session_token() if public_mode() else root


def _tree_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def check_upload_quota(data: bytes) -> None:
    """On a shared deployment, refuse an upload beyond this visitor's quota; also remove other
    visitors' uploads older than a day."""
    if not public_mode():
        return
    sessions = user_dir() / "uploads" / "sessions"
    now = time.time()
    for old in sessions.iterdir() if sessions.is_dir() else []:
        try:
            if old.name != _session_token() and now - old.stat().st_mtime > SESSION_MAX_AGE_S:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:
            continue
    mine = uploads_dir()
    have = [p for p in mine.iterdir() if p.is_dir()] if mine.is_dir() else []
    if hashlib.sha256(data).hexdigest()[:16] in {p.name for p in have}:
        return  # the same zip again: nothing new is stored
    if len(have) >= SESSION_UPLOADS:
        raise CheckpointError(
            f"this shared deployment keeps at most {SESSION_UPLOADS} uploaded models per visitor; "
            "reload the page to start a new session"
        )
    used = sum(_tree_bytes(p) for p in have)
    if used + len(data) > SESSION_UPLOAD_BYTES:
        raise CheckpointError(
            f"this shared deployment keeps at most {SESSION_UPLOAD_BYTES >> 20} MB of uploaded "
            f"models per visitor ({used / 2**20:.1f} MB used)"
        )


# --- describing ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelEntry:
    key: str
    path: Path
    source: str  # asset | run | upload | path
    name: str
    dataset: str
    latent_dim: int
    arch: str
    score: str  # "NLL 85.4" (estimated) or "NLL ≤ 95.1" (from the test ELBO); "" without metrics
    score_long: str = ""  # e.g. "NLL 85.4 nats (lower is better)"

    @property
    def label(self) -> str:
        """Short enough for the sidebar, e.g. "digits-mlp · z8 · NLL ≤ 24.7" (non-shipped ones
        say where from); the dataset and architecture are in the caption under the picker."""
        parts = [self.name, f"z{self.latent_dim}"]
        if self.score:
            parts.append(self.score)
        where = "" if self.source == "asset" else f"{SOURCES[self.source]}: "
        return where + " · ".join(parts)


def metric_summary(metrics: dict[str, Any]) -> str:
    """The headline number of a metrics.json as one comparable figure, lower is better
    ('NLL 85.4', or 'NLL ≤ 24.2' from an ELBO), by `vae.record.headline`."""
    head = headline(metrics)
    return head.nll() if head else ""


def metric_long(metrics: dict[str, Any]) -> str:
    head = headline(metrics)
    if head is None:
        return ""
    how = head.source if head.lower_is_better else "bounded by the test ELBO"
    return f"{head.nll()} nats ({how}; lower is better)"


def describe(path: Path, source: str, key: str | None = None) -> ModelEntry:
    """Read config.json and metrics.json of a run folder, every field checked
    (`vae.record.RunRecord`); raises RecordError (an ExplorerError) naming the file and field."""
    rec = RunRecord.read(path)
    name = path.name if source != "upload" else f"upload {path.name[:8]}"
    return ModelEntry(
        key=key or f"{source}:{path.name if source in ('asset', 'run', 'upload') else path}",
        path=path,
        source=source,
        name=name,
        dataset=str(rec.dataset.get("name") or "?"),
        latent_dim=rec.model.latent_dim,
        arch=rec.model.arch,
        score=metric_summary(rec.metrics),
        score_long=metric_long(rec.metrics),
    )


def _scan(root: Path, source: str) -> list[tuple[Path, str]]:
    """The folders of `root` that hold a config.json entry of any kind (a folder or a broken
    link there too, so that `discover` can say why it skips them); hidden ones are not runs."""
    try:
        if not root.is_dir():
            return []
        subs = sorted(p for p in root.iterdir() if not p.name.startswith("."))
    except OSError:
        return []
    return [(p, source) for p in subs if os.path.lexists(p / CONFIG_FILE)]


def _where(path: Path, source: str) -> str:
    """How a skipped folder is named to the visitor: never the server's path to it."""
    if source == "upload":
        return f"uploaded model {path.name[:8]}"
    if source == "path":
        return str(path)  # typed by this user (never on a shared deployment)
    return f"{SOURCES[source]} model {path.name!r}"


_MARKDOWN = str.maketrans({c: "\\" + c for c in "\\`*_[]()$~"})


def plain(text: str) -> str:
    """`text` with Markdown's special characters escaped: a hostile file's values, quoted in a
    warning every visitor sees, show as written (never as a link or formatting)."""
    return text.translate(_MARKDOWN)


def _describe_or_why(path: Path, source: str, key: str | None = None) -> ModelEntry | str:
    """`describe`, or why the folder is skipped (a message naming it): a broken entry never
    breaks the picker."""
    try:
        return describe(path, source, key)
    except ExplorerError as e:
        why = str(e)
    except OSError as e:
        why = f"it cannot be read ({os_reason(e)})"
    return f"{_where(path, source)}: {why}"


def discover(extra_keys: list[str] | None = None) -> tuple[list[ModelEntry], list[str]]:
    """All models the app can offer, and one message per folder that could not be read (which
    folder, and why).

    Reads only config.json/metrics.json, so it is fast enough to run on every page load.
    """
    found = _scan(assets_dir(), "asset") + _scan(runs_dir(), "run") + _scan(uploads_dir(), "upload")
    entries, problems = [], []
    for path, source in found:
        got = _describe_or_why(path, source)
        (entries if isinstance(got, ModelEntry) else problems).append(got)
    for key in [] if public_mode() else extra_keys or []:
        if key.startswith("path:") and key not in {e.key for e in entries}:
            got = _describe_or_why(Path(key.removeprefix("path:")), "path", key)
            (entries if isinstance(got, ModelEntry) else problems).append(got)
    yours = user_entry()
    return ([yours] if yours else []) + entries, problems


def default_entry(entries: list[ModelEntry]) -> ModelEntry | None:
    """The user's own model when the command line names one; else mnist-conv when it and MNIST
    are available, else digits-mlp, else the first model."""
    by_key = {e.key: e for e in entries}
    yours = next((e for e in entries if e.source == "yours"), None)
    if yours is not None:
        return yours
    if "asset:mnist-conv" in by_key:
        from vae.data.status import dataset_status

        if dataset_status("mnist").get("available"):
            return by_key["asset:mnist-conv"]
    return by_key.get("asset:digits-mlp") or (entries[0] if entries else None)


# --- loading --------------------------------------------------------------------------------------
def device_name() -> str:
    """The device models run on: `$VAE_DEVICE`, default auto (cuda, then mps, then cpu)."""
    from vae.device import resolve_device

    return str(resolve_device(os.environ.get("VAE_DEVICE", "auto")))


def stamp(path: Path) -> tuple[int, int]:
    """(mtime_ns, size) of the weights: a retrained run gets a fresh cache entry."""
    s = (path / WEIGHTS_FILE).stat()
    return s.st_mtime_ns, s.st_size


@st.cache_resource(show_spinner="Loading the model…", max_entries=8)
def _load(path: str, version: tuple[int, int], device: str, confined: bool = False) -> Run:
    return load_run(path, device=device, confined=confined or None)


def is_upload(path: Path) -> bool:
    """Whether `path` lies in the uploads folder (any visitor's): such a run may read data only
    from inside its own folder, whatever its config says (its origin.json says so too)."""
    root = os.path.realpath(user_dir() / "uploads")
    return os.path.commonpath([root, os.path.realpath(path)]) == root


def load(entry: ModelEntry | Path) -> Run:
    """The loaded Run (eval mode, shared read-only across sessions). Raises CheckpointError."""
    path = entry.path if isinstance(entry, ModelEntry) else Path(entry)
    if _user["spec"] is not None and path.parent == user_dir() / SOURCE:
        return load_user()  # the folder of the command line's model (vae.adapter.prepare_folder)
    try:
        st_ = stamp(path)
    except OSError:
        refuse_pickle(path)  # a folder holding only a .pt: say why, and how to convert it
        raise CheckpointError(f"the model folder has no readable {WEIGHTS_FILE}") from None
    return _load_keyed(str(path), st_)


def _load_keyed(path: str, st_: tuple[int, int]) -> Run:
    return _load(path, st_, device_name(), is_upload(Path(path)))


# --- your own model, named on the server's command line -----------------------------------------
_user: dict[str, Any] = {"argv": None, "spec": None, "error": "", "failed": None}


def configure_user_model(argv: list[str]) -> None:
    """Take `--model FILE.py[:NAME] --weights FILE --data NAME[:PATH]` from the server's command
    line (what follows `--` in `streamlit run app.py -- ...`; app.py passes sys.argv). Code is
    run only from the file named there: nothing on a page, in an upload or in a link names
    one. A problem is kept for `user_problem`, shown in the sidebar."""
    argv = [str(a) for a in argv]
    if _user["argv"] == argv:
        return
    _user.update(argv=argv, spec=None, error="", failed=None)
    if not argv:
        return
    p = argparse.ArgumentParser(prog="app.py", add_help=False, exit_on_error=False)
    for flag in ("--model", "--weights", "--data"):
        p.add_argument(flag)
    try:
        args, extra = p.parse_known_args(argv)
    except (argparse.ArgumentError, SystemExit) as e:
        _user["error"] = f"the command line after -- cannot be read: {e}"
        return
    if extra:
        _user["error"] = (
            f"the command line after -- has arguments the app does not know: {' '.join(extra)} "
            "(it takes --model FILE.py[:NAME] --weights FILE --data NAME[:PATH])"
        )
        return
    if not args.model:
        if args.weights or args.data:
            _user["error"] = "--weights and --data go with --model FILE.py[:NAME]"
        return
    try:
        spec = UserModelSpec.parse(args.model, args.weights, args.data)
        _user["spec"] = spec
    except (AdapterError, OSError) as e:
        _user["error"] = str(e)


def user_spec() -> UserModelSpec | None:
    return _user["spec"]


def user_problem() -> str:
    """Why the command line's model cannot be offered ("" when it can, or when there is none)."""
    if _user["error"] or _user["spec"] is None:
        return _user["error"]
    try:
        load_user()
    except AdapterError as e:
        return str(e)
    return ""


@st.cache_resource(show_spinner="Loading your model…", max_entries=2)
def _load_user(key: str, stamps: tuple[int, ...], device: str) -> UserRun:
    return load_user_model(_user["spec"], device=device)


def load_user() -> UserRun:
    """The command line's model, loaded once per version of its file and weights and shared
    across sessions. Raises AdapterError (a CheckpointError)."""
    spec = _user["spec"]
    if spec is None:
        raise AdapterError("no model was named on the command line (--model)")
    try:
        stamps = spec.stamps()
    except OSError as e:
        raise AdapterError(f"{spec.file.name} or its weights cannot be read: {e}") from None
    version = (spec.key, stamps, device_name())
    failed = _user.get("failed")
    if failed and failed[0] == version:  # the same files failed before: not imported again
        raise AdapterError(failed[1])
    try:
        return _load_user(*version)
    except AdapterError as e:
        _user["failed"] = (version, str(e))
        raise


def user_entry() -> ModelEntry | None:
    """The picker's entry of the command line's model, or None when there is none or it cannot
    be loaded (`user_problem` says why)."""
    spec = _user["spec"]
    if spec is None:
        return None
    try:
        run = load_user()
    except AdapterError:
        return None
    try:
        metrics = read_metrics(run.path)  # `python -m vae.evaluate --model ... --save`
    except RecordError:
        metrics = {}
    return ModelEntry(
        key=f"yours:{spec.name}",
        path=run.path,
        source="yours",
        name=spec.name,
        dataset=str(run.dataset.get("name") or "?"),
        latent_dim=run.config.latent_dim,
        arch=run.config.arch,
        score=metric_summary(metrics),
        score_long=metric_long(metrics),
    )


def cli_target(run: Run) -> str:
    """What names `run` on the command line of `python -m vae.evaluate` and `vae.encode`: its
    folder, or a user model's `--model ... --weights ... --data ...`."""
    return run.command_args() if isinstance(run, UserRun) else str(run.path)


def run_id(run: Run) -> str:
    """A short content hash of the weights: the identity used by the disk caches (the CLIs'
    too: `vae.diskcache.run_id`)."""
    return diskcache.run_id(run.path)


# --- adding ---------------------------------------------------------------------------------------
def add_path(text: str) -> ModelEntry:
    """Validate a checkpoint folder typed by the user and remember it for this session."""
    if public_mode():
        raise CheckpointError("adding a folder by its path is turned off on this shared deployment")
    path = Path(text.strip()).expanduser()
    if not text.strip():
        raise CheckpointError("type the path of a folder holding config.json and model.safetensors")
    path = path.resolve()
    refuse_pickle(path)  # a .pt typed instead of its folder, or a folder holding only one
    if not path.is_dir():
        raise CheckpointError(f"{path} is not a folder")
    load(path)  # full validation: safetensors, shapes, finite values
    entry = describe(path, "path", f"path:{path}")
    _remember(entry.key)
    return entry


def extract_zip(data: bytes, dest_root: Path | None = None) -> Path:
    """Unpack an uploaded checkpoint zip safely and return its folder (`<uploads>/<sha16>`).

    The checks live in `vae.archive`: only config.json, model.safetensors and metrics files are
    taken, from the top level or one folder deep; names are never used as paths, so `../` tricks
    cannot escape. Symlinks, pickle files, other kinds of file, and archives over the size limits
    are refused with a clear message; the run is loaded once before it becomes visible.
    """
    archive.check_zip(data, max_zip_bytes=MAX_ZIP_BYTES, max_unzipped_bytes=MAX_UNZIPPED_BYTES)
    dest_root = dest_root or uploads_dir()
    final = dest_root / hashlib.sha256(data).hexdigest()[:16]
    if (final / CONFIG_FILE).exists() and (final / WEIGHTS_FILE).exists():
        return final
    try:
        return archive.extract_zip(
            data,
            final,
            max_zip_bytes=MAX_ZIP_BYTES,
            max_unzipped_bytes=MAX_UNZIPPED_BYTES,
            origin="upload",
        )
    except CheckpointError:
        if (final / CONFIG_FILE).exists():  # another session unpacked the same zip just now
            return final
        raise


MAX_UPLOADS_BYTES = 1024**3  # all uploaded models together; the oldest go beyond this


def bound_uploads(keep: Path, max_bytes: int = MAX_UPLOADS_BYTES) -> list[Path]:
    """Remove the oldest uploaded models (whole folders, never `keep`) beyond `max_bytes`."""
    root = user_dir() / "uploads"
    folders = []
    for p in root.rglob(CONFIG_FILE) if root.is_dir() else []:
        d = p.parent
        if d.resolve() != keep.resolve():
            folders.append((d.stat().st_mtime, _tree_bytes(d), d))
    total = _tree_bytes(keep) + sum(size for _, size, _ in folders)
    removed = []
    for _, size, d in sorted(folders):
        if total <= max_bytes:
            break
        shutil.rmtree(d, ignore_errors=True)
        total -= size
        removed.append(d)
    return removed


def add_zip(data: bytes) -> ModelEntry:
    check_upload_quota(data)
    folder = extract_zip(data)
    bound_uploads(folder)
    entry = describe(folder, "upload")
    _remember(entry.key)
    return entry


def _remember(key: str) -> None:
    added = st.session_state.setdefault(ADDED_KEY, [])
    if key not in added:
        added.append(key)
    state.request_model(key)


# --- widgets --------------------------------------------------------------------------------------
def picker() -> ModelEntry | None:
    """The sidebar model selectbox. Returns the chosen entry (None when there are no models)."""
    entries, problems = discover(st.session_state.get(ADDED_KEY, []))
    mine = user_problem()
    if mine:
        st.sidebar.error(f"Could not open your model: {plain(mine)}", icon=":material/code_off:")
    for msg in problems:
        st.sidebar.warning(f"Skipped a model folder: {plain(msg)}", icon=":material/warning:")
    if not entries:
        st.sidebar.error(
            "No models found. Train one with `python -m vae.train --dataset digits --out "
            "runs/my-first-vae`, or add a checkpoint folder below."
        )
        return None
    keys = [e.key for e in entries]
    state.apply_pending_model()
    wanted = st.session_state.get(state.MODEL)
    if wanted not in keys:
        if wanted:  # a link's (or a removed run's) model: said until the user leaves the page
            state.link_notice(
                f"Model {state.quote_value(wanted)} is not available here, so the default model is "
                "shown. Pick one in the sidebar."
            )
        default = default_entry(entries)
        st.session_state[state.MODEL] = default.key if default else keys[0]
    by_key = {e.key: e for e in entries}
    key = st.sidebar.selectbox(
        "Model",
        keys,
        key=state.MODEL,
        format_func=lambda k: by_key[k].label,
        help="Shipped models, your training runs (runs/) and models added below. Each shows its "
        "latent size and one figure to compare them by: the test negative log-likelihood in nats "
        "(lower is better), estimated with IWAE when the model was evaluated, otherwise bounded "
        "by its test ELBO (NLL ≤ −ELBO).",
    )
    st.session_state[CURRENT_KEY] = by_key[key]
    return by_key[key]


def add_model_panel() -> None:
    """Sidebar expander to add a checkpoint by folder path or by uploading a zip."""
    with st.sidebar.expander("Add a model"):
        if public_mode():
            st.caption(
                f"Shared deployment: upload up to {SESSION_UPLOADS} zips "
                f"({SESSION_UPLOAD_BYTES >> 20} MB); only you see them, for this session."
            )
        else:
            with st.form("add_path", clear_on_submit=False, border=False):
                text = st.text_input("Checkpoint folder", placeholder="/path/to/run")
                if st.form_submit_button("Add folder"):
                    try:
                        entry = add_path(text)
                        st.success(f"Added {entry.name}.")
                        st.rerun()
                    except ExplorerError as e:
                        st.error(str(e))
        up = st.file_uploader(
            "…or upload a zip (config.json + model.safetensors)", type=["zip"], key="add_zip"
        )
        if up is not None and st.session_state.get("_added_zip") != up.file_id:
            try:
                entry = add_zip(up.getvalue())
                st.session_state["_added_zip"] = up.file_id
                st.success(f"Added {entry.name}.")
                st.rerun()
            except ExplorerError as e:
                st.error(str(e))


def require_run() -> Run:
    """The selected model's Run for a page; shows a clear error and stops the page otherwise."""
    entry = st.session_state.get(CURRENT_KEY)
    if entry is None:
        st.info("Pick or add a model in the sidebar to start.", icon=":material/arrow_back:")
        st.stop()
    try:
        return load(entry)
    except CheckpointError as e:
        st.error(f"Could not load {entry.name}: {e}", icon=":material/block:")
        st.caption("Pick another model in the sidebar, or retrain this one.")
        st.stop()
