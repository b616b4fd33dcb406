// The browser decoder: runs a layer graph exported by vae/export.py on plain typed arrays.
// parse(bytes) -> {id, spec, weights}; decode(dec, z) -> Float32Array (C*H*W) image mean in [0,1].
// Batch size 1, float32 throughout, the same layouts as torch (C, H, W row-major).
const VAEDecoder = (() => {
  const MAGIC = "VAED";

  function parse(bytes) {
    const u8 = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
    const magic = String.fromCharCode(u8[0], u8[1], u8[2], u8[3]);
    if (magic !== MAGIC) throw new Error("not a VAE decoder payload");
    const n = new DataView(u8.buffer, u8.byteOffset, u8.byteLength).getUint32(4, true);
    const spec = JSON.parse(new TextDecoder().decode(u8.subarray(8, 8 + n)));
    const start = 8 + n;
    // copy so that the Float32Array view is 4-byte aligned whatever the payload's offset
    const weights = new Float32Array(u8.slice(start, start + 4 * spec.n_weights).buffer);
    if (weights.length !== spec.n_weights) throw new Error("truncated decoder weights");
    const dec = { id: spec.id, spec, weights, views: [] };
    for (const layer of spec.layers) {
      const v = {};
      for (const k of ["w", "b", "a", "c"]) {
        if (layer[k]) v[k] = weights.subarray(layer[k][0], layer[k][0] + layer[k][1]);
      }
      if (layer.op === "conv_transpose2d") v.wt = transposeConvT(v.w, layer);
      dec.views.push(v);
    }
    return dec;
  }

  // (Cin, Cout, kh, kw) -> (Cin, kh, kw, Cout): the inner loop then runs over Cout contiguously.
  function transposeConvT(w, L) {
    const [kh, kw] = L.kernel, ci = L.c_in, co = L.c_out;
    const out = new Float32Array(w.length);
    for (let i = 0; i < ci; i++)
      for (let o = 0; o < co; o++)
        for (let y = 0; y < kh; y++)
          for (let x = 0; x < kw; x++)
            out[((i * kh + y) * kw + x) * co + o] = w[((i * co + o) * kh + y) * kw + x];
    return out;
  }

  function linear(x, v, L) {
    const out = new Float32Array(L.n_out), ni = L.n_in, w = v.w, b = v.b;
    for (let o = 0; o < L.n_out; o++) {
      let s = b[o];
      const r = o * ni;
      for (let i = 0; i < ni; i++) s += w[r + i] * x[i];
      out[o] = s;
    }
    return out;
  }

  function conv2d(x, v, L, inShape) {
    const [ci, H, W] = inShape, [co, OH, OW] = L.shape;
    const [kh, kw] = L.kernel, [sh, sw] = L.stride, [ph, pw] = L.padding;
    const out = new Float32Array(co * OH * OW), w = v.w, b = v.b;
    for (let o = 0; o < co; o++) {
      for (let oy = 0; oy < OH; oy++) {
        for (let ox = 0; ox < OW; ox++) {
          let s = b[o];
          for (let i = 0; i < ci; i++) {
            for (let ky = 0; ky < kh; ky++) {
              const iy = oy * sh - ph + ky;
              if (iy < 0 || iy >= H) continue;
              const xr = (i * H + iy) * W, wr = ((o * ci + i) * kh + ky) * kw;
              for (let kx = 0; kx < kw; kx++) {
                const ix = ox * sw - pw + kx;
                if (ix >= 0 && ix < W) s += w[wr + kx] * x[xr + ix];
              }
            }
          }
          out[(o * OH + oy) * OW + ox] = s;
        }
      }
    }
    return out;
  }

  // Scatter form: every input pixel adds its kernel footprint to the output (torch's definition).
  function convTranspose2d(x, v, L, inShape) {
    const [ci, H, W] = inShape, [co, OH, OW] = L.shape;
    const [kh, kw] = L.kernel, [sh, sw] = L.stride, [ph, pw] = L.padding;
    const acc = new Float32Array(OH * OW * co); // (OH, OW, Cout): contiguous over Cout
    const wt = v.wt;
    for (let i = 0; i < ci; i++) {
      for (let iy = 0; iy < H; iy++) {
        for (let ix = 0; ix < W; ix++) {
          const val = x[(i * H + iy) * W + ix];
          if (val === 0) continue;
          for (let ky = 0; ky < kh; ky++) {
            const oy = iy * sh - ph + ky;
            if (oy < 0 || oy >= OH) continue;
            for (let kx = 0; kx < kw; kx++) {
              const ox = ix * sw - pw + kx;
              if (ox < 0 || ox >= OW) continue;
              const a = (oy * OW + ox) * co, wr = ((i * kh + ky) * kw + kx) * co;
              for (let o = 0; o < co; o++) acc[a + o] += val * wt[wr + o];
            }
          }
        }
      }
    }
    const out = new Float32Array(co * OH * OW), b = v.b, hw = OH * OW;
    for (let p = 0; p < hw; p++) for (let o = 0; o < co; o++) out[o * hw + p] = acc[p * co + o] + b[o];
    return out;
  }

  function upsample(x, L, inShape) {
    const [c, H, W] = inShape, [, OH, OW] = L.shape, [sh, sw] = L.scale;
    const out = new Float32Array(c * OH * OW);
    for (let k = 0; k < c; k++)
      for (let y = 0; y < OH; y++)
        for (let xx = 0; xx < OW; xx++)
          out[(k * OH + y) * OW + xx] = x[(k * H + Math.floor(y / sh)) * W + Math.floor(xx / sw)];
    return out;
  }

  function crop(x, L, inShape) {
    const [c, H, W] = inShape, [, OH, OW] = L.shape, [y0, x0] = L.start;
    const out = new Float32Array(c * OH * OW);
    for (let k = 0; k < c; k++)
      for (let y = 0; y < OH; y++) {
        const src = (k * H + y + y0) * W + x0;
        out.set(x.subarray(src, src + OW), (k * OH + y) * OW);
      }
    return out;
  }

  function affine(x, v, inShape) {
    const c = inShape[0], per = x.length / c, out = new Float32Array(x.length);
    for (let k = 0; k < c; k++) for (let p = 0; p < per; p++) out[k * per + p] = v.a[k] * x[k * per + p] + v.c[k];
    return out;
  }

  // erf (Abramowitz & Stegun 7.1.26 is only 1.5e-7 absolute; good enough against float32 torch)
  function erf(x) {
    const s = Math.sign(x), a = Math.abs(x), t = 1 / (1 + 0.3275911 * a);
    const y = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-a * a);
    return s * y;
  }

  const ACT = {
    relu: () => (v) => (v > 0 ? v : 0),
    silu: () => (v) => v / (1 + Math.exp(-v)),
    sigmoid: () => (v) => 1 / (1 + Math.exp(-v)),
    tanh: () => Math.tanh,
    leaky_relu: (L) => (v) => (v > 0 ? v : v * L.slope),
    elu: (L) => (v) => (v > 0 ? v : L.alpha * (Math.exp(v) - 1)),
    softplus: (L) => (v) => (v * L.beta > L.threshold ? v : Math.log1p(Math.exp(v * L.beta)) / L.beta),
    gelu: (L) =>
      L.approximate === "tanh"
        ? (v) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v * v * v)))
        : (v) => 0.5 * v * (1 + erf(v / Math.SQRT2)),
  };

  function decode(dec, z) {
    const layers = dec.spec.layers, vals = new Array(layers.length);
    for (let i = 0; i < layers.length; i++) {
      const L = layers[i], v = dec.views[i];
      const x = L.in.length ? vals[L.in[0]] : null;
      const inShape = L.in.length ? layers[L.in[0]].shape : null;
      let y;
      switch (L.op) {
        case "input": y = Float32Array.from(z); break;
        case "linear": y = linear(x, v, L); break;
        case "conv2d": y = conv2d(x, v, L, inShape); break;
        case "conv_transpose2d": y = convTranspose2d(x, v, L, inShape); break;
        case "upsample": y = upsample(x, L, inShape); break;
        case "crop": y = crop(x, L, inShape); break;
        case "reshape": case "output": y = x; break;
        case "affine": y = affine(x, v, inShape); break;
        case "add": {
          const b = vals[L.in[1]];
          y = new Float32Array(x.length);
          for (let k = 0; k < x.length; k++) y[k] = x[k] + b[k];
          break;
        }
        default: {
          const f = ACT[L.op];
          if (!f) throw new Error("unknown layer " + L.op);
          const g = f(L);
          y = new Float32Array(x.length);
          for (let k = 0; k < x.length; k++) y[k] = g(x[k]);
        }
      }
      vals[i] = y;
    }
    return vals[layers.length - 1];
  }

  // Image mean (C, H, W) in [0, 1] -> RGBA pixels of an ImageData.
  function toImageData(img, shape, imageData) {
    const [c, h, w] = shape, px = imageData.data, hw = h * w;
    for (let p = 0; p < hw; p++) {
      const r = img[p], g = c === 3 ? img[hw + p] : r, b = c === 3 ? img[2 * hw + p] : r;
      px[4 * p] = Math.round(Math.min(1, Math.max(0, r)) * 255);
      px[4 * p + 1] = Math.round(Math.min(1, Math.max(0, g)) * 255);
      px[4 * p + 2] = Math.round(Math.min(1, Math.max(0, b)) * 255);
      px[4 * p + 3] = 255;
    }
    return imageData;
  }

  return { parse, decode, toImageData };
})();
