"""vae/export.py: the decoder graph, the packed payload, the id, and what cannot be exported.

Numerical parity with the browser runtime is tested in tests/e2e/test_live_parity.py.
"""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tests.helpers import tiny_vae
from vae.export import MAGIC, DecoderExport, ExportError, export_decoder
from vae.model import VAE


def _vae(arch: str, c: int, size: int, likelihood: str = "bernoulli", **kw) -> VAE:
    return tiny_vae(
        kw.pop("latent_dim", 3),
        arch=arch,
        image_shape=(c, size, size),
        hidden=kw.pop("hidden", (16,) if arch == "mlp" else (4, 8)),
        dense=kw.pop("dense", 0),
        likelihood=likelihood,
        sigma_mode="learned" if likelihood == "gaussian" else "fixed",
        seed=kw.pop("seed", 0),
    )


def _unpack(blob: bytes) -> tuple[dict, np.ndarray, int]:
    assert blob[:4] == b"VAED" == MAGIC
    (n,) = struct.unpack("<I", blob[4:8])
    header = json.loads(blob[8 : 8 + n].decode())
    return header, np.frombuffer(blob, dtype="<f4", offset=8 + n), n


class Custom(nn.Module):
    """Any module with `decode(z)`: the layers in `parts`, the wiring in `fn(self, z)`."""

    def __init__(self, fn, **parts: nn.Module) -> None:
        super().__init__()
        self.parts = nn.ModuleDict(parts)
        self.fn = fn

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.fn(self.parts, z)


# --- the project's VAEs -----------------------------------------------------------------------
@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
@pytest.mark.parametrize("size", [8, 28, 32, 64])
@pytest.mark.parametrize("c", [1, 3])
@pytest.mark.parametrize("arch", ["mlp", "conv"])
def test_export_every_arch_size_and_likelihood(arch, c, size, likelihood):
    model = _vae(arch, c, size, likelihood)
    exp = export_decoder(model)
    assert isinstance(exp, DecoderExport)
    assert exp.spec["image_shape"] == list(model.config.image_shape)
    assert exp.spec["latent_dim"] == model.config.latent_dim
    layers = exp.spec["layers"]
    assert layers[0]["op"] == "input" and layers[0]["shape"] == [model.config.latent_dim]
    assert layers[-1]["op"] == "output" and layers[-1]["shape"] == list(model.config.image_shape)
    assert layers[-2]["op"] == "sigmoid"  # VAE.decode is sigmoid(decoder(z))
    n_decoder = sum(p.numel() for p in model.decoder.parameters())
    assert exp.spec["n_weights"] == n_decoder == exp.weights.size
    assert exp.weights.dtype == np.float32
    if likelihood == "gaussian":  # the learned σ belongs to the likelihood, not the decoder
        assert model.log_sigma.numel() > 0


def test_conv_export_layers_and_dense():
    model = _vae("conv", 3, 28, hidden=(4, 8, 8), dense=12)
    exp = export_decoder(model)
    ops = [layer["op"] for layer in exp.spec["layers"]]
    assert ops.count("linear") == 2 and ops.count("conv_transpose2d") == 3
    assert "crop" in ops  # 28 -> 14 -> 7 -> 4, decoded back to 32 and cropped
    crop = exp.spec["layers"][ops.index("crop")]
    assert crop["start"] == [0, 0] and crop["shape"] == [3, 28, 28]
    assert exp.spec["n_weights"] == sum(p.numel() for p in model.decoder.parameters())


