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


@pytest.mark.parametrize(("load", "want"), [(0.0, 4), (1.2, 3), (3.9, 1), (9.0, 1)])
def test_map_fits_use_the_idle_cores(monkeypatch, load, want):
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 4)
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (load, load, load))
    assert threads.idle_cores() == want == free_cores()
