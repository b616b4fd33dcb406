"""The browser decoder (vae/ui/live/decoder.js) against torch, in headless Chromium.

Each case exports a decoder with vae/export.py, hands the packed bytes to the runtime on a blank
page, decodes 20 seeded latents there and compares the image means with `model.decode(z)` in
float32. Cases: every shipped checkpoint, random project VAEs, and small custom decoders that
use every layer and activation the runtime has.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vae.checkpoint import load_run
from vae.config import ModelConfig
from vae.export import export_decoder
from vae.model import VAE

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]
DECODER_JS = ROOT / "vae" / "ui" / "live" / "decoder.js"
ASSETS = ROOT / "assets"
CHECKPOINTS = sorted(p.name for p in ASSETS.glob("*") if (p / "config.json").is_file())
N_Z = 20
TOL = 1e-3

_DECODE_JS = """([payload, zs, n]) => {
  const bin = atob(payload), u8 = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) u8[i] = bin.charCodeAt(i);
  const dec = VAEDecoder.parse(u8);
  const outs = zs.map((z) => VAEDecoder.decode(dec, z));
  const all = new Float32Array(outs.length * n);
  outs.forEach((o, i) => {
    if (o.length !== n) throw new Error("bad output length " + o.length);
    all.set(o, i * n);
  });
  const bytes = new Uint8Array(all.buffer);
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000)
    s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  return { id: dec.id, shape: dec.spec.image_shape, out: btoa(s) };
}"""


@pytest.fixture(scope="module")
def live(browser):
    page = browser.new_page()
    page.set_content("<html><body></body></html>")
    page.add_script_tag(content=DECODER_JS.read_text() + "\nwindow.VAEDecoder = VAEDecoder;")
    yield page
    page.close()


def check_parity(page, model: nn.Module, latent_dim: int | None = None, seed: int = 0) -> float:
    """Decode N_Z seeded z in the browser and with torch; assert they agree. Returns max diff."""
    model = model.float().eval()
    exp = export_decoder(model, latent_dim=latent_dim)
    dim = exp.spec["latent_dim"]
    z = np.random.default_rng(seed).standard_normal((N_Z, dim)).astype(np.float32)
    with torch.no_grad():
        ref = model.decode(torch.from_numpy(z)).numpy()
    n = int(np.prod(ref.shape[1:]))
    res = page.evaluate(_DECODE_JS, [base64.b64encode(exp.pack()).decode(), z.tolist(), n])
    assert res["id"] == exp.id
    assert tuple(res["shape"]) == ref.shape[1:]
    got = np.frombuffer(base64.b64decode(res["out"]), dtype="<f4").reshape(ref.shape)
    assert np.isfinite(got).all()
    diff = float(np.abs(got - ref).max())
    assert diff <= TOL, f"browser vs torch max |diff| {diff:.3g} > {TOL}"
    # a decoder that ignores z (or a runtime that returns a constant) must not pass
    spread = float(np.abs(ref - ref[:1]).max())
    assert spread > 20 * TOL, f"outputs hardly depend on z (spread {spread:.3g})"
    assert float(np.abs(got - got[:1]).max()) > 20 * TOL
    return diff


def scale_weights(module: nn.Module, gain: float) -> nn.Module:
    """Multiply every Linear/conv weight by `gain` (in place)."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
                m.weight.mul_(gain)
    return module


# --- shipped checkpoints -----------------------------------------------------------------------
@pytest.mark.parametrize("name", CHECKPOINTS)
def test_shipped_checkpoint_parity(live, name):
    check_parity(live, load_run(ASSETS / name).model)


def test_all_shipped_checkpoints_are_covered():
    assert CHECKPOINTS, "no checkpoints under assets/"


