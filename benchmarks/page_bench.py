"""Page and model switches, click to idle, in headless Chromium.

    VAE_DATA_DIR=/work/shared/data python benchmarks/page_bench.py             # 5 rounds
    VAE_DATA_DIR=/work/shared/data python benchmarks/page_bench.py --rounds 3 --json out.json

Runs `streamlit run app.py` on a copy of the shipped models (assets/, without their disk caches;
the default model is mnist-conv when MNIST is here, else digits-mlp), opens it once, visits every
page once to warm the caches, then for `--rounds` rounds clicks each sidebar navigation link in
turn (Explore, Encode an image, ..., Model library) and times each click to idle. Then it
switches the sidebar model picker back and forth between the default model and the other one
(mnist-conv <-> digits-mlp) on Explore, `--switches` times.

The baseline, measured the same way in the same run, is `benchmarks/floor_pages_app.py`: the
same eight page titles in st.navigation, each page a title and a line, and a sidebar selectbox.

Click to idle, in the page's own clock: from the pointerdown on the link (or the picker's
option) to the first painted frame after (1) the last script run the click caused has finished
(the ForwardMsg `script_finished` seen on the websocket, counting reruns that a page or a
component asks for, with no new run within `QUIET_S`), (2) the app's status widget is gone, and
(3) the last long task (> 50 ms on the main thread: drawing a figure, say) has ended.

Targets (issue "Speed a user feels"): a warm page switch <= 1.0 s median over every page, and a
model switch <= 1.0 s median.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.interaction_bench import default_model, launch  # noqa: E402
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, stop_app, wait_healthy  # noqa: E402
from tests.e2e.helpers import free_port  # noqa: E402

NAV = [
    "Explore",
    "Encode an image",
    "Traverse",
    "Interpolate",
    "Diagnostics",
    "Demos",
    "Train",
    "Model library",
]
QUIET_S = 0.75  # no new script run this long after the last one finished: the click is done
FIELD_NEW_SESSION, FIELD_SCRIPT_FINISHED = 4, 6  # ForwardMsg field numbers (streamlit 1.x)
EARLY_FOR_RERUN = 2  # ScriptFinishedStatus.FINISHED_EARLY_FOR_RERUN

# Before any page script: every websocket message's arrival time and top-level protobuf fields
# ([field number, varint value or null]), every painted frame (and whether the status widget is
# there), long tasks, and the last pointerdown.
SPY_JS = """(() => {
  const fields = (buf) => {
    const b = new Uint8Array(buf); let i = 0; const out = [];
    const varint = () => { let x = 0, s = 0, c;
      do { c = b[i++]; x += (c & 0x7f) * 2 ** s; s += 7; } while (c & 0x80 && i < b.length);
      return x; };
    while (i < b.length) {
      const tag = varint(), num = Math.floor(tag / 8), wt = tag % 8;
      if (wt === 0) out.push([num, varint()]);
      else if (wt === 2) { const n = varint(); out.push([num, null]); i += n; }
      else if (wt === 1) { i += 8; out.push([num, null]); }
      else if (wt === 5) { i += 4; out.push([num, null]); }
      else break;
    }
    return out;
  };
  window.__spy = { msgs: [], frames: [], long: [], down: null };
  const Orig = window.WebSocket;
  window.WebSocket = class extends Orig {
    constructor(...a) {
      super(...a);
      this.addEventListener('message', (e) => {
        const t = performance.now();
        const d = e.data;
        if (d instanceof ArrayBuffer) window.__spy.msgs.push([t, fields(d), d.byteLength]);
      });
    }
  };
  document.addEventListener('pointerdown', (e) => { window.__spy.down = e.timeStamp; }, true);
  new PerformanceObserver((l) => {
    for (const e of l.getEntries()) window.__spy.long.push([e.startTime, e.duration]);
  }).observe({ entryTypes: ['longtask'] });
  const step = () => {
    window.__spy.frames.push([performance.now(),
      !!document.querySelector('[data-testid="stStatusWidget"]')]);
    requestAnimationFrame(step);
  };
  requestAnimationFrame(step);
})();"""

RESET_JS = "() => { const s = __spy; s.msgs = []; s.frames = []; s.long = []; s.down = null; }"


def settled(spy: dict) -> float | None:
    """The time the last script run finished, if every run the click caused is done."""
    starts = [t for t, f, _ in spy["msgs"] if any(n == FIELD_NEW_SESSION for n, _ in f)]
    ends = [
        t
        for t, f, _ in spy["msgs"]
        for n, v in f
        if n == FIELD_SCRIPT_FINISHED and (v or 0) != EARLY_FOR_RERUN
    ]
    if not ends or (starts and starts[-1] > ends[-1]):
        return None
    return ends[-1]


def click_to_idle(page, click, timeout: float = 120.0) -> dict[str, float]:
    """Seconds from the pointerdown of `click()` to idle (see the module docstring), to the
    last script run's end, and the number of script runs."""
    page.evaluate(RESET_JS)
    click()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        page.wait_for_timeout(100)
        spy = page.evaluate("() => window.__spy")
        now = page.evaluate("() => performance.now()")
        done = settled(spy)
        if done is None or now - done < QUIET_S * 1000:
            continue
        # the last long task that began before the quiet window ended (rendering after the run)
        busy = max([s + d for s, d in spy["long"] if s <= done + QUIET_S * 1000] + [done])
        idle = [t for t, status in spy["frames"] if t >= busy and not status]
        if idle and spy["down"] is not None:
            runs = sum(any(n == FIELD_NEW_SESSION for n, _ in f) for _, f, _ in spy["msgs"])
            down = spy["down"]
            return {"idle": (idle[0] - down) / 1000, "finished": (done - down) / 1000, "runs": runs}
    raise TimeoutError("the page did not settle")


