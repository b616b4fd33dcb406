"""Evaluate a trained run: ELBO, IWAE NLL, active units and KL per latent dimension.

python -m vae.evaluate runs/mnist --split test --iw-samples 5000
python -m vae.evaluate runs/mnist --limit 500 --json --save
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from vae.adapter import likelihood_missing
from vae.checkpoint import (
    METRICS_JSON,
    CheckpointError,
    Run,
    atomic_write_json,
    clean_stale_temps,
    read_json,
)
from vae.cliutil import add_run_arguments, error_line, open_run
from vae.data import DatasetError, ImageDataset, subset
from vae.latents import encode_dataset, run_dataset
from vae.metrics import active_units, evaluate_elbo, iwae_nll, kl_per_dim, mig
from vae.objectives import dynamic_binarize
from vae.record import binarize_rule
from vae.thresholds import ACTIVE_UNIT


def evaluate_run(
    run: Run,
    ds: ImageDataset,
    *,
    iw_samples: int = 1000,
    batch_size: int = 100,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Every metric of `run` on `ds`, as a JSON-ready dict."""
    model, x = run.model, ds.x
    binarize = binarize_rule(run.train.binarize, run.config.likelihood, ds.binary_like)
    if binarize:  # once, so the ELBO and the IWAE bound see the same binary images
        x = dynamic_binarize(x, torch.Generator().manual_seed(seed))
    out: dict[str, Any] = {
        "dataset": ds.name,
        "n": int(x.shape[0]),
        "binarized": binarize,
        "seed": seed,
        "latent_dim": model.config.latent_dim,
    }
    missing = likelihood_missing(run)  # a user's model without a likelihood has no ELBO
    if missing:
        out["no_likelihood"] = missing
    else:
        out.update(evaluate_elbo(model, x, batch_size=batch_size, seed=seed))
    if iw_samples > 0 and not missing:
        bar = tqdm(total=x.shape[0], desc=f"IWAE k={iw_samples}", unit="img", file=sys.stderr)
        with bar:
            out["iwae_nll"] = iwae_nll(
                model,
                x,
                k=iw_samples,
                batch_size=batch_size,
                seed=seed,
                progress=lambda done, total: bar.update(done - bar.n),
            )
        out["iw_samples"] = iw_samples
    count, activity = active_units(model, x)
    out["active_units"] = count
    out["activity"] = [round(v, 6) for v in activity.tolist()]
    out["kl_per_dim"] = [round(v, 6) for v in kl_per_dim(model, x).tolist()]
    if ds.factors is not None and ds.factor_sizes:
        mean, _ = encode_dataset(model, x)
        m = mig(mean, ds.factors, ds.factor_sizes)
        out["mig"] = m["mig"]
        out["mig_per_factor"] = dict(zip(ds.factor_names or [], m["per_factor"], strict=False))
    return out


def save_evaluation(run_dir: str | Path, split: str, results: dict[str, Any]) -> Path:
    """Merge `results` into RUN/metrics.json as {"evaluation": {split: results}}, atomically.
    Raises WriteError (metrics.json as it was, no temp file left) when RUN cannot be written."""
    path = Path(run_dir) / METRICS_JSON
    clean_stale_temps(run_dir)
    doc = read_json(path) if path.exists() else {}
    evaluation = doc.get("evaluation")
    evaluation = dict(evaluation) if isinstance(evaluation, dict) else {}
    evaluation[split] = results
    doc["evaluation"] = evaluation
    atomic_write_json(path, _finite(doc))
    return path


def _finite(obj: Any) -> Any:
    """JSON has no NaN: non-finite floats become null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj


def _what(run: Run) -> str:
    """'run          runs/mnist', or for a user's model its file, factory and weights."""
    spec = getattr(run, "spec", None)  # vae.adapter.UserRun
    if spec is None:
        return f"run          {run.path}"
    return f"model        {spec.file}:{spec.factory}, weights {spec.weights}"


def format_report(run: Run, split: str, r: dict[str, Any]) -> str:
    cfg = run.config
    lines = [
        f"{_what(run)}  ({cfg.arch}, latent_dim {cfg.latent_dim}, "
        f"{cfg.likelihood or 'no likelihood'})",
        f"data         {r['dataset']} {split}, {r['n']} images"
        + (f", dynamically binarized (seed {r['seed']})" if r["binarized"] else ""),
        f"ELBO         {r['elbo']:.2f} nats  (reconstruction {r['recon']:.2f}, KL {r['kl']:.2f})"
        if "elbo" in r
        else f"ELBO         —  {r.get('no_likelihood', '')}",
    ]
    if "iwae_nll" in r:
        lines.append(f"IWAE NLL     {r['iwae_nll']:.2f} nats  (k = {r['iw_samples']})")
    lines.append(
        f"active units {r['active_units']} of {r['latent_dim']}  (Cov_x E_q[z_d] > {ACTIVE_UNIT:g})"
    )
    if "mig" in r:
        lines.append(f"MIG          {r['mig']:.3f}")
    lines += ["", "dim    KL (nats)   activity"]
    for d, (kl, act) in enumerate(zip(r["kl_per_dim"], r["activity"], strict=True)):
        mark = "active" if act > ACTIVE_UNIT else ""
        lines.append(f"z{d:<4d} {kl:9.3f}   {act:8.4f}  {mark}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m vae.evaluate", description=__doc__.split("\n")[0])
    add_run_arguments(p)
    p.add_argument("--split", default="test", choices=("train", "test", "all"))
    p.add_argument(
        "--iw-samples",
        type=int,
        default=1000,
        help="importance samples per image for the IWAE bound (Burda et al. use 5000; 0 skips)",
    )
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--limit", type=int, default=None, help="evaluate only the first N images")
    p.add_argument("--seed", type=int, default=0, help="seed for sampling and binarization")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--save", action="store_true", help="also merge the results into metrics.json")
    args = p.parse_args(argv)
    if args.batch_size < 1 or args.iw_samples < 0 or (args.limit is not None and args.limit < 1):
        p.error("--batch-size and --limit must be >= 1, --iw-samples >= 0")
    try:
        run = open_run(p, args)
        ds = run_dataset(run, args.split, args.data_dir)
        if args.limit is not None:
            ds = subset(ds, torch.arange(min(args.limit, len(ds))))
        if len(ds) == 0:
            raise DatasetError(f"the {args.split} split of {ds.name!r} is empty")
        results = evaluate_run(
            run, ds, iw_samples=args.iw_samples, batch_size=args.batch_size, seed=args.seed
        )
        results = {"run": str(run.path), "split": args.split, **results}
    except (CheckpointError, DatasetError, OSError) as e:
        print(error_line(e), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    saved = None
    if args.save:
        try:
            saved = save_evaluation(run.path, args.split, results)
        except (CheckpointError, OSError) as e:  # the results are printed anyway, not lost
            saved = e
    if args.json:
        print(json.dumps(_finite(results)))
    else:
        print(format_report(run, args.split, results))
        if isinstance(saved, Path):
            print(f"\nsaved to {saved}")
    if isinstance(saved, Exception):
        print(f"{error_line(saved)} (the results above were not saved)", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
