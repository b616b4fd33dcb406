"""One MNIST epoch of the 784-400-20 MLP VAE at batch 128: our trainer vs a per-item DataLoader.

    VAE_DATA_DIR=../shared/data python benchmarks/train_speed.py [--threads 2] [--repeats 1]

The baseline is the usual torchvision-style pipeline: a Dataset that does what torchvision's
MNIST.__getitem__ and ToTensor do (one uint8 image -> PIL image -> float tensor), batched by a
DataLoader.
Our trainer keeps the whole dataset as one tensor and slices shuffled indices. Both use the same
model, objective (dynamic binarization + ELBO), optimiser and thread count, measured in this run.
Target: ours / baseline <= 0.4.

A third, informative line is the floor: the same steps on batches sliced in order from one
contiguous tensor, with no shuffling, indexing, seeding, logging or checks. No data pipeline can
beat it, so floor / baseline is the best ratio this model and objective allow on this machine.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vae import VAE, ModelConfig, TrainConfig  # noqa: E402
from vae.data import load_dataset  # noqa: E402
from vae.objectives import dynamic_binarize, elbo  # noqa: E402
from vae.train import train  # noqa: E402

CFG = ModelConfig(image_shape=(1, 28, 28), arch="mlp", hidden=(400,), latent_dim=20)


class PerItemMNIST(Dataset):
    """torchvision.datasets.MNIST with transforms.ToTensor(), step for step, without torchvision.

    Like torchvision, it holds the images as one uint8 tensor and the labels as an int64 tensor;
    __getitem__ is MNIST.__getitem__ followed by functional.to_tensor on the PIL image.
    """

    def __init__(self, data: torch.Tensor, targets: torch.Tensor) -> None:
        self.data, self.targets = data, targets  # (N, 28, 28) uint8, (N,) int64

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        img, target = self.data[index], int(self.targets[index])
        img = Image.fromarray(img.numpy(), mode="L")  # MNIST.__getitem__
        x = torch.from_numpy(np.array(img, np.uint8, copy=True))  # to_tensor(pic) from here on
        x = x.view(img.size[1], img.size[0], len(img.getbands()))
        x = x.permute((2, 0, 1)).contiguous()
        return x.to(dtype=torch.get_default_dtype()).div(255), target  # (1, H, W)


def timed_epoch(batches: Iterable[torch.Tensor], seed: int) -> float:
    """Seconds for one pass of the same model, objective and optimiser over `batches`."""
    torch.manual_seed(seed)
    model = VAE(CFG)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0, fused=True)
    t0 = time.perf_counter()
    for x in batches:  # for the baseline, the DataLoader's per-item work happens here
        x = dynamic_binarize(x)
        loss = elbo(model, x).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 100.0)
        opt.step()
    return time.perf_counter() - t0


def baseline_epoch(images: torch.Tensor, labels: torch.Tensor, seed: int) -> float:
    loader = DataLoader(PerItemMNIST(images, labels), batch_size=128, shuffle=True, drop_last=True)
    return timed_epoch((x for x, _ in loader), seed)


def floor_epoch(x: torch.Tensor, seed: int) -> float:
    return timed_epoch(x[: len(x) // 128 * 128].split(128), seed)  # (128, 1, 28, 28) views


def ours_epoch(seed: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as d:
        cfg = TrainConfig(dataset="mnist", epochs=1, batch_size=128, lr=1e-3, seed=seed)
        res = train(CFG, cfg, Path(d) / "run", progress_bar=False, log_every=50)
    return res.metrics["train_time_s"], res.metrics["train_samples_per_s"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ds = load_dataset("mnist", "train")
    images = (ds.x[:, 0] * 255).round().to(torch.uint8)  # (N, 28, 28), as in the IDX file
    labels = ds.y.long()
    ours, base, floor = [], [], []
    for r in range(args.repeats):  # interleaved, so drift in machine load hits all alike
        base.append(baseline_epoch(images, labels, seed=r))
        t, sps = ours_epoch(seed=r)
        ours.append(t)
        floor.append(floor_epoch(ds.x, seed=r))
    o, b, f = min(ours), min(base), min(floor)
    print(f"threads={args.threads}  N={len(images)}  batch=128  model=mlp 784-400-20")
    print(f"per-item Dataset + DataLoader : {b:7.2f} s/epoch  ({len(images) / b:8.0f} samples/s)")
    print(f"vae.train (in-memory slices)  : {o:7.2f} s/epoch  ({len(images) / o:8.0f} samples/s)")
    print(f"floor: bare loop, in order    : {f:7.2f} s/epoch  ({len(images) / f:8.0f} samples/s)")
    ratio = o / b
    print(f"ratio floor/baseline = {f / b:.3f}  (the best any data pipeline can reach here)")
    print(
        f"ratio ours/baseline = {ratio:.3f}  (target <= 0.4)  {'PASS' if ratio <= 0.4 else 'FAIL'}"
    )


if __name__ == "__main__":
    main()