# --- random project VAEs -----------------------------------------------------------------------
RANDOM_VAES = [
    # (arch, (C, H, W), hidden, dense, likelihood)
    ("mlp", (1, 8, 8), (32,), 0, "bernoulli"),
    ("mlp", (3, 28, 28), (48, 24), 0, "gaussian"),
    ("mlp", (1, 64, 64), (32,), 0, "gaussian"),
    ("mlp", (3, 64, 64), (16,), 0, "bernoulli"),
    ("conv", (1, 8, 8), (8, 16), 0, "bernoulli"),
    ("conv", (3, 8, 8), (8,), 16, "gaussian"),
    ("conv", (1, 28, 28), (8, 16, 16), 0, "bernoulli"),
    ("conv", (3, 28, 28), (8, 16), 32, "gaussian"),
    ("conv", (1, 64, 64), (8, 16), 0, "gaussian"),
    ("conv", (3, 64, 64), (4, 8, 16), 24, "bernoulli"),
    ("conv", (3, 20, 36), (8, 8, 8, 16), 0, "gaussian"),  # uneven crop, 4 layers
]


@pytest.mark.parametrize(
    "arch,shape,hidden,dense,likelihood",
    RANDOM_VAES,
    ids=[
        f"{a}-{'x'.join(map(str, s))}-{'-'.join(map(str, h))}-d{d}-{lk}"
        for a, s, h, d, lk in RANDOM_VAES
    ],
)
def test_random_vae_parity(live, arch, shape, hidden, dense, likelihood):
    torch.manual_seed(sum(shape) + len(hidden) + dense)
    cfg = ModelConfig(
        image_shape=shape,
        latent_dim=6,
        arch=arch,
        hidden=hidden,
        dense=dense,
        likelihood=likelihood,
        sigma_mode="learned" if likelihood == "gaussian" else "fixed",
    )
    model = VAE(cfg)
    # At its random init a deep decoder maps every z to nearly the same grey image; larger
    # weights make the output depend on z, so that the comparison means something.
    scale_weights(model.decoder, 2.0 if arch == "mlp" else 3.0)
    check_parity(live, model, seed=len(hidden))


# --- custom decoders: every runtime op ---------------------------------------------------------
class Custom(nn.Module):
    """A decoder from parts: `fn(parts, z)` wires the layers in `parts`."""

    def __init__(self, fn: Callable, seed: int = 0, **parts: nn.Module) -> None:
        super().__init__()
        self.parts = nn.ModuleDict(parts)
        self.fn = fn
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():  # random BatchNorm statistics, so that folding really is tested
            for m in self.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    n = m.num_features
                    m.running_mean.copy_(torch.randn(n, generator=g) * 0.5)
                    m.running_var.copy_(torch.rand(n, generator=g) * 2.5 + 0.2)
                    if m.affine:
                        m.weight.copy_(torch.rand(n, generator=g) * 1.5 + 0.3)
                        m.bias.copy_(torch.randn(n, generator=g) * 0.5)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.fn(self.parts, z)


def _ops(model: nn.Module, latent_dim: int) -> list[str]:
    return [layer["op"] for layer in export_decoder(model, latent_dim=latent_dim).spec["layers"]]


def test_conv2d_stride_padding_upsample_crop(live):
    def fn(p, z):
        h = p["fc"](z).view(-1, 4, 8, 8)
        h = F.relu(p["c1"](h))  # 3x3, stride 1, padding 1: 8x8
        h = p["act"](p["c2"](h))  # 3x3, stride 2, padding 1: 4x4
        h = p["up"](h)  # nn.Upsample(scale_factor=2): 8x8
        h = p["c3"](h)  # (3, 5) kernel, stride (1, 2), padding (1, 2), no bias: 8x4
        h = F.interpolate(F.silu(h), scale_factor=2)  # 16x8
        h = p["drop"](p["idn"](p["c4"](h)))  # 5x3, stride 1, padding (0, 1): 12x8
        h = p["c5"](h)  # 2x2 kernel, stride 1, padding 0: 11x7
        return torch.sigmoid(h[:, :, 1:-1, 2:])  # crop to 9x5

    model = Custom(
        fn,
        fc=nn.Linear(5, 256),
        c1=nn.Conv2d(4, 8, 3, stride=1, padding=1),
        c2=nn.Conv2d(8, 8, 3, stride=2, padding=1),
        act=nn.LeakyReLU(0.2),
        up=nn.Upsample(scale_factor=2),
        c3=nn.Conv2d(8, 6, (3, 5), stride=(1, 2), padding=(1, 2), bias=False),
        c4=nn.Conv2d(6, 4, (5, 3), padding=(0, 1)),
        idn=nn.Identity(),
        drop=nn.Dropout(0.3),
        c5=nn.Conv2d(4, 3, 2),
    )
    scale_weights(model, 2.0)
    ops = _ops(model, 5)
    assert ops.count("conv2d") == 5 and ops.count("upsample") == 2 and "crop" in ops
    with torch.no_grad():
        assert model.decode(torch.zeros(1, 5)).shape == (1, 3, 9, 5)
    check_parity(live, model, latent_dim=5)


