"""AppTest access to the browser-decoding component (`vae.ui.live`): read what Python sent to a
view, and play the browser's part by sending a released z or a trigger, as its JS would."""

from __future__ import annotations

import json
import uuid
from typing import Any

import numpy as np
from streamlit.proto.WidgetStates_pb2 import WidgetState
from streamlit.testing.v1 import AppTest


def views(at: AppTest, mode: str | None = None) -> list[tuple[Any, dict[str, Any]]]:
    """(element, data) of every mounted live view (carriers, which carry bytes, are skipped)."""
    out = []
    for node in at.get("bidi_component"):
        proto = node.proto
        kind = proto.WhichOneof("data")
        if proto.component_name != "vae_live" or kind not in ("json", "mixed"):
            continue
        data = json.loads(proto.json if kind == "json" else proto.mixed.json)
        if mode is None or data.get("mode") == mode:
            out.append((node, data))
    return out


def carriers(at: AppTest) -> list[bytes]:
    return [
        bytes(n.proto.bytes)
        for n in at.get("bidi_component")
        if n.proto.component_name == "vae_live" and n.proto.WhichOneof("data") == "bytes"
    ]


def panel(at: AppTest) -> dict[str, Any]:
    found = views(at, "panel")
    assert len(found) == 1, f"expected one latent panel, found {len(found)}"
    return found[0][1]


def current_z(at: AppTest) -> np.ndarray:
    """The z Explore shows: the live panel's, or the server-side sliders' (sorted by dim)."""
    found = views(at, "panel")
    if found:
        return np.asarray(found[0][1]["z"], np.float32)
    sl = sorted(
        (s for s in at.slider if s.key and s.key.startswith("zslider:")),
        key=lambda s: int(s.key.rsplit(":", 1)[1]),
    )
    return np.array([s.value for s in sl], np.float32)


def _run_with(at: AppTest, extra: WidgetState) -> AppTest:
    ws = at._tree.get_widget_states()
    ws.widgets.append(extra)
    return at._run(ws)


def send_z(at: AppTest, z, mode: str = "panel") -> AppTest:
    """What the JS does on release: setStateValue('z', {v, seq})."""
    node, _ = views(at, mode)[0]
    value = {"z": {"v": [float(v) for v in z], "seq": uuid.uuid4().hex}}
    return _run_with(at, WidgetState(id=node.proto.id, json_value=json.dumps(value)))


def trigger(at: AppTest, event: str, value: Any, mode: str = "panel") -> AppTest:
    """What the JS does on a button: setTriggerValue(event, value)."""
    from streamlit.runtime.state.session_state import STREAMLIT_INTERNAL_KEY_PREFIX

    node, _ = views(at, mode)[0]
    wid = f"{STREAMLIT_INTERNAL_KEY_PREFIX}_{node.proto.id}__events"
    payload = json.dumps([{"event": event, "value": value}])
    return _run_with(at, WidgetState(id=wid, json_trigger_value=payload))
