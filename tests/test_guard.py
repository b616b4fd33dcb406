"""vae.ui.guard: the project's errors show their message, bugs an error id (details only for
developers), and a broken model in the sidebar does not break the page."""

from __future__ import annotations

import logging

from streamlit.testing.v1 import AppTest


def _script() -> None:
    import os

    from vae.checkpoint import CheckpointError
    from vae.ui import guard

    def bug() -> None:
        raise KeyError("/srv/secret/path")

    def bad_file() -> None:
        raise CheckpointError("model.safetensors is not a safetensors file")

    guard.run(bad_file, "Could not load this model")
    guard.run(bug)
    import streamlit as st

    st.write("after", os.environ.get("VAE_DEV", ""))


def test_errors_become_messages_and_bugs_an_id(monkeypatch, caplog):
    monkeypatch.delenv("VAE_DEV", raising=False)
    at = AppTest.from_function(_script)
    with caplog.at_level(logging.ERROR, logger="vae.app"):
        at.run()
    first, second = (e.value for e in at.error)
    assert first == "Could not load this model: model.safetensors is not a safetensors file"
    assert "error id" in second and "/srv/secret" not in second
    error_id = second.split("error id ")[1].split(")")[0]
    assert any(error_id in r.getMessage() and r.exc_info for r in caplog.records)  # traceback
    assert not at.exception  # no traceback on the page
    assert any(m.value.startswith("after") for m in at.markdown)  # the page went on


def test_developer_mode_shows_the_traceback(monkeypatch):
    monkeypatch.setenv("VAE_DEV", "1")
    at = AppTest.from_function(_script)
    at.run()
    assert len(at.exception) == 1 and "secret" in at.exception[0].value


def test_upload_limits_agree_and_stay_small():
    import tomllib
    from pathlib import Path

    from vae import archive

    cfg = tomllib.loads((Path(__file__).parents[1] / ".streamlit" / "config.toml").read_text())
    assert cfg["server"]["maxUploadSize"] * 1024 * 1024 == archive.MAX_ZIP_BYTES <= 50 << 20
    assert cfg["client"]["showErrorDetails"] == "none"  # no tracebacks for visitors
