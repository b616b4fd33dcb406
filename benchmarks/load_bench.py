"""Load: eight browser sessions and a CPU training job on one `streamlit run app.py` server.

    VAE_DATA_DIR=/work/shared/data python benchmarks/load_bench.py            # 8 sessions x 60 s
    python benchmarks/load_bench.py --sessions 2 --seconds 10                 # a quick check

One server on a fresh copy of the model (default `assets/mnist-conv` with MNIST from
`VAE_DATA_DIR`, default /work/shared/data), with temporary models, runs and cache folders, so
nothing in the repository is written. In order:

1. warm-up and baseline: one headless-Chromium session visits every page, clicks the map,
   uploads a photo on Encode, then presses keys on a live latent slider `--presses` times: key
   press -> the decoded canvas redrawn (its `data-frames` attribute changes; the in-page clock,
   as in benchmarks/live_bench.py). No training job runs. The server's memory is read after
   this session closes and `--settle` seconds pass;
2. load: a CPU training job starts the way the Train page starts one (`vae.jobs.start` into the
   app's runs folder: threads = cores - 1, niced once it trains), then `--sessions` sessions,
   each in its own process with its own Playwright and Chromium, explore for `--seconds`
   seconds: bursts of key presses on live sliders (timed as above), slider drags, map clicks,
   photo uploads on Encode (each photo a little different), switches to random pages;
3. after: the sessions close, `--settle` seconds pass, the memory is read again.

Memory is the RSS (VmRSS) of the streamlit process and its children, the training job left out.
Every action is followed by a check of the page for Streamlit exception elements
(`[data-testid="stException"]`) and the app's own error boxes ("Something went wrong here (error
id ...)", vae/ui/guard.py); at the end the server log is searched for "Traceback".

Pass: no exception anywhere, and the memory after the sessions within +25% of the memory after
the warm-up. The slider latency under load is reported with its ratio to the baseline (no target).
"""

from __future__ import annotations

import ast
import io
import json
import multiprocessing as mp
import os
import queue
import random
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.interaction_bench import cli, default_model, fresh_copy, launch  # noqa: E402
from benchmarks.live_bench import CANVAS, KEY_WATCH_JS, LIVE_SLIDER  # noqa: E402
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, stop_app, wait_healthy  # noqa: E402
from tests.e2e.helpers import digit_photo_png, free_port  # noqa: E402

MEMORY_BOUND = 0.25  # the memory after the sessions may exceed the warm-up's by this share
ERROR_BOX = "Something went wrong here (error id"
EXCEPTION = '[data-testid="stException"]'
STATUS = '[data-testid="stStatusWidget"]'
MAP_JS = """(pick) => {
  const gd = [...document.querySelectorAll('.js-plotly-plot')]
      .find(g => g._fullData && g._fullData.some(t => t.type === 'scattergl'));
  if (!gd) return null;
  const t = gd._fullData.find(t => t.type === 'scattergl');
  const i = Math.floor(pick * t.x.length);
  const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis, box = gd.getBoundingClientRect();
  return [box.left + xa._offset + xa.l2p(t.x[i]), box.top + ya._offset + ya.l2p(t.y[i])];
}"""


