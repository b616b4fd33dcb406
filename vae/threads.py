"""One thread policy: how many CPU threads the app, its training jobs and its map fits use.

    app_threads()      # the app process's torch threads (it decodes one z at a time)
    job_threads(slot)  # a training job: every core but one for CPU jobs, torch's default on GPU
    idle_cores()       # map fits (t-SNE): the cores nobody else is using now

Training runs in its own process, so the app's small thread count never slows it, and a CPU
job leaves one core to the app so that the app stays responsive while it trains.
"""

from __future__ import annotations

import os


def cores() -> int:
    return os.cpu_count() or 1


def app_threads() -> int:
    """`$VAE_APP_THREADS`, else half the cores (1 to 4).

    The app decodes one z at a time, where a wide thread pool mostly waits for busy cores: on a
    loaded 2-core machine the 90th percentile of a conv decode was 30-45 ms with 2 threads and
    3-9 ms with 1.
    """
    text = os.environ.get("VAE_APP_THREADS")
    if text and text.isdigit() and int(text) > 0:
        return int(text)
    return min(4, max(1, cores() // 2))


def job_threads(slot: str) -> int | None:
    """CPU jobs leave one core to the app; GPU jobs keep torch's default (None)."""
    return max(1, cores() - 1) if slot == "cpu" else None


def idle_cores() -> int:
    """Threads worth using now: the idle cores by the 1-minute load average, at least 1.

    openTSNE's threads spin-wait: on a 2-core machine busy with other jobs, t-SNE of 10,000
    points took 110 s with 2 threads and 43 s with 1. The map is the same for any count.
    """
    n = cores()
    try:
        load = os.getloadavg()[0]
    except OSError:  # not available on this platform
        return min(n, 2)
    return max(1, min(n, round(n - load)))