# --- the payload -----------------------------------------------------------------------------
@pytest.mark.parametrize("arch", ["mlp", "conv"])
def test_pack_layout_and_weights_round_trip(arch):
    model = _vae(arch, 1, 28)
    exp = export_decoder(model)
    blob = exp.pack()
    header, flat, n = _unpack(blob)
    assert (8 + n) % 4 == 0
    assert len(blob) == 8 + n + 4 * exp.spec["n_weights"] == exp.nbytes
    assert header["id"] == exp.id
    assert {k: v for k, v in header.items() if k != "id"} == exp.spec
    assert flat.size == header["n_weights"]
    np.testing.assert_array_equal(flat, exp.weights)

    first = next(layer for layer in header["layers"] if layer["op"] == "linear")
    lin = next(m for m in model.decoder.modules() if isinstance(m, nn.Linear))
    assert [first["n_out"], first["n_in"]] == list(lin.weight.shape)
    (w0, wn), (b0, bn) = first["w"], first["b"]
    np.testing.assert_array_equal(flat[w0 : w0 + wn], lin.weight.detach().numpy().ravel())
    np.testing.assert_array_equal(flat[b0 : b0 + bn], lin.bias.detach().numpy())
    # every decoder parameter is in the blob, bit for bit (no BatchNorm to fold here)
    params = np.concatenate([p.detach().numpy().ravel() for p in model.decoder.parameters()])
    assert sorted(flat.tolist()) == sorted(params.tolist())


def test_pack_pads_header_to_four_bytes():
    # header lengths vary with the spec; every one must leave the weights 4-byte aligned
    for latent_dim in range(2, 9):
        blob = export_decoder(_vae("mlp", 1, 8, latent_dim=latent_dim)).pack()
        (n,) = struct.unpack("<I", blob[4:8])
        assert (8 + n) % 4 == 0


def test_id_changes_with_one_weight_and_is_stable():
    model = _vae("conv", 1, 8)
    a, b = export_decoder(model), export_decoder(model)
    assert a.id == b.id and a.pack() == b.pack()
    assert a.id == export_decoder(_vae("conv", 1, 8)).id  # same seed, same weights
    assert len(a.id) == 16 and int(a.id, 16) >= 0
    with torch.no_grad():
        model.decoder.ups[-1].weight.view(-1)[3] += 1e-3
    c = export_decoder(model)
    assert c.id != a.id
    assert c.spec == a.spec  # only the weights differ
    assert export_decoder(_vae("conv", 1, 8, seed=1)).id != a.id


def test_export_leaves_weights_and_outputs_unchanged():
    model = _vae("conv", 3, 32)
    z = torch.randn(4, model.config.latent_dim)
    with torch.no_grad():
        before = model.decode(z)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    export_decoder(model)
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k
    with torch.no_grad():
        assert torch.equal(model.decode(z), before)


# --- what cannot be exported -----------------------------------------------------------------
def _lin16(**more: nn.Module) -> dict[str, nn.Module]:
    return {"lin": nn.Linear(4, 64), **more}


def _img(p, z, c=4):
    return p["lin"](z).view(-1, c, 4, 4)


