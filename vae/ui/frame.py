"""Every page runs inside app.py's frame: navigation, model picker, dataset, device.

Streamlit treats pages/ as a legacy (v1) page folder until the first `st.navigation` call of the
server's life. So when the very first request a fresh server gets is a deep link such as
/encode, Streamlit runs pages/encode.py alone, without the frame. `ensure()`, the first
Streamlit call of each page, notices that: it runs app.py in its place, which resolves the same
url path to the same page and runs it inside the frame, and then ends the lone run.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import streamlit as st

APP = Path(__file__).resolve().parents[2] / "app.py"
_local = threading.local()  # Streamlit runs each session's script on its own thread


@contextmanager
def framed() -> Iterator[None]:
    """app.py runs the page inside this."""
    _local.depth = getattr(_local, "depth", 0) + 1
    try:
        yield
    finally:
        _local.depth -= 1


def inside() -> bool:
    return getattr(_local, "depth", 0) > 0


def ensure() -> None:
    """Run the frame (and this page inside it) when Streamlit ran this page script alone."""
    if inside():
        return
    # exec, not runpy.run_path: that would set sys.argv[0] to app.py, which app.py reads as
    # "run by `streamlit run app.py`" before taking the rest of sys.argv for its own flags
    code = compile(APP.read_text(encoding="utf-8"), str(APP), "exec")
    exec(code, {"__name__": "__main__", "__file__": str(APP)})  # noqa: S102 - our own app.py
    st.stop()
