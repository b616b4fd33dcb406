"""Training in the app: the Explore page stays responsive while a CPU job trains, and a job shows
its first progress soon after the click.

    VAE_DATA_DIR=/work/shared/data python3 benchmarks/jobs_bench.py [--presses 15] [--starts 3]

Starts `streamlit run app.py` on a free port with temporary models/runs/cache folders (a small
digits checkpoint for Explore) and drives headless Chromium:

1. idle: on Explore (browser decoding off, `VAE_LIVE_DECODER=0`, so every press is a server
   round trip), press → on the first latent slider `--presses` times and time each press
   until the decoded image changes (median);
2. busy: the same while a CPU training job runs, started through `vae.jobs.start` exactly as
   the Train page does (threads = cores - 1, niced to 10 once it trains, with its autogroup). The
   job is MNIST (784-400-20 MLP) when `VAE_DATA_DIR` holds it, else digits with a 512-512 MLP;
3. start: on the Train page, click "Start training" and time until the progress bar first
   shows "Epoch 1 of E · step N of M" (the trainer's first status.json), `--starts` times.

Targets: busy / idle slider latency <= 2; click-to-first-progress <= 5 s (median).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, start_app, stop_app, wait_healthy  # noqa: E402
from tests.e2e.helpers import free_port, tiny_digits_checkpoint  # noqa: E402
from vae import jobs  # noqa: E402
from vae.config import ModelConfig, TrainConfig  # noqa: E402

DECODED = 'img[alt="decoded z"]'
SLIDER = '[data-testid="stSlider"]:has-text("· KL")'
PROGRESS = '[data-testid="stProgress"]'
RUNNING = re.compile(r"^Epoch [\d,]+ of [\d,]+ · step")  # stopped and finished runs say so first


def wait_idle(page, timeout: float = 60_000) -> None:
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=timeout
    )


def open_page(page, url: str, link: str, ready: str) -> None:
    page.goto(url)  # then the sidebar link: a deep link on a fresh server says "Page not found"
    page.get_by_role("link", name=link, exact=True).click()
    page.wait_for_selector(ready, timeout=120_000)
    wait_idle(page)


def slider_latencies(page, n: int) -> list[float]:
    """Seconds from a key press on the first latent slider to a new decoded image."""
    thumb = page.locator(SLIDER).first.locator('input[type="range"]')
    out = []
    for i in range(n):
        before = page.locator(DECODED).get_attribute("src")
        thumb.focus()
        t0 = time.perf_counter()
        page.keyboard.press("ArrowRight" if i % 2 == 0 else "ArrowLeft")
        page.wait_for_function(
            "(old) => { const i = document.querySelector('img[alt=\"decoded z\"]');"
            " return i && i.src !== old; }",
            arg=before,
            timeout=30_000,
        )
        out.append(time.perf_counter() - t0)
        wait_idle(page)
        time.sleep(0.3)
    return out


def busy_job(runs: Path) -> str:
    """Start a CPU job that trains for minutes, as the Train page would."""
    from vae.data.status import dataset_status

    if dataset_status("mnist").get("available"):
        m = ModelConfig(image_shape=(1, 28, 28), latent_dim=20, hidden=(400,))
        c = TrainConfig(dataset="mnist", epochs=50, batch_size=128, device="cpu")
    else:
        m = ModelConfig(image_shape=(1, 8, 8), latent_dim=8, hidden=(512, 512))
        c = TrainConfig(dataset="digits", epochs=5000, batch_size=64, device="cpu")
    jobs.start("bench-busy", m, c, runs)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        s = jobs.job_status(runs / "bench-busy")
        if s.state == "running" and s.step > 0:
            return f"{c.dataset} {m.arch} {m.hidden}, {s.total_steps:,} steps"
        if not s.active:
            raise RuntimeError(f"the busy job ended: {s.state} {s.message}")
        time.sleep(0.2)
    raise RuntimeError("the busy job did not start within 120 s")


def stop_and_wait(runs: Path, name: str) -> None:
    if jobs.job_status(runs / name).active:
        jobs.stop(name, runs)
    while jobs.job_status(runs / name).active:
        time.sleep(0.2)


def start_latencies(page, runs: Path, n: int) -> tuple[list[float], list[float]]:
    """(click -> first progress on screen, click -> training process spawned), seconds."""
    import json

    total, spawn = [], []
    for i in range(n):
        name = f"bench-start-{i}"
        box = page.get_by_role("textbox", name="Name", exact=True)
        box.fill(name)
        box.press("Enter")
        wait_idle(page)
        t0, wall0 = time.perf_counter(), time.time()
        page.get_by_role("button", name="Start training").click()
        page.locator(PROGRESS).get_by_text(RUNNING).wait_for(timeout=120_000)
        total.append(time.perf_counter() - t0)
        spawn.append(json.loads((runs / name / jobs.JOB_FILE).read_text())["started"] - wall0)
        stop_and_wait(runs, name)
        page.locator(PROGRESS).get_by_text(re.compile("^Stopped")).wait_for(timeout=30_000)
        wait_idle(page)
    return total, spawn


def startup_cpu_seconds(tmp: Path) -> float:
    """CPU time (user + sys) of a trainer process up to its first step: its wall time on an
    idle core. Mostly imports (torch, torch._dynamo via the optimiser, scikit-learn)."""
    import resource
    import subprocess

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(
        [sys.executable, "-m", "vae.train", "--dataset", "digits", "--hidden", "16",
         "--latent-dim", "2", "--threads", "1", "--max-steps", "1", "--no-progress",
         "--out", str(tmp / "startup")],
        cwd=ROOT, check=True, capture_output=True,
    )  # fmt: skip
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def measure(browser, url: str, runs: Path, presses: int, starts: int) -> tuple[list, str]:
    rows: list[tuple[str, str, str, str]] = []
    explore = browser.new_context(viewport={"width": 1440, "height": 1000}).new_page()
    open_page(explore, url, "Explore", DECODED)
    explore.wait_for_selector(SLIDER, timeout=60_000)
    slider_latencies(explore, 3)  # warm-up
    idle = statistics.median(slider_latencies(explore, presses))
    what = busy_job(runs)
    try:
        busy = statistics.median(slider_latencies(explore, presses))
    finally:
        stop_and_wait(runs, "bench-busy")
    ratio = busy / idle
    rows.append(("Explore slider → image, idle (median)", f"{idle * 1000:.0f} ms", "", ""))
    rows.append(("… while a CPU job trains (median)", f"{busy * 1000:.0f} ms", "", ""))
    rows.append(("busy / idle", f"{ratio:.2f}", "<= 2", "PASS" if ratio <= 2 else "FAIL"))

    train = browser.new_context(viewport={"width": 1440, "height": 1400}).new_page()
    open_page(train, url, "Train", "text=Start training")
    epochs = train.get_by_role("spinbutton", name="Epochs", exact=True)
    epochs.fill("1000")  # long enough that the first poll still finds it training
    epochs.press("Enter")
    wait_idle(train)
    times, spawn = start_latencies(train, runs, starts)
    med = statistics.median(times)
    ok = "PASS" if med <= 5 else "FAIL"
    rows.append(("click → first progress (median)", f"{med:.2f} s", "<= 5 s", ok))
    rows.append(("… each", ", ".join(f"{t:.1f}" for t in times) + " s", "", ""))
    rows.append(("… of which click → process spawned", f"{statistics.median(spawn):.2f} s", "", ""))
    cpu = startup_cpu_seconds(runs.parent)
    rows.append(("trainer start-up CPU time (wall on an idle core)", f"{cpu:.2f} s", "", ""))
    return rows, what


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--presses", type=int, default=15)
    ap.add_argument("--starts", type=int, default=3)
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="jobs-bench-"))
    dirs = {"assets": tmp / "assets", "runs": tmp / "runs", "cache": tmp / "cache", "root": tmp}
    tiny_digits_checkpoint(dirs["assets"] / "digits-mlp", latent_dim=8, steps=150)
    dirs["runs"].mkdir()
    port = free_port()
    # the server-side slider panel: this measures the app process's decode under training load
    proc = start_app(dirs, port, VAE_LIVE_DECODER="0")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc, timeout=120)
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
            )
            try:
                rows, what = measure(browser, url, dirs["runs"], args.presses, args.starts)
            except Exception:
                (ROOT / "test-artifacts").mkdir(exist_ok=True)
                for i, ctx in enumerate(browser.contexts):
                    for j, pg in enumerate(ctx.pages):
                        pg.screenshot(path=str(ROOT / "test-artifacts" / f"jobs-bench-{i}{j}.png"))
                raise
            finally:
                browser.close()
    finally:
        for s in jobs.active_jobs(dirs["runs"]):
            stop_and_wait(dirs["runs"], s.name)
        stop_app(proc)
    load = os.getloadavg()
    print(f"busy job: {what}; {os.cpu_count()} cores; load average {load[0]:.1f}, {load[1]:.1f}")
    width = max(len(r[0]) for r in rows)
    print(f"{'figure':<{width}}  {'value':>12}  {'target':>7}  result")
    for name, value, target, ok in rows:
        print(f"{name:<{width}}  {value:>12}  {target:>7}  {ok}")
    return 0 if all(r[3] != "FAIL" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