def nav_click(page, title: str):
    link = page.locator('[data-testid="stSidebarNav"] a', has_text=title).first
    return lambda: link.click()


def pick_model(page, label_start: str):
    def click() -> None:
        page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').first.click()
        page.locator('[role="option"]', has_text=label_start).first.click()

    return click


def open_app(browser, url: str):
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    context.add_init_script(SPY_JS)
    page = context.new_page()
    page.set_default_timeout(120_000)
    page.goto(url)
    page.wait_for_selector('[data-testid="stSidebarNav"]', timeout=180_000)
    page.wait_for_function(
        "() => window.__spy.msgs.some(m => m[1].some(f => f[0] === 6))", timeout=180_000
    )
    page.wait_for_timeout(1500)
    return context, page


def measure(browser, script: str, env: dict[str, str], log: Path, rounds: int, switches: int,
            models: tuple[str, str]) -> dict[str, object]:  # fmt: skip
    """Warm-up visits, then `rounds` rounds of page switches and `switches` model switches."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = launch(script, port, env, log)
    try:
        wait_healthy(url, proc)
        context, page = open_app(browser, url)
        order = NAV[1:] + NAV[:1]  # from the home page (Explore) to the next one, round and round
        warm = {title: click_to_idle(page, nav_click(page, title))["idle"] for title in order}
        times: dict[str, list[float]] = {title: [] for title in NAV}
        detail: dict[str, list[dict[str, float]]] = {title: [] for title in NAV}
        for _ in range(rounds):
            for title in order:
                detail[title].append(click_to_idle(page, nav_click(page, title)))
                times[title].append(detail[title][-1]["idle"])
        click_to_idle(page, pick_model(page, models[1]))  # warm the other model once
        click_to_idle(page, pick_model(page, models[0]))
        switch = [click_to_idle(page, pick_model(page, models[1 - i % 2])) for i in range(switches)]
        context.close()
        return {"warm_up_s": warm, "page_s": times, "model_switch_s": [s["idle"] for s in switch],
                "detail": detail, "switch_detail": switch}  # fmt: skip
    finally:
        stop_app(proc)


def copy_assets(tmp: Path) -> dict[str, str]:
    """The shipped models under tmp/assets without their disk caches; the app's environment."""
    shutil.copytree(ROOT / "assets", tmp / "assets", ignore=shutil.ignore_patterns(".cache"))
    env = dict(os.environ)
    env.update(
        VAE_ASSETS_DIR=str(tmp / "assets"),
        VAE_RUNS_DIR=str(tmp / "runs"),
        VAE_CACHE_DIR=str(tmp / "cache"),
        # Explore compiles UMAP's numba code once per server in a background thread, for tens
        # of seconds: a one-off that would be timed instead of the page switches.
        VAE_UMAP_WARMUP="0",
    )
    return env


