"""One place that turns errors into messages, for the frame (sidebar) and every page.

    guard.run(page.run)                          # the project's own errors: their message
    guard.run(sidebar, "Could not load this model")

`vae.errors.ExplorerError` (bad files, missing data, unusable images, ...) shows its message.
Anything else is a bug: visitors see a short note and an error id, while the traceback goes to
the server log under that id; `VAE_DEV=1` (a local developer mode) also shows it on the page.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable

import streamlit as st
from streamlit.errors import FragmentHandledException

from vae.errors import ExplorerError

log = logging.getLogger("vae.app")


def developer_mode() -> bool:
    return os.environ.get("VAE_DEV", "") not in ("", "0")


def run(fn: Callable[[], object], prefix: str = "") -> None:
    """Call `fn`; show a clear message instead of a traceback when it fails."""
    try:
        fn()
    except ExplorerError as e:
        st.error(f"{prefix}: {e}" if prefix else str(e), icon=":material/block:")
    except FragmentHandledException:
        raise  # a fragment's error, already shown inside the fragment
    except Exception as e:  # noqa: BLE001 - a bug: an id for the report, details in the log
        error_id = uuid.uuid4().hex[:8]
        log.exception("error %s", error_id)
        st.error(
            f"Something went wrong here (error id {error_id}). Try another model or reload the "
            "page; if it keeps happening, please report the error id.",
            icon=":material/bug_report:",
        )
        if developer_mode():
            with st.expander("Details (developer mode)"):
                st.exception(e)
