"""vae.threads: the one thread policy of the app, its jobs and its map fits."""

from __future__ import annotations

import pytest

from vae import jobs, threads
from vae.projection import free_cores


def test_app_threads(monkeypatch):
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 8)
    monkeypatch.delenv("VAE_APP_THREADS", raising=False)
    assert threads.app_threads() == 4
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 2)
    assert threads.app_threads() == 1
    monkeypatch.setenv("VAE_APP_THREADS", "3")
    assert threads.app_threads() == 3
    monkeypatch.setenv("VAE_APP_THREADS", "lots")  # nonsense: the default
    assert threads.app_threads() == 1


def test_job_threads_leave_a_core_to_the_app(monkeypatch):
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 2)
    assert threads.job_threads("cpu") == 1 == jobs.default_threads("cpu")
    assert threads.job_threads("cuda:0") is None


@pytest.mark.parametrize(
    ("busy_ticks", "want"), [(0, 4), (15, 4), (100, 3), (180, 2), (390, 1), (400, 1)]
)
def test_map_fits_use_the_cores_idle_in_proc_stat(monkeypatch, tmp_path, busy_ticks, want):
    """4 cores watched for 100 ticks each (400 in all): `busy_ticks` of them were not idle."""
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 4)
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (4.0, 4.0, 4.0))  # stale: not used
    stat = tmp_path / "stat"
    samples = iter([(1000, 2000, 500), (1000 + busy_ticks // 2, 2000 + busy_ticks // 2,
                    500 + 400 - busy_ticks)])  # fmt: skip
    # user, system, idle; nice/iowait/irq/softirq/steal stay 0

    def fake_times(path=threads.PROC_STAT):
        user, system, idle = next(samples)
        stat.write_text(f"cpu  {user} 0 {system} {idle} 0 0 0 0 0 0\ncpu0 1 2 3 4\n")
        return real(str(stat))

    real = threads.cpu_times
    monkeypatch.setattr(threads, "cpu_times", fake_times)
    monkeypatch.setattr(threads.time, "sleep", lambda s: None)
    assert threads.idle_cores() == want


def test_cpu_times_reads_the_aggregate_line(tmp_path):
    stat = tmp_path / "stat"
    stat.write_text("cpu  10 2 30 400 5 6 7 8 9 10\ncpu0 1 1 1 1\n")
    idle, total = threads.cpu_times(str(stat))
    assert idle == 400 + 5  # idle + iowait
    assert total == 10 + 2 + 30 + 400 + 5 + 6 + 7 + 8  # guest time is already in user
    assert threads.cpu_times(str(tmp_path / "missing")) is None


def test_without_proc_stat_the_load_average_stands_in(monkeypatch):
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 4)
    monkeypatch.setattr(threads, "cpu_times", lambda path=None: None)
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (1.2, 1.2, 1.2))
    assert threads.idle_cores() == 3


def test_running_cpu_jobs_keep_their_cores(monkeypatch):
    from vae.projection import base

    monkeypatch.setattr(threads.os, "cpu_count", lambda: 4)
    monkeypatch.setattr(threads, "busy_cores", lambda window_s=0: 0.0)  # idle for a moment
    monkeypatch.setattr(base, "reserved_cores", lambda: threads.job_threads("cpu"))
    assert free_cores() == 1  # a CPU job holds 3 of the 4 cores
    monkeypatch.setattr(base, "reserved_cores", lambda: 0)
    assert free_cores() == 4