def test_conv_transpose2d_variants(live):
    def fn(p, z):
        h = p["fc"](z).view(-1, 6, 3, 3)
        h = torch.tanh(p["t1"](h))  # 3x3 kernel, stride 2, padding 1, output_padding 1: 6x6
        h = F.elu(p["t2"](h), 0.7)  # (4, 3) kernel, stride (2, 1), padding (1, 0): 12x8
        h = p["t3"](h)  # 1x1 stride 1, no bias
        return torch.sigmoid(h)

    model = Custom(
        fn,
        fc=nn.Linear(4, 54),
        t1=nn.ConvTranspose2d(6, 5, 3, stride=2, padding=1, output_padding=1),
        t2=nn.ConvTranspose2d(5, 4, (4, 3), stride=(2, 1), padding=(1, 0)),
        t3=nn.ConvTranspose2d(4, 3, 1, bias=False),
    )
    scale_weights(model, 2.0)
    assert _ops(model, 4).count("conv_transpose2d") == 3
    check_parity(live, model, latent_dim=4)


def test_batchnorm_folded(live):
    def fn(p, z):
        h = F.softplus(p["bn0"](p["fc"](z)), beta=2.0, threshold=3.0)  # BatchNorm1d into Linear
        h = p["bn1"](p["t1"](h.view(-1, 8, 4, 4)))  # BatchNorm2d into ConvTranspose2d
        h = p["bn1b"](h)  # a second BatchNorm after a folded one folds again
        h = F.silu(h)
        h = F.elu(p["bn2"](p["c1"](h)))  # into Conv2d (no bias)
        h = p["bn3"](p["c2"](h))  # BatchNorm without affine parameters
        return torch.sigmoid(h)

    model = Custom(
        fn,
        fc=nn.Linear(6, 128),
        bn0=nn.BatchNorm1d(128),
        t1=nn.ConvTranspose2d(8, 6, 4, stride=2, padding=1),
        bn1=nn.BatchNorm2d(6),
        bn1b=nn.BatchNorm2d(6),
        c1=nn.Conv2d(6, 5, 3, padding=1, bias=False),
        bn2=nn.BatchNorm2d(5),
        c2=nn.Conv2d(5, 2, 3, padding=1),
        bn3=nn.BatchNorm2d(2, affine=False),
    )
    scale_weights(model, 2.0)
    ops = _ops(model, 6)
    assert "affine" not in ops
    bn_params = sum(p.numel() for n, p in model.named_parameters() if ".bn" in n)
    n_params = sum(p.numel() for p in model.parameters())
    exp = export_decoder(model, latent_dim=6)
    assert exp.spec["n_weights"] == n_params - bn_params + 5  # + the zero bias c1 gets
    check_parity(live, model, latent_dim=6)


def test_batchnorm_unfolded_affine(live):
    def fn(p, z):
        h = p["bn0"](z.view(-1, 4, 2, 2))  # right after the input reshape: nothing to fold into
        h = F.relu(p["t1"](h))  # 4x4
        h = p["bn1"](p["up"](h))  # after an upsample: kept as an affine map
        g = p["c1"](h)
        h = p["bn2"](g) + g  # the conv output has a second user: not folded
        h = p["bn3"](p["fc2"](p["flat"](h)).view(-1, 2, 4, 4))  # after a reshape
        return torch.sigmoid(h)

    model = Custom(
        fn,
        seed=1,
        bn0=nn.BatchNorm2d(4),
        t1=nn.ConvTranspose2d(4, 3, 4, stride=2, padding=1),
        up=nn.Upsample(scale_factor=2),
        bn1=nn.BatchNorm2d(3),
        c1=nn.Conv2d(3, 3, 3, stride=2, padding=1),
        bn2=nn.BatchNorm2d(3),
        flat=nn.Flatten(),
        fc2=nn.Linear(48, 32),
        bn3=nn.BatchNorm2d(2, affine=False),
    )
    assert _ops(model, 16).count("affine") == 4
    check_parity(live, model, latent_dim=16)


