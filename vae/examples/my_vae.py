"""A plain PyTorch VAE for the 8x8 digits, trained by a plain loop and saved with safetensors.

Nothing here uses this project: it is the kind of file you bring. From the repository root:

    python vae/examples/my_vae.py --out my_vae.safetensors     # about 10 s on a laptop CPU
    streamlit run app.py -- --model vae/examples/my_vae.py:build \\
        --weights my_vae.safetensors --data digits
"""

import argparse

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn


class MyVAE(nn.Module):
    likelihood = "bernoulli"  # optional: p(x|z), for the ELBO and the IWAE bound

    def __init__(self, latent_dim: int = 8, hidden: int = 128) -> None:
        super().__init__()
        self.enc = nn.Sequential(
            nn.Flatten(), nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 2 * latent_dim)
        )
        self.dec = nn.Sequential(
            nn.Linear(latent_dim, hidden), nn.ReLU(), nn.Linear(hidden, 64), nn.Sigmoid()
        )

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.enc(x).chunk(2, dim=-1)  # mean, logvar: (B, D) each

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.dec(z).view(-1, 1, 8, 8)  # image mean in [0, 1]: (B, 1, 8, 8)


def build() -> MyVAE:
    return MyVAE()


def train(out: str, steps: int = 3000, seed: int = 0) -> MyVAE:
    from sklearn.datasets import load_digits

    x = torch.tensor(load_digits().images / 16.0, dtype=torch.float32).unsqueeze(1)  # (N, 1, 8, 8)
    x = x[torch.randperm(len(x), generator=torch.Generator().manual_seed(0))[270:]]  # the app's
    torch.manual_seed(seed)  # test split (270 images, vae.data.seeded_split) is left out
    model = build()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for step in range(steps):
        xb = x[torch.randint(0, len(x), (128,))]
        mean, logvar = model.encode(xb)
        z = mean + torch.randn_like(mean) * torch.exp(0.5 * logvar)  # reparameterised sample
        recon = F.binary_cross_entropy(model.decode(z), xb, reduction="sum") / len(xb)
        kl = -0.5 * torch.sum(1 + logvar - mean.pow(2) - logvar.exp()) / len(xb)
        opt.zero_grad()
        (recon + kl).backward()
        opt.step()
        if step % 500 == 0 or step == steps - 1:
            print(f"step {step:5d}  -ELBO {recon.item() + kl.item():7.2f} nats")
    save_file(model.state_dict(), out)
    return model


if __name__ == "__main__":
    p = argparse.ArgumentParser(description="Train the example VAE on the 8x8 digits.")
    p.add_argument("--out", default="my_vae.safetensors", help="where to save the weights")
    p.add_argument("--steps", type=int, default=3000)
    args = p.parse_args()
    train(args.out, args.steps)
