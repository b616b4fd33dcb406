"""Builders shared by every test suite: a tiny trained digits checkpoint, a tiny untrained VAE,
a digit photo, the app's pages, a free port, and an AppTest app on temporary folders."""

from __future__ import annotations

import ast
import io
import json
import socket
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

ROOT = Path(__file__).resolve().parents[1]


FIXTURES = ROOT / "tests" / "fixtures"


def app_pages() -> list[tuple[str, str]]:
    """(script, url path) of every page app.py registers, read from its PAGES table."""
    tree = ast.parse((ROOT / "app.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "PAGES":
            rows = ast.literal_eval(node.value)
            return [(s, url) for s, _, _, url in rows if (ROOT / s).is_file()]
    raise AssertionError("app.py has no PAGES table")


def tiny_run(
    run_dir: Path,
    dataset: str = "digits",
    *,
    latent_dim: int = 4,
    steps: int = 150,
    seed: int = 0,
    beta: float = 1.0,
    image_size: int | None = None,
    hidden: tuple[int, ...] = (64,),
    metrics: bool = True,
) -> Path:
    """A small MLP VAE trained for a few Adam steps and saved as a run folder (a few seconds).

    The one trained-model builder of the test suites: with `metrics`, metrics.json gets the
    test ELBO, as a trained run would have; no training logs are written.
    """
    import torch

    from vae.checkpoint import save_model
    from vae.config import ModelConfig
    from vae.data import load_dataset
    from vae.model import VAE
    from vae.objectives import elbo

    torch.manual_seed(seed)
    ds = load_dataset(dataset, "train", image_size=image_size)
    cfg = ModelConfig(image_shape=ds.image_shape, latent_dim=latent_dim, arch="mlp", hidden=hidden)
    model = VAE(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(steps):
        idx = torch.randint(0, len(ds), (128,))
        loss = elbo(model, ds.x[idx], beta=beta).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    train = {"dataset": dataset, "beta": beta, "image_size": image_size}
    save_model(run_dir, model, dataset=ds.info(), train=train, command=f"tests: beta={beta}")
    if metrics:
        with torch.no_grad():
            test_x = load_dataset(dataset, "test", image_size=image_size).x
            test_elbo = float(elbo(model, test_x).elbo)
        (run_dir / "metrics.json").write_text(json.dumps({"test_elbo": test_elbo}))
    return run_dir


def tiny_digits_checkpoint(
    run_dir: Path, latent_dim: int = 4, steps: int = 150, seed: int = 0
) -> Path:
    """`tiny_run` on sklearn digits (the apps' tests' default model)."""
    return tiny_run(run_dir, "digits", latent_dim=latent_dim, steps=steps, seed=seed)


def digit_photo_png(size: int = 240) -> bytes:
    """A photo-like picture of a handwritten '7': dark ink on grey-white paper, a little blur.

    Uses the repository's photo fixture tests/fixtures/photo_7.jpg when it is there.
    """
    for pattern in ("photo_7.jpg", "photo_*.jpg", "*_photo.png"):
        found = sorted(FIXTURES.glob(pattern)) if FIXTURES.is_dir() else []
        if found:
            buf = io.BytesIO()
            Image.open(found[0]).save(buf, format="PNG")  # one format for every caller
            return buf.getvalue()
    rng = np.random.default_rng(0)
    paper = (225 + rng.normal(0, 6, (size, size))).clip(0, 255).astype(np.uint8)
    im = Image.fromarray(paper, "L").convert("RGB")
    d = ImageDraw.Draw(im)
    s = size / 240
    d.line(
        [(60 * s, 55 * s), (180 * s, 55 * s), (105 * s, 200 * s)],
        fill=(30, 30, 40),
        width=int(16 * s),
    )
    im = im.filter(ImageFilter.GaussianBlur(1.2))
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tiny_vae(
    latent_dim: int = 4,
    *,
    arch: str = "mlp",
    image_shape: tuple[int, int, int] = (1, 8, 8),
    hidden: tuple[int, ...] = (32,),
    seed: int = 0,
    **cfg,
):
    """An untrained `VAE` with a seeded initialisation, in eval mode (unit tests' model)."""
    import torch

    from vae.config import ModelConfig
    from vae.model import VAE

    torch.manual_seed(seed)
    config = ModelConfig(
        image_shape=image_shape, latent_dim=latent_dim, arch=arch, hidden=hidden, **cfg
    )
    return VAE(config).eval()


def app_test(dirs: dict, monkeypatch, query: dict[str, str] | None = None, **env: str):
    """The app through Streamlit's AppTest on `dirs` ("assets", "runs", "cache" folders), with
    extra environment variables (e.g. VAE_LIVE_DECODER="0"), opened from a URL with `query`
    parameters, after its first run."""
    import torch
    from streamlit.testing.v1 import AppTest

    for name in ("assets", "runs", "cache"):
        monkeypatch.setenv(f"VAE_{name.upper()}_DIR", str(dirs[name]))
    monkeypatch.setenv("VAE_DEVICE", "cpu")
    monkeypatch.setenv("VAE_APP_THREADS", str(torch.get_num_threads()))  # leave pytest's alone
    monkeypatch.setenv("VAE_UMAP_WARMUP", "0")  # no background compile; a UMAP fit compiles
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.query_params.update(query or {})
    at.run()
    return at


def ok(at) -> None:
    """No traceback and no error message on the page."""
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def far_mixture_run(run_dir: Path, *, components: int = 3, latent_dim: int = 4, at: float = 2.5):
    """A digits model with a learned mixture prior, trained one epoch by `vae.train`, whose
    prior is then moved far from N(0, I): every component at `at` with σ ≈ 0.02. A page that drew
    from N(0, I), or used the KL to N(0, I), shows it at once."""
    import torch

    from vae.checkpoint import load_run, save_model
    from vae.config import ModelConfig, TrainConfig
    from vae.train import train

    cfg = ModelConfig(
        image_shape=(1, 8, 8), latent_dim=latent_dim, arch="mlp", hidden=(32,), prior="mixture",
        prior_components=components,
    )  # fmt: skip
    train(cfg, TrainConfig(dataset="digits", epochs=1, lr=3e-3), run_dir, command="tests",
          progress_bar=False)  # fmt: skip
    run = load_run(run_dir)
    with torch.no_grad():
        run.model.prior.means.fill_(at)
        run.model.prior.logvars.fill_(-8.0)
    save_model(run_dir, run.model, dataset=run.meta["dataset"], train=run.meta["train"])
    return run_dir
