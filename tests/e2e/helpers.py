"""Small builders shared by the app tests: a tiny trained digits checkpoint, a digit photo."""

from __future__ import annotations

import ast
import io
import json
import socket
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

ROOT = Path(__file__).resolve().parents[2]

# Counts distinct pictures of a canvas (found by CSS selector, inside shadow roots too), sampled
# once per displayed frame by a hash of its pixels: what the user sees, not the app's own counter.
# window.__watch.times holds the page time of each change.
FRAME_WATCH_JS = """(sel) => {
  const canvas = [document, ...[...document.querySelectorAll('*')].filter(h => h.shadowRoot)
      .map(h => h.shadowRoot)].map(r => r.querySelector(sel)).find(Boolean);
  window.__watch = { hashes: [], times: [], last: null, on: true };
  const step = () => {
    if (!window.__watch.on) return;
    const ctx = canvas.getContext('2d', { willReadFrequently: true });
    const px = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
    let h = 0;
    for (let i = 0; i < px.length; i += 4) h = (h * 31 + px[i]) | 0;
    if (h !== window.__watch.last) {
      window.__watch.hashes.push(h); window.__watch.times.push(performance.now());
      window.__watch.last = h;
    }
    requestAnimationFrame(step);
  };
  requestAnimationFrame(step);
}"""
FIXTURES = ROOT / "tests" / "fixtures"


def app_pages() -> list[tuple[str, str]]:
    """(script, url path) of every page app.py registers, read from its PAGES table."""
    tree = ast.parse((ROOT / "app.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "PAGES":
            rows = ast.literal_eval(node.value)
            return [(s, url) for s, _, _, url in rows if (ROOT / s).is_file()]
    raise AssertionError("app.py has no PAGES table")


def tiny_digits_checkpoint(
    run_dir: Path, latent_dim: int = 4, steps: int = 150, seed: int = 0
) -> Path:
    """Train a small MLP VAE on sklearn digits for a few Adam steps and save it (a few seconds)."""
    import torch

    from vae.checkpoint import save_model
    from vae.config import ModelConfig
    from vae.data import load_dataset
    from vae.model import VAE
    from vae.objectives import elbo

    torch.manual_seed(seed)
    ds = load_dataset("digits", "train")
    cfg = ModelConfig(image_shape=(1, 8, 8), latent_dim=latent_dim, arch="mlp", hidden=(64,))
    model = VAE(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(steps):
        idx = torch.randint(0, len(ds), (128,))
        loss = elbo(model, ds.x[idx]).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        test_elbo = float(elbo(model, load_dataset("digits", "test").x).elbo)
    save_model(run_dir, model, dataset=ds.info(), train={"dataset": "digits"}, command="tests")
    (run_dir / "metrics.json").write_text(json.dumps({"test_elbo": test_elbo}))
    return run_dir


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
