"""UMAP's one-off costs: install size, the first-call numba compile, and whether the warm-up
hides it.

    python3 benchmarks/umap_bench.py [--n 10000] [--dim 32]

Latents: a synthetic clustered set, N x D (10 Gaussian blobs), the size of Explore's default map.
Each case runs in a fresh interpreter, so each pays the compile that a new server process pays:
- cold: `vae.projection.fit(z, "umap")` straight away (import, compile and fit: the user's wait
  without the warm-up), then a second fit in the same process (the steady-state baseline);
- warmed: the background warm-up (`warm_up_umap`, what Explore starts) runs to the end first;
  then the same fit. Target: that first fit <= 1.25 x the steady-state fit (the compile hidden);
- the warm-up alone, twice with one fresh NUMBA_CACHE_DIR: what numba's disk cache saves (the
  first is what the first server start after `pip install` pays; the cold and warmed cases then
  run with the cache filled, as every later start does).
Takes a few minutes; run it once, on an otherwise quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("umap-learn", "pynndescent", "numba", "llvmlite")  # what `pip install umap-learn` adds
CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import numpy as np
from vae import projection as P
from vae.projection import umap as U
mode, n, dim = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(0)
centres = rng.normal(scale=4.0, size=(10, dim))
x = (centres[rng.integers(0, 10, n)] + rng.normal(size=(n, dim))).astype(np.float32)  # (n, dim)
out = {"import_s": time.perf_counter() - t0}
if mode in ("warmed", "warm-up"):
    t = time.perf_counter()
    U._WARM_UP.start(U.WARM_UP_NICE, 0.0)  # what warm_up_umap() starts, without its delay
    U._WARM_UP.done.wait()
    out["warm_up_s"] = time.perf_counter() - t
if mode != "warm-up":
    for name, seed in (("first", 0), ("second", 1)):
        t = time.perf_counter()
        proj = P.fit(x, "umap", seed=seed)
        out[f"{name}_fit_s"] = time.perf_counter() - t
        t = time.perf_counter()
        proj.transform(x[:1] + 0.1)
        out[f"{name}_transform_s"] = time.perf_counter() - t
print(json.dumps(out))
"""


def install_size() -> list[tuple[str, str, float]]:
    """(package, version, MB on disk) from each installed distribution's file list."""
    rows = []
    for name in PACKAGES:
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            rows.append((name, "missing", 0.0))
            continue
        size = sum(p.locate().stat().st_size for p in dist.files or [] if p.locate().is_file())
        rows.append((name, dist.version, size / 1e6))
    return rows


def child(mode: str, n: int, dim: int, env: dict[str, str]) -> dict[str, float]:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, mode, str(n), str(dim)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "ignore", **env},
        check=False,
    )
    if proc.returncode:
        raise SystemExit(f"{mode} run failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--dim", type=int, default=32)
    args = ap.parse_args()

    sizes = install_size()
    if any(v == "missing" for _, v, _ in sizes):
        raise SystemExit("umap-learn is not installed: pip install umap-learn")
    print(f"latents: synthetic, 10 clusters, N={args.n}, D={args.dim}")
    print(f"cpu cores: {os.cpu_count()}, load average at start: {os.getloadavg()[0]:.1f}")
    for name, version, mb in sizes:
        print(f"  {name}=={version}: {mb:.1f} MB")
    total_mb = sum(mb for *_, mb in sizes)

    with tempfile.TemporaryDirectory() as tmp:
        empty = {"NUMBA_CACHE_DIR": tmp}  # numba's disk cache starts empty: a fresh install
        t = time.perf_counter()
        cache_cold = child("warm-up", args.n, args.dim, empty)
        cache_warm = child("warm-up", args.n, args.dim, empty)
        cold = child("cold", args.n, args.dim, empty)
        warmed = child("warmed", args.n, args.dim, empty)
        wall = time.perf_counter() - t
    print(f"four fresh interpreters: {wall:.0f} s; load average at end: {os.getloadavg()[0]:.1f}")
    for name, r in (("cold", cold), ("warmed", warmed)):
        print(f"  {name}: " + ", ".join(f"{k} {v:.2f}" for k, v in r.items()))

    steady = cold["second_fit_s"]
    first_map = cold["import_s"] + cold["first_fit_s"]
    ratio = warmed["first_fit_s"] / steady
    rows = [
        ("install size, 4 packages", f"{total_mb:.0f} MB", "info", ""),
        (
            "warm-up (compile), numba cache empty / filled",
            f"{cache_cold['import_s'] + cache_cold['warm_up_s']:.1f} / "
            f"{cache_warm['import_s'] + cache_warm['warm_up_s']:.1f} s",
            "info",
            "",
        ),
        (
            "first map, no warm-up: import + fit",
            f"{cold['import_s']:.1f} + {cold['first_fit_s']:.1f} = {first_map:.1f} s "
            f"({first_map / steady:.1f} x steady)",
            "info",
            "",
        ),
        ("steady-state fit (2nd in a process)", f"{steady:.1f} s", "info", ""),
        (
            "first fit after the warm-up / steady",
            f"{warmed['first_fit_s']:.1f} / {steady:.1f} s = {ratio:.2f}",
            "<= 1.25",
            "PASS" if ratio <= 1.25 else "FAIL",
        ),
        (
            "first transform, 1 point: cold / warmed",
            f"{cold['first_transform_s'] * 1e3:.0f} / {warmed['first_transform_s'] * 1e3:.0f} ms",
            "info",
            "",
        ),
    ]
    print()
    print(f"{'figure':<46}{'measured':<46}{'target':<10}result")
    for name, measured, target, result in rows:
        print(f"{name:<46}{measured:<46}{target:<10}{result}")


if __name__ == "__main__":
    main()