UNSUPPORTED = {
    "Conv2d groups": (
        lambda p, z: torch.sigmoid(p["conv"](_img(p, z))),
        _lin16(conv=nn.Conv2d(4, 2, 3, padding=1, groups=2)),
        ["Conv2d", "groups"],
    ),
    "Conv2d dilation": (
        lambda p, z: torch.sigmoid(p["conv"](_img(p, z))),
        _lin16(conv=nn.Conv2d(4, 2, 3, padding=2, dilation=2)),
        ["Conv2d", "dilation"],
    ),
    "Conv2d padding same": (
        lambda p, z: torch.sigmoid(p["conv"](_img(p, z))),
        _lin16(conv=nn.Conv2d(4, 2, 3, padding="same")),
        ["Conv2d", "padding"],
    ),
    "Conv2d reflect padding": (
        lambda p, z: torch.sigmoid(p["conv"](_img(p, z))),
        _lin16(conv=nn.Conv2d(4, 2, 3, padding=1, padding_mode="reflect")),
        ["Conv2d", "padding"],
    ),
    "ConvTranspose2d groups": (
        lambda p, z: torch.sigmoid(p["conv"](_img(p, z))),
        _lin16(conv=nn.ConvTranspose2d(4, 2, 4, stride=2, padding=1, groups=2)),
        ["ConvTranspose2d", "groups"],
    ),
    "Upsample bilinear": (
        lambda p, z: torch.sigmoid(p["up"](_img(p, z))),
        _lin16(up=nn.Upsample(scale_factor=2, mode="bilinear")),
        ["bilinear"],
    ),
    "interpolate bicubic": (
        lambda p, z: torch.sigmoid(F.interpolate(_img(p, z), scale_factor=2, mode="bicubic")),
        _lin16(),
        ["bicubic"],
    ),
    "Upsample to a size": (
        lambda p, z: torch.sigmoid(p["up"](_img(p, z))),
        _lin16(up=nn.Upsample(size=(8, 8))),
        ["upsampling"],
    ),
    "Upsample non-integer": (
        lambda p, z: torch.sigmoid(p["up"](_img(p, z))),
        _lin16(up=nn.Upsample(scale_factor=1.5)),
        ["non-integer"],
    ),
    "torch.cumsum": (
        lambda p, z: torch.sigmoid(torch.cumsum(_img(p, z), dim=-1)),
        _lin16(),
        ["cumsum"],
    ),
    "permute": (
        lambda p, z: torch.sigmoid(p["lin"](z).view(-1, 4, 4, 4).permute(0, 3, 1, 2)),
        _lin16(),
        ["permute"],
    ),
    "multiply": (lambda p, z: torch.sigmoid(2 * _img(p, z)), _lin16(), ["mul"]),
    "ReLU6": (
        lambda p, z: torch.sigmoid(p["act"](_img(p, z))),
        _lin16(act=nn.ReLU6()),
        ["ReLU6"],
    ),
    "broadcast add": (
        lambda p, z: torch.sigmoid(_img(p, z) + p["lin2"](z).view(-1, 4, 1, 1)),
        _lin16(lin2=nn.Linear(4, 4)),
        ["broadcast"],
    ),
    "strided slice": (lambda p, z: torch.sigmoid(_img(p, z)[..., ::2, :]), _lin16(), ["strided"]),
    "channel slice": (lambda p, z: torch.sigmoid(_img(p, z)[:, :2]), _lin16(), ["channel"]),
    "not an image": (lambda p, z: torch.sigmoid(p["lin"](z)), _lin16(), ["shape [64]"]),
}


@pytest.mark.parametrize("name", list(UNSUPPORTED))
def test_unsupported_layers_raise_export_error_naming_them(name):
    fn, parts, words = UNSUPPORTED[name]
    with pytest.raises(ExportError) as info:
        export_decoder(Custom(fn, **parts).eval(), latent_dim=4)
    for word in words:
        assert word in str(info.value), (word, str(info.value))


# Modules the tracer does not treat as leaves: tracing enters their forward.
UNNAMED = {
    "LSTM": (
        lambda p, z: torch.sigmoid(p["rnn"](z.view(-1, 1, 4))[0].view(-1, 1, 4, 4)),
        {"rnn": nn.LSTM(4, 16, batch_first=True)},
    ),
    "LayerNorm": (
        lambda p, z: torch.sigmoid(p["norm"](p["lin"](z)).view(-1, 4, 4, 4)),
        _lin16(norm=nn.LayerNorm(64)),
    ),
}


@pytest.mark.parametrize("name", list(UNNAMED))
def test_unsupported_modules_raise_export_error(name):
    fn, parts = UNNAMED[name]
    with pytest.raises(ExportError):
        export_decoder(Custom(fn, **parts).eval(), latent_dim=4)


@pytest.mark.parametrize("name", list(UNNAMED))
def test_unsupported_module_errors_name_the_layer(name):
    fn, parts = UNNAMED[name]
    with pytest.raises(ExportError, match=name):
        export_decoder(Custom(fn, **parts).eval(), latent_dim=4)


# --- BatchNorm ---------------------------------------------------------------------------------
def _random_bn(bn: nn.Module, seed: int = 0) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    n = bn.num_features
    with torch.no_grad():
        bn.running_mean.copy_(torch.randn(n, generator=g))
        bn.running_var.copy_(torch.rand(n, generator=g) * 2 + 0.3)
        if bn.affine:
            bn.weight.copy_(torch.rand(n, generator=g) + 0.5)
            bn.bias.copy_(torch.randn(n, generator=g) * 0.3)
    return bn.eval()