def page_titles() -> dict[str, str]:
    """{title: url path} of the pages app.py registers (its PAGES table)."""
    tree = ast.parse((ROOT / "app.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "PAGES":
            rows = ast.literal_eval(node.value)
            return {title: url for script, title, _, url in rows if (ROOT / script).is_file()}
    raise RuntimeError("app.py has no PAGES table")


def wait_idle(page, timeout: float = 120_000) -> None:
    """No 'Running…' widget, twice 0.3 s apart (the widget shows only after a delay)."""
    for _ in range(2):
        page.wait_for_function(f"() => !document.querySelector('{STATUS}')", timeout=timeout)
        page.wait_for_timeout(300)


def photo(rng: random.Random, folder: Path) -> Path:
    """The '7' photo of the e2e tests, turned and scaled a little: each upload is a new file."""
    from PIL import Image

    im = Image.open(io.BytesIO(digit_photo_png())).convert("RGB")
    im = im.rotate(rng.uniform(-15, 15), fillcolor=(225, 225, 225))
    side = rng.randint(160, 320)
    path = folder / f"photo-{rng.randrange(10**9)}.png"
    im.resize((side, side)).save(path)
    return path


class Session:
    """One visitor: a page, what it did, what it saw go wrong, its key-press latencies."""

    def __init__(self, page, url: str, rng: random.Random, folder: Path) -> None:
        self.page, self.url, self.rng, self.folder = page, url, rng, folder
        self.titles = page_titles()
        self.current = "Explore"
        self.latencies: list[float] = []
        self.missed = 0
        self.actions: dict[str, int] = {}
        self.errors: list[dict[str, str]] = []
        self.stalls: list[str] = []

    def check(self, after: str) -> None:
        """Note every exception element and error box on the page (each distinct text once)."""
        seen = {e["text"] for e in self.errors}
        boxes = self.page.locator(EXCEPTION).all() + self.page.get_by_text(ERROR_BOX).all()
        for box in boxes:
            text = box.inner_text(timeout=5_000).strip()[:500]
            if text not in seen:
                seen.add(text)
                self.errors.append({"page": self.page.url, "after": after, "text": text})

    def open(self) -> None:
        self.page.goto(self.url)
        self.page.wait_for_function(
            "() => globalThis.__vaeLive && __vaeLive.stats.frames > 0", timeout=180_000
        )
        self.explore_ready()

    def explore_ready(self) -> None:
        self.page.wait_for_selector(CANVAS, timeout=120_000)
        self.page.wait_for_function(f"() => !!({MAP_JS})(0)", timeout=120_000)
        wait_idle(self.page)

    def go(self, title: str) -> None:
        """Switch page through the sidebar's navigation, as a visitor does."""
        nav = self.page.locator('[data-testid="stSidebar"]')
        nav.get_by_role("link", name=title, exact=True).click()
        self.wait_path(title)
        self.current = title
        if title == "Explore":
            self.explore_ready()
        else:
            wait_idle(self.page)

    def wait_path(self, title: str) -> None:
        """Until the address is the page's (the first page, the home page, is at /)."""
        home = next(iter(self.titles)) == title
        self.page.wait_for_function(
            "([p, home]) => location.pathname.endsWith('/' + p)"
            " || (home && location.pathname === '/')",
            arg=[self.titles[title], home],
            timeout=60_000,
        )

    def on_explore(self) -> None:
        if self.current != "Explore":
            self.go("Explore")

    def keys(self, presses: int) -> None:
        """Key presses on one live slider: ms from keydown to the decoded canvas redrawn."""
        self.on_explore()
        page = self.page
        page.evaluate(KEY_WATCH_JS, CANVAS)
        slider = page.locator(LIVE_SLIDER).nth(self.rng.randrange(4))
        value, top = float(slider.input_value()), float(slider.get_attribute("max"))
        low = float(slider.get_attribute("min"))
        first = "ArrowLeft" if value > (low + top) / 2 else "ArrowRight"
        other = {"ArrowLeft": "ArrowRight", "ArrowRight": "ArrowLeft"}[first]
        for i in range(presses):
            slider.focus()
            page.keyboard.press(first if i % 2 == 0 else other)
            try:
                page.wait_for_function("() => window.__lat.change !== null", timeout=10_000)
            except Exception:  # noqa: BLE001 - no new picture within 10 s: counted, not timed
                self.missed += 1
                continue
            lat = page.evaluate("() => window.__lat")
            self.latencies.append(lat["change"] - lat["key"])
            page.wait_for_timeout(350)
        wait_idle(page)

    def drag(self) -> None:
        self.on_explore()
        box = self.page.locator(LIVE_SLIDER).nth(self.rng.randrange(4)).bounding_box()
        x, y = box["x"] + box["width"] * self.rng.uniform(0.3, 0.7), box["y"] + box["height"] / 2
        self.page.mouse.move(x, y)
        self.page.mouse.down()
        step = box["width"] * self.rng.choice((-1, 1)) / 60
        for i in range(1, 16):
            self.page.mouse.move(x + i * step, y)
            self.page.wait_for_timeout(30)
        self.page.mouse.up()
        wait_idle(self.page)

    def map_click(self) -> None:
        self.on_explore()
        self.page.locator(".js-plotly-plot").first.scroll_into_view_if_needed()
        x, y = self.page.evaluate(MAP_JS, self.rng.random())
        self.page.mouse.click(x, y)
        self.page.get_by_text(re.compile(r"Image #\d+ · label")).first.wait_for(timeout=120_000)
        wait_idle(self.page)

    def upload(self) -> None:
        if self.current != "Encode an image":
            self.go("Encode an image")
        box = self.page.locator('[data-testid="stMain"] input[type="file"]').first
        box.set_input_files(str(photo(self.rng, self.folder)))
        self.page.get_by_text("Nearest dataset images").first.wait_for(timeout=120_000)
        wait_idle(self.page)
        if self.rng.random() < 0.5:
            self.page.get_by_role("button", name=re.compile("Open in Explore")).first.click()
            self.wait_path("Explore")
            self.current = "Explore"
            self.explore_ready()

    def switch(self) -> None:
        self.go(self.rng.choice([t for t in self.titles if t != self.current]))

    def act(self, name: str, fn, *args) -> None:
        """One action, then the check; a timeout is a stall (noted, the page reloaded)."""
        self.actions[name] = self.actions.get(name, 0) + 1
        try:
            fn(*args)
        except Exception as e:  # noqa: BLE001 - the session goes on; the stall is reported
            self.stalls.append(f"{name} on {self.page.url}: {str(e).splitlines()[0][:200]}")
            self.check(name)
            self.current = "Explore"
            self.open()
            return
        self.check(name)

    def tour(self, presses: int) -> None:
        """The warm-up: every page, a map click, an upload; then the baseline presses."""
        self.act("map click", self.map_click)
        for title in self.titles:
            if title != "Explore":
                self.act("page switch", self.go, title)
        self.act("upload", self.upload)
        self.act("page switch", self.go, "Explore")
        wait_idle(self.page)
        self.page.wait_for_timeout(1000)
        self.act("keys", self.keys, presses)

    def explore(self, seconds: float) -> None:
        """Random actions until `seconds` have passed."""
        menu = [
            ("keys", self.keys, 35),
            ("drag", self.drag, 15),
            ("map click", self.map_click, 15),
            ("upload", self.upload, 10),
            ("page switch", self.switch, 25),
        ]
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            name, fn, _ = self.rng.choices(menu, weights=[w for *_, w in menu])[0]
            self.act(name, fn, *((3,) if name == "keys" else ()))


def session_main(index: int, url: str, mode: str, seconds: float, presses: int, out) -> None:
    """A process's session (Playwright's sync API is not thread-safe); its result goes to `out`."""
    from playwright.sync_api import sync_playwright

    result: dict[str, object] = {"session": index, "mode": mode, "crash": None, "js_errors": []}
    folder = Path(tempfile.mkdtemp(prefix=f"load-session-{index}-"))
    s = None
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
            )
            page = browser.new_page(viewport={"width": 1440, "height": 1000})
            page.set_default_timeout(60_000)
            page.on("pageerror", lambda e: result["js_errors"].append(str(e)[:300]))
            s = Session(page, url, random.Random(index), folder)
            s.open()
            s.check("open")
            t0 = time.monotonic()
            s.tour(presses) if mode == "warmup" else s.explore(seconds)
            result["seconds"] = time.monotonic() - t0
            browser.close()
    except Exception:  # noqa: BLE001 - reported by the parent
        result["crash"] = traceback.format_exc()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if s is not None:
        result.update(
            latencies_ms=s.latencies,
            missed=s.missed,
            actions=s.actions,
            errors=s.errors,
            stalls=s.stalls,
        )
    out.put(result)


def run_sessions(url: str, n: int, mode: str, seconds: float, presses: int) -> list[dict]:
    """`n` sessions in their own spawned processes, started 1 s apart; their results."""
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = []
    for i in range(n):
        p = ctx.Process(target=session_main, args=(i, url, mode, seconds, presses, out))
        p.start()
        procs.append(p)
        time.sleep(1.0)
    results: list[dict] = []
    deadline = time.monotonic() + seconds + 900
    while len(results) < n and time.monotonic() < deadline:
        try:
            results.append(out.get(timeout=5))
        except queue.Empty:
            if all(not p.is_alive() for p in procs) and out.empty():
                break
    for p in procs:
        p.join(timeout=30)
        if p.is_alive():
            p.kill()
    for i in sorted(set(range(n)) - {r["session"] for r in results}):
        results.append({"session": i, "mode": mode, "crash": "the process gave no result"})
    return sorted(results, key=lambda r: r["session"])


def tree_rss_mb(pid: int, leave_out: set[int]) -> float:
    """VmRSS of `pid` and its descendants (but not those in `leave_out`), in MB."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        if p in leave_out:
            continue
        try:
            status = Path(f"/proc/{p}/status").read_text()
            total += int(re.search(r"^VmRSS:\s+(\d+) kB", status, re.M).group(1))
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, AttributeError):
            continue  # gone meanwhile (or a kernel thread without VmRSS)
    return total / 1024


def start_job(runs: Path) -> tuple[str, int]:
    """A CPU training job started as the Train page starts one, long enough to outlast the
    benchmark (it is stopped at the end); (what it trains, its pid) once it has stepped."""
    from vae import jobs
    from vae.config import ModelConfig, TrainConfig
    from vae.data.status import dataset_status

    if dataset_status("mnist").get("available"):
        m = ModelConfig(image_shape=(1, 28, 28), latent_dim=20, hidden=(400,))
        c = TrainConfig(dataset="mnist", epochs=1000, batch_size=128, device="cpu")
    else:
        m = ModelConfig(image_shape=(1, 8, 8), latent_dim=8, hidden=(512, 512))
        c = TrainConfig(dataset="digits", epochs=100_000, batch_size=64, device="cpu")
    jobs.start("load-bench-job", m, c, runs)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        s = jobs.job_status(runs / "load-bench-job")
        if s.state == "running" and s.step > 0:
            return f"{c.dataset} {m.arch} {'-'.join(map(str, m.hidden))}, z{m.latent_dim}", s.pid
        if not s.active:
            raise RuntimeError(f"the training job ended: {s.state} {s.message}")
        time.sleep(0.2)
    raise RuntimeError("the training job did not start within 180 s")


def job_state(runs: Path) -> tuple[str, int]:
    from vae import jobs

    s = jobs.job_status(runs / "load-bench-job")
    return s.state, s.step


def stop_job(runs: Path) -> None:
    from benchmarks.jobs_bench import stop_and_wait

    stop_and_wait(runs, "load-bench-job")


def tracebacks(log: Path) -> list[str]:
    """Each traceback in the server log: from 'Traceback' to its exception line."""
    lines = log.read_text(errors="replace").splitlines()
    out = []
    for i, line in enumerate(lines):
        if "Traceback" in line:
            j = i + 1
            while j < len(lines) and (lines[j].startswith(" ") or not lines[j].strip()):
                j += 1
            out.append("\n".join(lines[max(0, i - 1) : j + 1]))
    return out


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def p95(xs: list[float]) -> float:
    if len(xs) < 2:
        return xs[0] if xs else float("nan")
    return statistics.quantiles(xs, n=20)[-1]


def options(p) -> None:
    p.add_argument("--sessions", type=int, default=8, help="concurrent browser sessions")
    p.add_argument("--seconds", type=float, default=60.0, help="how long each session explores")
    p.add_argument("--settle", type=float, default=10.0, help="seconds before reading memory")
    p.set_defaults(presses=30)


def report_sessions(results: list[dict]) -> tuple[int, int]:
    """Print what each session did and saw; (exceptions seen, stalls)."""
    errors = stalls = 0
    for r in results:
        acts = ", ".join(f"{k} {v}" for k, v in sorted(r.get("actions", {}).items()))
        timed, missed = len(r.get("latencies_ms", [])), r.get("missed", 0)
        print(f"  session {r['session']} ({r['mode']}): {acts or 'no actions'}; "
              f"{timed} timed presses, {missed} missed")  # fmt: skip
        for e in r.get("errors", []):
            errors += 1
            print(f"    EXCEPTION on {e['page']} after {e['after']}: {e['text']}")
        for s in r.get("stalls", []):
            stalls += 1
            print(f"    stall: {s}")
        if r.get("crash"):
            errors += 1
            print("    the session crashed:\n" + r["crash"])
        for js in sorted(set(r.get("js_errors", []))):
            print(f"    JS error in the page (info): {js}")
    return errors, stalls


def main() -> int:
    os.environ.setdefault("VAE_DATA_DIR", "/work/shared/data")
    args = cli(__doc__, options)
    model = (args.model or default_model()).resolve()
    tmp = Path(tempfile.mkdtemp(prefix="vae-load-bench-"))
    _, env = fresh_copy(model, tmp)
    env["VAE_DEVICE"] = "cpu"
    runs = Path(env["VAE_RUNS_DIR"])
    load0 = os.getloadavg()
    loads = ", ".join(f"{x:.1f}" for x in load0)
    print(f"model {model.name}; {args.sessions} sessions x {args.seconds:.0f} s; "
          f"{os.cpu_count()} cores; load average {loads}")  # fmt: skip
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp / "server.log"
    proc = launch("app.py", port, env, log)
    samples: list[float] = []
    job_pid: set[int] = set()
    try:
        wait_healthy(url, proc, timeout=120)
        print("\n1. warm-up and baseline: one session, no training job")
        warm = run_sessions(url, 1, "warmup", 0, args.presses)
        warm_errors, warm_stalls = report_sessions(warm)
        time.sleep(args.settle)
        mem_start = tree_rss_mb(proc.pid, set())

        print("\n2. load: a training job and the sessions")
        what, pid = start_job(runs)
        job_pid.add(pid)
        print(f"  training job: {what} (pid {pid}), training")
        sampling = threading.Event()

        def sample() -> None:
            while not sampling.wait(1.0):
                samples.append(tree_rss_mb(proc.pid, job_pid))

        threading.Thread(target=sample, daemon=True).start()
        loaded = run_sessions(url, args.sessions, "explore", args.seconds, 3)
        sampling.set()
        state, step = job_state(runs)
        print(f"  training job after the sessions: {state}, step {step:,}")
        time.sleep(args.settle)
        mem_end = tree_rss_mb(proc.pid, job_pid)
        stop_job(runs)
    finally:
        stop_app(proc)
        load1 = os.getloadavg()
        logs = tracebacks(log) if log.exists() else []
        shutil.rmtree(tmp, ignore_errors=True)

    errors, stalls = report_sessions(loaded)
    errors, stalls = errors + warm_errors, stalls + warm_stalls
    base = [x for r in warm for x in r.get("latencies_ms", [])]
    busy = [x for r in loaded for x in r.get("latencies_ms", [])]
    for tb in logs:
        print("  server log:\n" + tb)
    growth = mem_end / mem_start - 1
    ok_mem = growth <= MEMORY_BOUND
    ok_err = errors == 0 and not logs
    print(f"\nload average at the end {load1[0]:.1f}, {load1[1]:.1f}, {load1[2]:.1f}")
    rows = [
        ("key -> canvas redrawn, 1 session, no job (median, p95)",
         f"{median(base):.1f}, {p95(base):.1f} ms ({len(base)})", ""),
        (f"… {args.sessions} sessions + training job (median, p95)",
         f"{median(busy):.1f}, {p95(busy):.1f} ms ({len(busy)})", ""),
        ("ratio load / baseline (median, p95)",
         f"{median(busy) / median(base):.2f}, {p95(busy) / p95(base):.2f}", ""),
        ("exceptions in pages + tracebacks in the server log",
         f"{errors} + {len(logs)}", "PASS" if ok_err else "FAIL"),
        ("stalls (an action that timed out)", f"{stalls}", ""),
        ("server RSS after the warm-up", f"{mem_start:.0f} MB", ""),
        ("… peak during the load", f"{max(samples, default=float('nan')):.0f} MB", ""),
        (f"… {args.settle:.0f} s after the sessions closed",
         f"{mem_end:.0f} MB ({growth:+.1%}, bound <= +{MEMORY_BOUND:.0%})",
         "PASS" if ok_mem else "FAIL"),
    ]  # fmt: skip
    width = max(len(r[0]) for r in rows)
    print(f"{'figure':<{width}}  {'value':<40}  result")
    for name, value, verdict in rows:
        print(f"{name:<{width}}  {value:<40}  {verdict}")
    if args.json:
        args.json.write_text(json.dumps({
            "load_average": [load0, load1], "baseline_ms": base, "load_ms": busy,
            "memory_mb": {"start": mem_start, "samples": samples, "end": mem_end},
            "warmup": warm, "sessions": loaded, "server_tracebacks": logs,
        }, indent=2))  # fmt: skip
    return 0 if ok_err and ok_mem else 1


if __name__ == "__main__":
    sys.exit(main())
