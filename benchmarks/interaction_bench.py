"""How fast does the explorer feel? Cold start and slider latency, in headless Chromium.

    python benchmarks/interaction_bench.py                 # the app's default model
    python benchmarks/interaction_bench.py --model assets/digits-mlp --presses 15

Measures, for `app.py` and for the naive baseline `benchmarks/naive_app.py` (same model, one
script, a 10,000-point map and 16 sliders, no fragment, so each slider change reruns it all),
plus the slider latency of `benchmarks/floor_app.py` (one slider and one image in a fragment, no
model): the part of the latency that Streamlit, the browser and the machine's load cost anyway.

- cold start: from launching `streamlit run` to the first decoded image in the browser, with an
  empty disk cache (a fresh copy of the model) and again with the disk cache filled;
- slider latency: focus the top latent slider, press ArrowRight (or ArrowLeft), and time in the
  page from the key press to the decoded image's new `src` (and to the next painted frame).
  Median and 90th percentile of `--presses` presses.

Targets: slider latency <= 150 ms (median), cold start <= 6 s.

The app runs with `VAE_LIVE_DECODER=0` here: this is the server round trip (the panel the app
falls back to). Browser decoding is timed by `benchmarks/live_bench.py`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.conftest import (  # noqa: E402  (one list of browser flags, one health check)
    CHROMIUM,
    CHROMIUM_ARGS,
    stop_app,
    wait_healthy,
)
from tests.e2e.helpers import free_port  # noqa: E402

DECODED = 'img[alt="decoded z"]'
SLIDER = '[data-testid="stSlider"]'

WATCH_JS = """() => {
    window.__lat = {key: null, change: null, paint: null};
    window.__src = (document.querySelector('img[alt="decoded z"]') || {}).src;
    document.addEventListener('keydown', () => {
        window.__lat = {key: performance.now(), change: null, paint: null};
    }, true);
    new MutationObserver(() => {
        const img = document.querySelector('img[alt="decoded z"]');
        if (!img || img.src === window.__src) return;
        window.__src = img.src;
        const lat = window.__lat;
        if (lat.key !== null && lat.change === null) {
            lat.change = performance.now();
            requestAnimationFrame(() => { lat.paint = performance.now(); });
        }
    }).observe(document.body, {subtree: true, childList: true, attributes: true,
                               attributeFilter: ['src']});
}"""


def launch(script: str, port: int, env: dict[str, str], log: Path) -> subprocess.Popen:
    cmd = [
        sys.executable, "-m", "streamlit", "run", script,
        "--server.port", str(port), "--server.address", "127.0.0.1",
        "--server.headless", "true", "--browser.gatherUsageStats", "false",
        "--server.fileWatcherType", "none",
    ]  # fmt: skip
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)


def wait_idle(page) -> None:
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=60_000
    )


def cold_start(browser, script: str, env: dict[str, str], log: Path, keep: bool = False):
    """Seconds from `streamlit run` to the first decoded image; (seconds, proc, page, url)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    page = browser.new_page(viewport={"width": 1440, "height": 1000})
    t0 = time.perf_counter()
    proc = launch(script, port, env, log)
    wait_healthy(url, proc, poll=0.05)  # fine polling: this wait is part of the timed start
    page.goto(url)
    page.wait_for_selector(DECODED, timeout=180_000)
    seconds = time.perf_counter() - t0
    if not keep:
        page.close()
        stop_app(proc)
        return seconds, None, None, url
    return seconds, proc, page, url


def slider_latency(page, slider_selector: str, presses: int) -> dict[str, list[float]]:
    """In-page ms from keydown to the decoded image's new src, and to the next frame."""
    wait_idle(page)
    page.wait_for_timeout(1000)
    page.evaluate(WATCH_JS)
    thumb = page.locator(slider_selector).first.locator('input[type="range"]')
    change, paint = [], []
    for i in range(presses):
        thumb.focus()
        page.keyboard.press("ArrowRight" if i % 2 == 0 else "ArrowLeft")
        page.wait_for_function("() => window.__lat.paint !== null", timeout=30_000)
        lat = page.evaluate("() => window.__lat")
        change.append(lat["change"] - lat["key"])
        paint.append(lat["paint"] - lat["key"])
        wait_idle(page)
        page.wait_for_timeout(250)
    return {"change_ms": change, "paint_ms": paint}


def warm_latency(browser, script: str, env: dict[str, str], log: Path, slider: str, presses: int):
    """Start `script` (timed as a cold start), then measure its slider latency; stops the app."""
    seconds, proc, page, _ = cold_start(browser, script, env, log, keep=True)
    try:
        return seconds, slider_latency(page, slider, presses)
    finally:
        stop_app(proc)


def summary(xs: list[float]) -> str:
    q = statistics.quantiles(xs, n=10)[-1] if len(xs) >= 2 else xs[0]
    return f"median {statistics.median(xs):7.1f}  p90 {q:7.1f}"