def test_batchnorm_after_conv_transpose_is_folded():
    model = Custom(
        lambda p, z: torch.sigmoid(p["bn"](p["up"](_img(p, z)))),
        **_lin16(
            up=nn.ConvTranspose2d(4, 3, 4, stride=2, padding=1), bn=_random_bn(nn.BatchNorm2d(3))
        ),
    ).eval()
    exp = export_decoder(model, latent_dim=4)
    ops = [layer["op"] for layer in exp.spec["layers"]]
    assert "affine" not in ops and "conv_transpose2d" in ops
    assert exp.spec["image_shape"] == [3, 8, 8]
    n_conv = sum(
        p.numel() for name, p in model.named_parameters() if not name.startswith("parts.bn")
    )
    assert exp.spec["n_weights"] == n_conv  # BatchNorm adds no weights of its own
    up = model.parts["up"]
    folded = exp.spec["layers"][ops.index("conv_transpose2d")]
    (w0, wn) = folded["w"]
    assert not np.allclose(exp.weights[w0 : w0 + wn], up.weight.detach().numpy().ravel())


def test_batchnorm_after_the_input_reshape_is_an_affine_layer():
    model = Custom(
        lambda p, z: torch.sigmoid(p["up"](p["bn"](z.view(-1, 4, 2, 2)))),
        bn=_random_bn(nn.BatchNorm2d(4)),
        up=nn.ConvTranspose2d(4, 1, 4, stride=2, padding=1),
    ).eval()
    exp = export_decoder(model, latent_dim=16)
    ops = [layer["op"] for layer in exp.spec["layers"]]
    assert ops == ["input", "reshape", "affine", "conv_transpose2d", "sigmoid", "output"]
    aff = exp.spec["layers"][2]
    assert aff["a"][1] == aff["c"][1] == 4 and aff["shape"] == [4, 2, 2]
    bn = model.parts["bn"]
    a = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach().numpy()
    c = bn.bias.detach().numpy() - a * bn.running_mean.numpy()
    np.testing.assert_allclose(exp.weights[aff["a"][0] : aff["a"][0] + 4], a, rtol=1e-6)
    np.testing.assert_allclose(exp.weights[aff["c"][0] : aff["c"][0] + 4], c, rtol=1e-5, atol=1e-6)


def test_batchnorm_with_a_second_user_of_its_input_is_not_folded():
    model = Custom(
        lambda p, z: (lambda h: torch.sigmoid(p["bn"](h) + h))(p["conv"](_img(p, z))),
        **_lin16(conv=nn.Conv2d(4, 4, 3, padding=1), bn=_random_bn(nn.BatchNorm2d(4))),
    ).eval()
    ops = [layer["op"] for layer in export_decoder(model, latent_dim=4).spec["layers"]]
    assert "affine" in ops and "add" in ops


# --- cases that once exported wrongly ---------------------------------------------------------
def test_batchnorm_behind_a_skip_layer_with_a_second_user_is_not_folded():
    model = Custom(
        lambda p, z: (lambda h: torch.sigmoid(p["bn"](p["drop"](h)) + h))(p["conv"](_img(p, z))),
        **_lin16(
            conv=nn.Conv2d(4, 4, 3, padding=1),
            drop=nn.Dropout(0.1),
            bn=_random_bn(nn.BatchNorm2d(4)),
        ),
    ).eval()
    ops = [layer["op"] for layer in export_decoder(model, latent_dim=4).spec["layers"]]
    assert "affine" in ops


def test_add_with_alpha_is_refused():
    model = Custom(
        lambda p, z: torch.sigmoid(torch.add(_img(p, z), p["lin2"](z).view(-1, 4, 4, 4), alpha=2)),
        **_lin16(lin2=nn.Linear(4, 64)),
    ).eval()
    with pytest.raises(ExportError):
        export_decoder(model, latent_dim=4)


def test_linear_on_a_feature_map_is_refused():
    model = Custom(
        lambda p, z: torch.sigmoid(p["lin2"](_img(p, z))),
        **_lin16(lin2=nn.Linear(4, 4)),
    ).eval()
    with pytest.raises(ExportError):
        export_decoder(model, latent_dim=4)


def test_export_keeps_the_training_mode():
    model = _vae("mlp", 1, 8).train()
    export_decoder(model)
    assert model.training
