"""Export a decoder for the browser: a small JSON graph of layers plus one float32 weight blob.

    exp = export_decoder(model)      # DecoderExport, or raises ExportError for unknown layers
    blob = exp.pack()                # b"VAED" | u32 header length | header JSON | pad | weights

The graph comes from `torch.fx` tracing of `z -> model.decode(z)`, so any decoder built from
the supported layers exports, not only this project's (`VAE.decode` is `sigmoid(decoder(z))`).
Supported: Linear, Conv2d, ConvTranspose2d, nearest upsampling by an integer factor, reshape
and flatten, cropping slices, addition, and the activations ReLU, LeakyReLU, SiLU, Sigmoid,
Tanh, ELU, Softplus and GELU. Eval-mode BatchNorm is folded into the layer before it (or kept
as a per-channel affine map when there is none). The browser runtime is
`vae/ui/live/decoder.js`; its parity with torch is tested in headless Chromium.
"""

from __future__ import annotations

import hashlib
import json
import operator
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from vae.errors import ExplorerError

MAGIC = b"VAED"
FORMAT_VERSION = 1

_ACTIVATIONS: dict[type, str] = {
    nn.ReLU: "relu",
    nn.SiLU: "silu",
    nn.Sigmoid: "sigmoid",
    nn.Tanh: "tanh",
    nn.ELU: "elu",
    nn.Softplus: "softplus",
    nn.GELU: "gelu",
    nn.LeakyReLU: "leaky_relu",
}
_FUNCTIONS: dict[Any, str] = {
    torch.relu: "relu",
    torch.sigmoid: "sigmoid",
    torch.tanh: "tanh",
    torch.nn.functional.relu: "relu",
    torch.nn.functional.silu: "silu",
    torch.nn.functional.sigmoid: "sigmoid",
    torch.nn.functional.tanh: "tanh",
    torch.nn.functional.elu: "elu",
    torch.nn.functional.gelu: "gelu",
    torch.nn.functional.softplus: "softplus",
    torch.nn.functional.leaky_relu: "leaky_relu",
}
_METHODS = {"relu": "relu", "sigmoid": "sigmoid", "tanh": "tanh"}
_SKIP = (nn.Identity, nn.Dropout, nn.Dropout2d)
_LEAVES = (
    *_ACTIVATIONS,
    *_SKIP,
    nn.Linear,
    nn.Conv2d,
    nn.ConvTranspose2d,
    nn.Upsample,
    nn.Flatten,
    nn.BatchNorm1d,
    nn.BatchNorm2d,
)


class ExportError(ExplorerError, ValueError):
    """The decoder has a layer (or a graph shape) that the browser runtime cannot run."""


@dataclass
class DecoderExport:
    """A decoder as a layer graph (`spec`) over one float32 weight vector."""

    spec: dict[str, Any]
    weights: np.ndarray  # (P,) float32
    id: str = field(default="")

    def pack(self) -> bytes:
        """One binary payload: magic, header length, header JSON, zero pad to 4 bytes, weights."""
        header = json.dumps({**self.spec, "id": self.id}, separators=(",", ":")).encode()
        pad = (-(len(MAGIC) + 4 + len(header))) % 4
        return b"".join(
            [
                MAGIC,
                struct.pack("<I", len(header) + pad),
                header + b" " * pad,
                self.weights.astype("<f4").tobytes(),
            ]
        )

    @property
    def nbytes(self) -> int:
        return len(self.pack())