def test_residual_add(live):
    def fn(p, z):
        h = p["fc"](z).view(-1, 4, 6, 6)
        h = h + p["c1"](F.gelu(h))  # operator.add
        h = torch.add(h, p["c2"](F.gelu(h, approximate="tanh")))  # torch.add
        return torch.sigmoid(p["c3"](h) + p["fc2"](z).view(-1, 1, 6, 6))

    model = Custom(
        fn,
        fc=nn.Linear(3, 144),
        c1=nn.Conv2d(4, 4, 3, padding=1),
        c2=nn.Conv2d(4, 4, 3, padding=1),
        c3=nn.Conv2d(4, 1, 1),
        fc2=nn.Linear(3, 36),
    )
    assert _ops(model, 3).count("add") == 3
    check_parity(live, model, latent_dim=3)


Act = Callable[[torch.Tensor], torch.Tensor]
ACTIVATIONS: dict[str, tuple[Act, str]] = {  # name: (module or function, exported op)
    "ReLU": (nn.ReLU(), "relu"),
    "LeakyReLU(0.2)": (nn.LeakyReLU(0.2), "leaky_relu"),
    "SiLU": (nn.SiLU(), "silu"),
    "Sigmoid": (nn.Sigmoid(), "sigmoid"),
    "Tanh": (nn.Tanh(), "tanh"),
    "ELU": (nn.ELU(), "elu"),
    "ELU(0.5)": (nn.ELU(alpha=0.5), "elu"),
    "Softplus": (nn.Softplus(), "softplus"),
    "Softplus(2, 3)": (nn.Softplus(beta=2.0, threshold=3.0), "softplus"),
    "GELU": (nn.GELU(), "gelu"),
    "GELU(tanh)": (nn.GELU(approximate="tanh"), "gelu"),
    "F.relu": (F.relu, "relu"),
    "torch.relu": (torch.relu, "relu"),
    "Tensor.relu": (lambda x: x.relu(), "relu"),
    "F.leaky_relu(0.2)": (lambda x: F.leaky_relu(x, 0.2), "leaky_relu"),
    "F.leaky_relu(slope=0.3)": (lambda x: F.leaky_relu(x, negative_slope=0.3), "leaky_relu"),
    "F.silu": (F.silu, "silu"),
    "Tensor.sigmoid": (lambda x: x.sigmoid(), "sigmoid"),
    "torch.tanh": (torch.tanh, "tanh"),
    "Tensor.tanh": (lambda x: x.tanh(), "tanh"),
    "F.elu(0.5)": (lambda x: F.elu(x, 0.5), "elu"),
    "F.softplus(2, 3)": (lambda x: F.softplus(x, 2.0, 3.0), "softplus"),
    "F.softplus(beta=0.5)": (lambda x: F.softplus(x, beta=0.5), "softplus"),
    "F.gelu": (F.gelu, "gelu"),
    "F.gelu(tanh)": (lambda x: F.gelu(x, approximate="tanh"), "gelu"),
}


class ActNet(nn.Module):
    """Linear (pre-activations over about -9..9) -> activation -> 3x3 conv -> sigmoid."""

    def __init__(self, act: Act, seed: int) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.fc = nn.Linear(4, 2 * 64)
        with torch.no_grad():  # wide enough for both branches and the Softplus thresholds
            self.fc.weight.mul_(6.0)
            self.fc.bias.uniform_(-3, 3)
        self.act = act  # a module is registered here; a function is called as such
        self.conv = nn.Conv2d(2, 1, 3, padding=1)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        h = self.act(self.fc(z)).view(-1, 2, 8, 8)
        return torch.sigmoid(self.conv(h))


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_activation(live, name):
    act, op = ACTIVATIONS[name]
    model = ActNet(act, seed=len(name))
    layer = export_decoder(model, latent_dim=4).spec["layers"][2]
    assert layer["op"] == op
    check_parity(live, model, latent_dim=4)