def p90(xs: list[float]) -> float:
    return statistics.quantiles(xs, n=10)[-1] if len(xs) >= 2 else xs[0]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=5, help="clicks on each page (after one warm-up)")
    p.add_argument("--switches", type=int, default=6, help="model switches")
    p.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    p.add_argument("--app", default="app.py", help="the app script (a profiling wrapper, say)")
    args = p.parse_args()
    if not CHROMIUM.exists():
        print(f"needs Chromium at {CHROMIUM}", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    model = default_model().name
    other = "digits-mlp" if model != "digits-mlp" else "digits-2d"
    tmp = Path(tempfile.mkdtemp(prefix="vae-page-bench-"))
    env = copy_assets(tmp)
    load = os.getloadavg()
    print(f"models {model} <-> {other}; rounds {args.rounds}; load average {load[0]:.1f} "
          f"(1 min), {load[1]:.1f} (5 min); {os.cpu_count()} cores")  # fmt: skip
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
            )
            kw = dict(rounds=args.rounds, switches=args.switches)
            floor = measure(browser, "benchmarks/floor_pages_app.py", env, tmp / "floor.log",
                            models=("mnist-conv", "digits-mlp"), **kw)  # fmt: skip
            app = measure(browser, args.app, env, tmp / "app.log", models=(model, other), **kw)
            browser.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    end_load = os.getloadavg()[0]

    print("\npage switch, click -> idle (s)")
    print(f"  {'page':16s} {'app median':>10s} {'p90':>6s} {'floor':>6s}  {'ratio':>5s}  "
          "warm-up  run ends  runs")  # fmt: skip
    for title in NAV:
        a, f = app["page_s"][title], floor["page_s"][title]
        ends = statistics.median(d["finished"] for d in app["detail"][title])
        runs = max(d["runs"] for d in app["detail"][title])
        print(f"  {title:16s} {statistics.median(a):10.2f} {p90(a):6.2f} "
              f"{statistics.median(f):6.2f}  {statistics.median(a) / statistics.median(f):5.1f}"
              f"  {app['warm_up_s'][title]:7.2f}  {ends:8.2f}  {runs:4d}")  # fmt: skip
    all_a = [t for ts in app["page_s"].values() for t in ts]
    all_f = [t for ts in floor["page_s"].values() for t in ts]
    per_page = [statistics.median(ts) for ts in app["page_s"].values()]
    ma, mf = statistics.median(all_a), statistics.median(all_f)
    verdict = lambda ok: "met" if ok else "NOT met"  # noqa: E731
    print(f"  {'all pages':16s} {ma:10.2f} {p90(all_a):6.2f} {mf:6.2f}  {ma / mf:5.1f}")
    print(f"  slowest page median {max(per_page):.2f} s; target median <= 1.0 s: "
          f"{verdict(ma <= 1.0)} (all clicks), "
          f"{verdict(max(per_page) <= 1.0)} (each page)")  # fmt: skip
    sa, sf = app["model_switch_s"], floor["model_switch_s"]
    print(f"\nmodel switch on Explore ({model} <-> {other}), click -> idle (s)")
    print(f"  app median {statistics.median(sa):.2f}  p90 {p90(sa):.2f}   floor median "
          f"{statistics.median(sf):.2f}   ratio {statistics.median(sa) / statistics.median(sf):.1f}"
          f"   target <= 1.0 s: {verdict(statistics.median(sa) <= 1.0)}")  # fmt: skip
    print("  (run ends: median time from the click to the last script run's end; runs: the most "
          "script runs one click caused)")  # fmt: skip
    print(f"\nload average at the end {end_load:.1f}")
    if args.json:
        args.json.write_text(json.dumps({"app": app, "floor": floor, "load": [load[0], end_load]},
                                        indent=2))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