class _Decode(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.model.decode(z)


class _Tracer(fx.Tracer):
    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        # torch's own layers are leaves (so an unsupported one is named, not traced into);
        # user modules and containers are traced through.
        if isinstance(m, (nn.Sequential, nn.ModuleList, nn.ModuleDict)):
            return False
        return isinstance(m, _LEAVES) or type(m).__module__.startswith("torch.nn")


@torch.no_grad()
def export_decoder(model: nn.Module, latent_dim: int | None = None) -> DecoderExport:
    """Trace `model.decode` (z (B, D) -> image mean (B, C, H, W)) into a browser layer graph."""
    dim = int(latent_dim or model.config.latent_dim)
    p = next(model.parameters())
    was_training = model.training
    wrapper = _Decode(model).eval()  # the browser shows inference: BatchNorm uses running stats
    try:
        try:
            graph = _Tracer().trace(wrapper)
        except Exception as e:  # noqa: BLE001 - any tracing failure means "not exportable"
            raise ExportError(f"the decoder cannot be traced ({type(e).__name__}: {e})") from e
        gm = fx.GraphModule(wrapper, graph)
        ShapeProp(gm).propagate(torch.zeros(1, dim, device=p.device, dtype=p.dtype))
        return _Builder(gm, dim).build()
    finally:
        model.train(was_training)


class _Builder:
    def __init__(self, gm: fx.GraphModule, dim: int) -> None:
        self.gm, self.dim = gm, dim
        self.modules = dict(gm.named_modules())
        self.layers: list[dict[str, Any]] = []
        self.chunks: list[np.ndarray] = []
        self.offset = 0
        self.ids: dict[fx.Node, int] = {}
        self.emitter: dict[int, fx.Node] = {}  # layer index -> the node that computed it

    # -- helpers ----------------------------------------------------------------------------
    def _weights(self, t: torch.Tensor) -> list[int]:
        a = t.detach().float().cpu().numpy().astype(np.float32).ravel()
        self.chunks.append(a)
        self.offset += a.size
        return [self.offset - a.size, a.size]

    @staticmethod
    def _shape(node: fx.Node) -> list[int]:
        meta = node.meta.get("tensor_meta")
        if meta is None or not hasattr(meta, "shape"):
            raise ExportError(f"no tensor shape for {node.format_node()}")
        return [int(s) for s in meta.shape][1:]

    def _emit(self, node: fx.Node, op: str, inputs: list[fx.Node], **kw: Any) -> None:
        idx = len(self.layers)
        self.layers.append(
            {"op": op, "in": [self.ids[i] for i in inputs], "shape": self._shape(node), **kw}
        )
        self.ids[node] = idx
        self.emitter[idx] = node

    def _alias(self, node: fx.Node, src: fx.Node) -> None:
        self.ids[node] = self.ids[src]

    def _tensor_input(self, node: fx.Node) -> fx.Node:
        ins = [a for a in node.all_input_nodes]
        if len(ins) != 1:
            raise ExportError(f"{node.format_node()} takes {len(ins)} tensors, expected 1")
        return ins[0]

    # -- the walk ---------------------------------------------------------------------------
    def build(self) -> DecoderExport:
        out_node = None
        for node in self.gm.graph.nodes:
            if node.op == "placeholder":
                self.layers.append({"op": "input", "in": [], "shape": [self.dim]})
                self.ids[node] = 0
            elif node.op == "output":
                out_node = node.args[0]
            elif node.op == "call_module":
                self._module(node, self.modules[node.target])
            elif node.op in ("call_function", "call_method"):
                self._function(node)
            else:
                raise ExportError(f"unsupported graph node {node.format_node()}")
        if not isinstance(out_node, fx.Node) or out_node not in self.ids:
            raise ExportError("the decoder does not return one tensor")
        shape = self._shape(out_node)
        if len(shape) != 3:
            raise ExportError(f"the decoder returns shape {shape}, expected (C, H, W)")
        self.layers.append({"op": "output", "in": [self.ids[out_node]], "shape": shape})
        weights = np.concatenate(self.chunks) if self.chunks else np.zeros(0, np.float32)
        spec = {
            "format": FORMAT_VERSION,
            "latent_dim": self.dim,
            "image_shape": shape,
            "layers": self.layers,
            "n_weights": int(weights.size),
        }
        digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode())
        digest.update(weights.tobytes())
        return DecoderExport(spec, weights, digest.hexdigest()[:16])

    def _module(self, node: fx.Node, m: nn.Module) -> None:
        src = self._tensor_input(node)
        if isinstance(m, _SKIP):
            self._alias(node, src)
        elif isinstance(m, nn.Linear):
            if len(self._shape(src)) != 1:
                raise ExportError("a Linear layer on a feature map (not a vector) is not supported")
            b = m.bias if m.bias is not None else torch.zeros(m.out_features)
            w, bb = self._weights(m.weight), self._weights(b)  # weight (out, in)
            self._emit(node, "linear", [src], w=w, b=bb, n_in=m.in_features, n_out=m.out_features)
        elif isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            self._conv(node, src, m)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            self._batchnorm(node, src, m)
        elif isinstance(m, nn.Flatten):
            self._emit(node, "reshape", [src])
        elif isinstance(m, nn.Upsample):
            self._upsample(node, src, m.mode, m.scale_factor)
        elif type(m) in _ACTIVATIONS:
            self._activation(node, src, _ACTIVATIONS[type(m)], m)
        else:
            raise ExportError(f"the browser cannot run a {type(m).__name__} layer")

    def _conv(self, node: fx.Node, src: fx.Node, m: nn.Conv2d | nn.ConvTranspose2d) -> None:
        if m.groups != 1 or tuple(m.dilation) != (1, 1):
            raise ExportError(f"{type(m).__name__} with groups or dilation is not supported")
        if isinstance(m.padding, str) or getattr(m, "padding_mode", "zeros") != "zeros":
            raise ExportError(f"{type(m).__name__} padding {m.padding!r} is not supported")
        transposed = isinstance(m, nn.ConvTranspose2d)
        b = m.bias if m.bias is not None else torch.zeros(m.out_channels)
        self._emit(
            node,
            "conv_transpose2d" if transposed else "conv2d",
            [src],
            w=self._weights(m.weight),  # (Cin, Cout, kh, kw) transposed, else (Cout, Cin, kh, kw)
            b=self._weights(b),
            c_in=m.in_channels,
            c_out=m.out_channels,
            kernel=list(m.kernel_size),
            stride=list(m.stride),
            padding=list(m.padding),
        )

    def _batchnorm(self, node: fx.Node, src: fx.Node, m: nn.Module) -> None:
        if m.running_mean is None:
            raise ExportError("BatchNorm without running statistics is not supported")
        scale = m.weight if m.affine else torch.ones_like(m.running_mean)
        shift = m.bias if m.affine else torch.zeros_like(m.running_mean)
        a = scale / torch.sqrt(m.running_var + m.eps)  # y = a * x + c, per channel
        c = shift - a * m.running_mean
        prev = self.layers[self.ids[src]]
        # fold only into a layer whose output feeds nothing else (not even through an alias)
        idx = self.ids[src]
        sharing = [n for n, i in self.ids.items() if i == idx]
        sole = sum(len(n.users) for n in sharing) - (len(sharing) - 1) == 1
        if prev["op"] in ("linear", "conv2d", "conv_transpose2d") and sole:
            self._fold(prev, a, c)
            self._alias(node, src)
        else:
            self._emit(node, "affine", [src], a=self._weights(a), c=self._weights(c))

    def _fold(self, layer: dict[str, Any], a: torch.Tensor, c: torch.Tensor) -> None:
        """Scale the output channels of a linear/conv layer's weights and bias in place."""
        a_np, c_np = a.detach().float().cpu().numpy(), c.detach().float().cpu().numpy()
        w0, wn = layer["w"]
        b0, bn = layer["b"]
        flat = np.concatenate(self.chunks)
        w, b = flat[w0 : w0 + wn].copy(), flat[b0 : b0 + bn].copy()
        if layer["op"] == "conv_transpose2d":
            w = (w.reshape(layer["c_in"], layer["c_out"], -1) * a_np[None, :, None]).ravel()
        else:
            w = (w.reshape(len(a_np), -1) * a_np[:, None]).ravel()
        flat[w0 : w0 + wn], flat[b0 : b0 + bn] = w, b * a_np + c_np
        self.chunks = [flat]

    def _upsample(self, node: fx.Node, src: fx.Node, mode: str, scale: Any) -> None:
        if mode != "nearest" or scale is None:
            raise ExportError(f"upsampling mode {mode!r} (scale {scale}) is not supported")
        sh, sw = (scale, scale) if not isinstance(scale, (tuple, list)) else scale
        if float(sh) != int(sh) or float(sw) != int(sw):
            raise ExportError(f"upsampling by a non-integer factor {scale} is not supported")
        self._emit(node, "upsample", [src], scale=[int(sh), int(sw)])

    def _activation(self, node: fx.Node, src: fx.Node, name: str, m: Any = None) -> None:
        kw: dict[str, Any] = {}

        def arg(name: str, pos: int, default: Any) -> Any:
            if m is not None:
                return getattr(m, name)
            if name in node.kwargs:
                return node.kwargs[name]
            return node.args[pos] if len(node.args) > pos else default

        if name == "leaky_relu":
            kw["slope"] = float(arg("negative_slope", 1, 0.01))
        elif name == "elu":
            kw["alpha"] = float(arg("alpha", 1, 1.0))
        elif name == "softplus":
            kw.update(beta=float(arg("beta", 1, 1.0)), threshold=float(arg("threshold", 2, 20.0)))
        elif name == "gelu":
            kw["approximate"] = str(arg("approximate", 99, "none"))
        self._emit(node, name, [src], **kw)

    def _function(self, node: fx.Node) -> None:
        t = node.target
        if node.op == "call_function" and t in _FUNCTIONS:
            self._activation(node, self._tensor_input(node), _FUNCTIONS[t])
        elif node.op == "call_method" and t in _METHODS:
            self._activation(node, self._tensor_input(node), _METHODS[t])
        elif t in ("view", "reshape", "flatten", "contiguous", "unflatten") or t in (
            torch.flatten,
            torch.reshape,
        ):
            self._emit(node, "reshape", [self._tensor_input(node)])
        elif t is operator.getitem:
            self._crop(node)
        elif t in (operator.add, torch.add, "add") and len(node.all_input_nodes) == 2:
            if node.kwargs.get("alpha", 1) != 1 or len(node.args) > 2:
                raise ExportError("addition with a scale (alpha) is not supported")
            a, b = node.all_input_nodes
            if self._shape(a) != self._shape(b):
                raise ExportError("addition with broadcasting is not supported")
            self._emit(node, "add", [a, b])
        elif t is torch.nn.functional.interpolate:
            mode = node.kwargs.get("mode", "nearest")
            self._upsample(node, self._tensor_input(node), mode, node.kwargs.get("scale_factor"))
        else:
            name = getattr(t, "__name__", str(t))
            raise ExportError(f"the browser cannot run the operation {name!r}")

    def _crop(self, node: fx.Node) -> None:
        """x[..., y0:y1, x0:x1] (or with explicit leading slices) on a (C, H, W) tensor."""
        src, index = node.args
        index = index if isinstance(index, tuple) else (index,)
        shape_in = self._shape(src)
        if len(shape_in) != 3:
            raise ExportError("slicing is supported only on (C, H, W) feature maps")
        if index and index[0] is Ellipsis:
            index = (slice(None),) * (4 - len(index) + 1) + index[1:]
        if len(index) > 4 or any(not isinstance(s, slice) for s in index):
            raise ExportError(f"the slice {index} is not a crop")
        index = index + (slice(None),) * (4 - len(index))
        starts = []
        for s, n in zip(index[1:], shape_in, strict=True):
            if s.step not in (None, 1):
                raise ExportError("strided slicing is not supported")
            starts.append(int(slice(s.start, s.stop).indices(n)[0]))
        if index[0] != slice(None) or starts[0] != 0 or self._shape(node)[0] != shape_in[0]:
            raise ExportError("slicing the batch or channel axis is not supported")
        self._emit(node, "crop", [src], start=starts[1:])