def default_model() -> Path:
    from vae.data.status import dataset_status

    conv = ROOT / "assets" / "mnist-conv"
    if (conv / "model.safetensors").exists() and dataset_status("mnist")["available"]:
        return conv
    return ROOT / "assets" / "digits-mlp"


def cli(
    doc: str, extra: Callable[[argparse.ArgumentParser], None] | None = None
) -> argparse.Namespace:
    """The browser benchmarks' shared options (--model, --presses, --json, and what `extra` adds
    to the parser); exits with code 2 when there is no Chromium to drive."""
    p = argparse.ArgumentParser(description=doc.split("\n")[0])
    p.add_argument("--model", type=Path, default=None, help="checkpoint folder (default: app's)")
    p.add_argument("--presses", type=int, default=15)
    p.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    if extra is not None:
        extra(p)
    args = p.parse_args()
    if not CHROMIUM.exists():
        print(f"needs Chromium at {CHROMIUM}", file=sys.stderr)
        raise SystemExit(2)
    return args


def fresh_copy(model: Path, tmp: Path) -> tuple[Path, dict[str, str]]:
    """A copy of the model under tmp/assets, with empty runs and cache folders, so that the
    first start has an empty disk cache; returns (the copy, the app's environment)."""
    copy = tmp / "assets" / model.name
    copy.mkdir(parents=True, exist_ok=True)
    for f in ("config.json", "model.safetensors", "metrics.json"):
        if (model / f).exists():
            shutil.copy2(model / f, copy / f)
    env = dict(os.environ)
    env.update(
        VAE_ASSETS_DIR=str(copy.parent),
        VAE_RUNS_DIR=str(tmp / "runs"),
        VAE_CACHE_DIR=str(tmp / "cache"),
    )
    return copy, env


def main() -> int:
    args = cli(__doc__)
    from playwright.sync_api import sync_playwright

    model = (args.model or default_model()).resolve()
    tmp = Path(tempfile.mkdtemp(prefix="vae-bench-"))
    copy, env = fresh_copy(model, tmp)
    name = model.name
    env.update(
        BENCH_MODEL=str(copy),
        VAE_LIVE_DECODER="0",  # the server-side panel; live_bench.py times the browser one
    )
    load = os.getloadavg()
    print(f"model {model} ({name}); presses {args.presses}; load average {load[0]:.1f}")
    out: dict[str, object] = {"model": str(model), "load_average": load[0]}
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
            )
            s_empty, *_ = cold_start(browser, "app.py", env, tmp / "app-cold.log")
            s_warm, app_lat = warm_latency(
                browser,
                "app.py",
                env,
                tmp / "app-warm.log",
                '[data-testid="stSlider"]:has-text("· KL")',
                args.presses,
            )
            n_empty, *_ = cold_start(browser, "benchmarks/naive_app.py", env, tmp / "naive1.log")
            n_warm, naive_lat = warm_latency(
                browser, "benchmarks/naive_app.py", env, tmp / "naive2.log", SLIDER, args.presses
            )
            f_cold, floor_lat = warm_latency(
                browser, "benchmarks/floor_app.py", env, tmp / "floor.log", SLIDER, args.presses
            )
            browser.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    a, b = statistics.median(app_lat["change_ms"]), statistics.median(naive_lat["change_ms"])
    print("\nslider key -> new decoded image (ms)")
    print(f"  app   {summary(app_lat['change_ms'])}   painted: {summary(app_lat['paint_ms'])}")
    print(f"  naive {summary(naive_lat['change_ms'])}   painted: {summary(naive_lat['paint_ms'])}")
    print(f"  floor {summary(floor_lat['change_ms'])}   (one slider + one image, no model)")
    print(f"  ratio naive/app (median): {b / a:.1f}x   target app <= 150 ms: "
          f"{'met' if a <= 150 else 'NOT met'}")  # fmt: skip
    print("\ncold start: `streamlit run` -> first decoded image (s)")
    print(f"  app   empty disk cache {s_empty:5.2f}   warm disk cache {s_warm:5.2f}")
    print(f"  naive first launch     {n_empty:5.2f}   second launch   {n_warm:5.2f}")
    print(f"  floor                  {f_cold:5.2f}   (no torch, no model, no data)")
    verdict = lambda s: "met" if s <= 6 else "NOT met"
    print(f"  ratio naive/app (warm): {n_warm / s_warm:.2f}x   target app <= 6 s: "
          f"{verdict(s_warm)} (warm cache), {verdict(s_empty)} (empty cache)")  # fmt: skip
    out.update(
        app_latency=app_lat,
        naive_latency=naive_lat,
        floor_latency=floor_lat,
        app_cold_start_s={"empty_cache": s_empty, "warm_cache": s_warm},
        naive_cold_start_s={"first": n_empty, "second": n_warm},
        floor_cold_start_s=f_cold,
    )
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
