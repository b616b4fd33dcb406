"""Encode your own images: posterior mean and std, ELBO, and the nearest training images.

python -m vae.encode runs/mnist photo_of_a_7.jpg drawing.png --k 5
python -m vae.encode runs/mnist *.png --json        # one JSON object per line

The training images' posterior means are encoded once and kept in the app's disk cache
(`vae.latents.cached_means`), so later calls on the same weights and data start at once.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image

from vae.adapter import likelihood_missing
from vae.checkpoint import CheckpointError, Run
from vae.cliutil import add_run_arguments, error_line, open_run
from vae.data import DatasetError
from vae.imageio import ImageError, open_image
from vae.latents import cached_means, nearest
from vae.metrics import per_image_elbo
from vae.preprocess import Preprocessed, PreprocessError, preprocess


@dataclass
class Encoded:
    """One image seen through the model."""

    mean: torch.Tensor  # (D,)
    std: torch.Tensor  # (D,)
    elbo: float  # nats; higher is more typical of the training data
    nearest: list[dict[str, Any]]  # [{"index", "label", "label_name", "distance"}], nearest first
    pre: Preprocessed  # the model input and the preprocessing steps

    def to_json(self) -> dict[str, Any]:
        return {
            "mean": [round(v, 6) for v in self.mean.tolist()],
            "std": [round(v, 6) for v in self.std.tolist()],
            "elbo": self.elbo if math.isfinite(self.elbo) else None,
            "nearest": self.nearest,
        }


@torch.no_grad()
def encode_image(
    run: Run,
    img: Image.Image,
    train_means: torch.Tensor,
    train_labels: torch.Tensor | None = None,
    k: int = 5,
    *,
    label_names: list[str] | None = None,
    invert: bool | None = None,
) -> Encoded:
    """Preprocess `img` like the run's dataset, encode it, and find its k nearest training images.

    `train_means` (N, D) are the posterior means of the training set (`encode_dataset`), and
    `train_labels` (N,) their labels or None. Raises `PreprocessError` for unusable images.
    """
    pre = preprocess(img, run.dataset, invert=invert)
    model = run.model
    x = pre.x.to(next(model.parameters()).device)  # (1, C, H, W)
    q = model.encode(x)
    mean, std = q.mean[0].float().cpu(), q.std[0].float().cpu()  # (D,), (D,)
    no_elbo = likelihood_missing(run)  # a user's model without a likelihood: NaN, said so
    elbo = math.nan if no_elbo else float(per_image_elbo(model, x)[0])
    idx, dist = nearest(mean, train_means, k)
    hits = []
    for i, d in zip(idx.tolist(), dist.tolist(), strict=True):
        label = None if train_labels is None else int(train_labels[i])
        known = label_names and label is not None and 0 <= label < len(label_names)
        name = label_names[label] if known else None
        hits.append({"index": i, "label": label, "label_name": name, "distance": round(d, 6)})
    return Encoded(mean=mean, std=std, elbo=elbo, nearest=hits, pre=pre)


def format_encoded(path: str, enc: Encoded) -> str:
    vec = lambda t: "[" + " ".join(f"{v:+.2f}" for v in t.tolist()) + "]"
    near = ", ".join(
        f"#{h['index']} ({h['label_name'] or h['label']}, {h['distance']:.2f})" for h in enc.nearest
    )
    return "\n".join(
        [
            path,
            f"  mean     {vec(enc.mean)}",
            f"  std      {vec(enc.std)}",
            f"  ELBO     {enc.elbo:.2f} nats" if math.isfinite(enc.elbo) else "  ELBO     —",
            f"  nearest  {near}" if enc.nearest else "  nearest  (none)",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m vae.encode", description=__doc__.split("\n")[0])
    add_run_arguments(p)
    p.add_argument("images", nargs="+", help="PNG, JPEG, WebP, BMP or GIF files")
    p.add_argument("--k", type=int, default=5, help="how many nearest training images to show")
    p.add_argument("--json", action="store_true", help="print one JSON object per image and line")
    p.add_argument(
        "--no-cache",
        action="store_true",
        help="re-encode the training images (and refresh their means in the disk cache)",
    )
    args = p.parse_args(argv)
    if args.k < 0:
        p.error("--k must be >= 0")
    try:
        run = open_run(p, args)
        train = cached_means(run, "train", args.data_dir, refresh=args.no_cache)
    except (CheckpointError, DatasetError, OSError) as e:
        print(error_line(e), file=sys.stderr)
        return 2

    failed = 0
    for path in args.images:
        try:
            img = open_image(path)
            enc = encode_image(
                run, img, train.mean, train.labels, args.k, label_names=train.label_names
            )
        except (ImageError, PreprocessError) as e:
            failed += 1
            if args.json:
                print(json.dumps({"image": path, "error": str(e)}), flush=True)
            else:
                print(f"{path}\n  error: {e}", flush=True)
            continue
        if args.json:
            print(json.dumps({"image": path, **enc.to_json()}), flush=True)
        else:
            print(format_encoded(path, enc), flush=True)
    if failed:
        print(f"error: {failed} of {len(args.images)} images could not be encoded", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
