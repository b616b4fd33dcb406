"""`python -m vae.encode`: the first call encodes the 60,000 MNIST training images, a second call
on the same run reads their means from the disk cache.

    VAE_DATA_DIR=/work/shared/data python3 benchmarks/encode_bench.py [--run assets/mnist-conv]

Copies the run's config.json and weights to a temporary folder (so the cache starts empty; the
weights hash, and so the cache key, is the same), then times whole CLI processes on one photo:
the first call (no cache: load MNIST, encode it, write the cache; what every call cost before),
then `--repeats` second calls (median), and `python -c "import vae.encode"` as the floor a call
cannot go below. Checks that every call printed the same JSON.

Targets: a second call <= 3 s; second / first is printed as the ratio.
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
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 3.0


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stderr}")
    return wall, r.stdout


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--run", default=str(ROOT / "assets" / "mnist-conv"))
    p.add_argument("--image", default=str(ROOT / "tests" / "fixtures" / "photo_7.jpg"))
    p.add_argument("--repeats", type=int, default=3, help="second calls to time (median)")
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    data = Path(os.environ.get("VAE_DATA_DIR") or "data")
    if not (data / "mnist" / "train-images-idx3-ubyte.gz").is_file():
        sys.exit(f"MNIST not found under {data}: set VAE_DATA_DIR to a folder holding mnist/*.gz")
    src = Path(args.run)
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / src.name
        run.mkdir()
        for name in ("config.json", "model.safetensors"):
            shutil.copy2(src / name, run / name)
        env = {**os.environ, "PYTHONPATH": str(ROOT), "VAE_CACHE_DIR": str(Path(tmp) / "user")}
        cmd = [sys.executable, "-m", "vae.encode", str(run), args.image, "--json"]
        cmd += ["--device", args.device]
        print(f"run: {src} (copied to {run}), image: {args.image}, device: {args.device}")
        print(f"cpu cores: {os.cpu_count()}, load average at start: {os.getloadavg()[0]:.1f}")

        floor, _ = timed([sys.executable, "-c", "import vae.encode"], env)
        first, out = timed(cmd, env)
        entries = sorted(p.name for p in (run / ".cache").glob("means-v*.npz"))
        seconds, outs = [], []
        for _ in range(args.repeats):
            wall, o = timed(cmd, env)
            seconds.append(wall)
            outs.append(o)
        same = all(json.loads(o) == json.loads(out) for o in outs)
        size = sum((run / ".cache" / e).stat().st_size for e in entries)
    second = statistics.median(seconds)
    print(f"cache entry: {', '.join(entries)} ({size / 1e6:.1f} MB)")
    print(f"load average at end: {os.getloadavg()[0]:.1f}\n")
    rows = [
        ("first call (encodes 60,000 images)", f"{first:.2f} s", "-", "-"),
        (
            f"second call (median of {args.repeats})",
            f"{second:.2f} s (all: {', '.join(f'{s:.2f}' for s in seconds)})",
            f"<= {TARGET_S:.0f} s",
            "PASS" if second <= TARGET_S else "FAIL",
        ),
        ("second / first", f"{second:.2f} / {first:.2f} s = {second / first:.3f}", "-", "-"),
        ("  floor: python -c 'import vae.encode'", f"{floor:.2f} s", "-", "-"),
        ("same JSON on every call", str(same), "True", "PASS" if same else "FAIL"),
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    print(
        "  ".join(
            h.ljust(w)
            for h, w in zip(("figure", "measured", "target", "result"), widths, strict=True)
        )
    )
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    return 0 if same and second <= TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
