"""One MNIST epoch of the 784-400-20 MLP VAE at batch 128: our trainer vs a per-item DataLoader.

    VAE_DATA_DIR=../shared/data python benchmarks/train_speed.py [--threads 2] [--repeats 1]

The baseline is the usual torchvision-style pipeline: a Dataset whose __getitem__ turns one uint8
array into a PIL image and then into a float tensor (what ToTensor does), batched by a DataLoader.
Our trainer keeps the whole dataset as one tensor and slices shuffled indices. Both use the same
model, objective (dynamic binarization + ELBO), optimiser and thread count, measured in this run.
Target: ours / baseline <= 0.4.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
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
    """torchvision.datasets.MNIST + transforms.ToTensor(), without torchvision."""

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        self.images, self.labels = images, labels  # (N, 28, 28) uint8, (N,)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        img = Image.fromarray(self.images[i], mode="L")
        x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).unsqueeze(0)  # (1, H, W)
        return x, int(self.labels[i])


def baseline_epoch(images: np.ndarray, labels: np.ndarray, seed: int) -> float:
    torch.manual_seed(seed)
    model = VAE(CFG)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0, fused=True)
    loader = DataLoader(PerItemMNIST(images, labels), batch_size=128, shuffle=True, drop_last=True)
    t0 = time.perf_counter()
    for x, _ in loader:
        x = dynamic_binarize(x)
        loss = elbo(model, x).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 100.0)
        opt.step()
    return time.perf_counter() - t0


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
    images = (ds.x[:, 0] * 255).round().to(torch.uint8).numpy()
    labels = ds.y.numpy()
    ours, base = [], []
    for r in range(args.repeats):  # interleaved, so drift in machine load hits both alike
        base.append(baseline_epoch(images, labels, seed=r))
        t, sps = ours_epoch(seed=r)
        ours.append(t)
    o, b = min(ours), min(base)
    print(f"threads={args.threads}  N={len(images)}  batch=128  model=mlp 784-400-20")
    print(f"per-item Dataset + DataLoader : {b:7.2f} s/epoch  ({len(images) / b:8.0f} samples/s)")
    print(f"vae.train (in-memory slices)  : {o:7.2f} s/epoch  ({len(images) / o:8.0f} samples/s)")
    ratio = o / b
    print(
        f"ratio ours/baseline = {ratio:.3f}  (target <= 0.4)  {'PASS' if ratio <= 0.4 else 'FAIL'}"
    )


if __name__ == "__main__":
    main()
