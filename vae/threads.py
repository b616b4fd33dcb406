"""One thread policy: how many CPU threads the app, its training jobs and its map fits use.

    app_threads()      # the app process's torch threads (it decodes one z at a time)
    job_threads(slot)  # a training job: every core but one for CPU jobs, torch's default on GPU
    idle_cores()       # map fits (t-SNE): the cores nobody else is using now (/proc/stat)

Training runs in its own process, so the app's small thread count never slows it, and a CPU
job leaves one core to the app so that the app stays responsive while it trains.
"""

from __future__ import annotations

import math
import os
import time


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


PROC_STAT = "/proc/stat"
WINDOW_S = 0.2  # how long idle_cores() watches the CPUs


def cpu_times(path: str = PROC_STAT) -> tuple[float, float] | None:
    """(idle, total) CPU time of all cores together since boot, in clock ticks, from the `cpu`
    line of /proc/stat (Linux); None where there is no such file."""
    try:
        with open(path, encoding="ascii") as f:
            fields = f.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu" or len(fields) < 5:
        return None
    ticks = [float(v) for v in fields[1:9]]  # user nice system idle iowait irq softirq steal
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0.0)
    return idle, sum(ticks)


def busy_cores(window_s: float = WINDOW_S) -> float | None:
    """How many cores were busy during the last `window_s` seconds (0..cores()), measured from
    /proc/stat; None where it cannot be read. Nice'd work, such as a training job, counts."""
    a = cpu_times()
    if a is None:
        return None
    time.sleep(window_s)
    b = cpu_times()
    if b is None or b[1] <= a[1]:
        return None
    idle_share = (b[0] - a[0]) / (b[1] - a[1])
    return cores() * min(1.0, max(0.0, 1.0 - idle_share))


def idle_cores(reserved: int = 0, window_s: float = WINDOW_S) -> int:
    """Threads worth using now: the cores that are really idle, at least 1.

    Measured over a short window from /proc/stat rather than the 1-minute load average, which
    lags by a minute (a finished command still reads as a busy core). `reserved` cores (those of
    this app's running CPU training jobs) are left alone even when they look idle for a moment.
    Without /proc/stat the load average stands in.

    openTSNE's threads spin-wait: on a 2-core machine busy with other jobs, t-SNE of 10,000
    points took 110 s with 2 threads and 43 s with 1. The map is the same for any count.
    """
    n = cores()
    busy = busy_cores(window_s)
    if busy is None:
        try:
            busy = os.getloadavg()[0]
        except OSError:  # not available on this platform
            return max(1, min(n - reserved, 2))
    # a core counts as idle when at most a fifth of it is in use (the sampler's own wake-ups)
    free = math.floor(n - busy + 0.2)
    return max(1, min(n - reserved, free))
