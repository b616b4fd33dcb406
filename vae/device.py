"""Pick and describe compute devices (cuda, then mps, then cpu)."""

from __future__ import annotations

from dataclasses import dataclass

import torch


def resolve_device(name: str = "auto") -> torch.device:
    """`auto` prefers cuda, then mps, then cpu. An unavailable explicit choice is a clear error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ValueError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} asked for, but this machine has no CUDA GPU")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"{name!r}: only {torch.cuda.device_count()} CUDA device(s) present")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device 'mps' asked for, but Apple MPS is not available here")
    return dev


@dataclass
class DeviceInfo:
    name: str  # what to pass as --device
    label: str  # what a person reads
    available: bool
    reason: str = ""


def list_devices() -> list[DeviceInfo]:
    """Every device choice with a human label; unavailable ones say why."""
    out: list[DeviceInfo] = []
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            free, total = torch.cuda.mem_get_info(i)
            label = f"cuda:{i} — {torch.cuda.get_device_name(i)}, {free / 2**30:.1f} GiB free"
            out.append(DeviceInfo(f"cuda:{i}", label, True))
    else:
        out.append(DeviceInfo("cuda", "cuda — no NVIDIA GPU found", False, "no CUDA device"))
    mps = torch.backends.mps.is_available()
    out.append(
        DeviceInfo(
            "mps",
            "mps — Apple GPU" if mps else "mps — not available",
            mps,
            "" if mps else "not an Apple-silicon Mac",
        )
    )
    out.append(DeviceInfo("cpu", f"cpu — {torch.get_num_threads()} threads", True))
    return out
