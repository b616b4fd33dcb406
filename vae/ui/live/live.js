// The live latent component: Explore's panel, the 2-D pad and the path scrubber decode in the
// browser (VAEDecoder, from decoder.js, is concatenated in front of this file by vae/ui/live).
// Binary payloads (decoders "VAED", map tables "VAET") arrive through small carrier instances
// and are shared with every panel of the page through globalThis.__vaeLive.
const LIVE = (globalThis.__vaeLive = globalThis.__vaeLive || {
  decoders: {}, tables: {}, waiters: [], last: {},
  stats: { frames: 0, decodeMs: [], inputToPaint: [] },
});
LIVE.groups = LIVE.groups || {}; // views of one model on a page share z while it moves
const INST = new WeakMap(); // parentElement -> instance state

function join(inst) {
  const g = inst.data.group;
  if (!g) return;
  (LIVE.groups[g] = LIVE.groups[g] || new Set()).add(inst);
  inst.group = g;
}
function share(inst) {
  const g = LIVE.groups[inst.group];
  if (!g) return;
  for (const o of g) {
    if (o === inst) continue;
    if (!o.root.isConnected) { g.delete(o); continue; }
    o.z = Float32Array.from(inst.z);
    if (o.refresh) o.refresh();
  }
}

function register(kind, id, obj) {
  LIVE[kind][id] = obj;
  LIVE.waiters = LIVE.waiters.filter((w) => (w.kind === kind && w.id === id ? (w.fn(obj), false) : true));
}
function whenReady(kind, id, fn) {
  if (LIVE[kind][id]) fn(LIVE[kind][id]);
  else LIVE.waiters.push({ kind, id, fn });
}

function f16(h) {
  const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 0x1f, m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}
function parseTable(u8) {
  const n = new DataView(u8.buffer, u8.byteOffset, u8.byteLength).getUint32(4, true);
  const head = JSON.parse(new TextDecoder().decode(u8.subarray(8, 8 + n)));
  const body = u8.slice(8 + n); // aligned copy
  const N = head.n, D = head.d;
  const rows = new Int32Array(body.buffer, 0, N);
  const xy = new Float32Array(body.buffer, 4 * N, 2 * N);
  const h = new Uint16Array(body.buffer, 12 * N, N * D);
  const means = new Float32Array(N * D);
  for (let i = 0; i < h.length; i++) means[i] = f16(h[i]);
  return { ...head, rows, xy, means };
}

// --- small helpers ---------------------------------------------------------------------------
function el(tag, attrs = {}, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else e.setAttribute(k, v);
  }
  for (const k of kids) e.append(k);
  return e;
}
function fmt(v) { return (Math.round(v * 100) / 100).toFixed(2); }
function clip(v, lim) { return Math.max(-lim, Math.min(lim, Math.round(v * 100) / 100)); }
// z ~ p(z): N(0, I), or a mixture {w, m, s}: a component k ~ w, then z = m[k] + s[k] * eps.
function priorDraw(prior, dim) {
  if (!prior) return Array.from({ length: dim }, () => gauss());
  let u = Math.random() * prior.w.reduce((a, b) => a + b, 0), k = 0;
  while (k < prior.w.length - 1 && u >= prior.w[k]) { u -= prior.w[k]; k += 1; }
  return prior.m[k].map((mu, i) => mu + prior.s[k][i] * gauss());
}

function gauss() {
  let u = 0, v = 0;
  while (u === 0) u = Math.random();
  while (v === 0) v = Math.random();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

// Draw an image mean into a canvas at the decoder's resolution (CSS scales it, pixelated).
function paint(canvas, dec, img) {
  const [, h, w] = dec.spec.image_shape;
  if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
  const ctx = canvas.getContext("2d");
  const id = ctx.createImageData(w, h);
  VAEDecoder.toImageData(img, dec.spec.image_shape, id);
  ctx.putImageData(id, 0, 0);
}
// Decode z into the view's canvas and count the frame (and the input's latency, if any).
function drawFrame(inst, dec, z) {
  const img = timedDecode(dec, z);
  paint(inst.canvas, dec, img);
  LIVE.stats.frames += 1;
  if (!LIVE.firstFrameAt) LIVE.firstFrameAt = performance.now();
  if (inst.inputAt) { LIVE.stats.inputToPaint.push(performance.now() - inst.inputAt); inst.inputAt = 0; }
  return img;
}
function timedDecode(dec, z) {
  const t0 = performance.now();
  const img = VAEDecoder.decode(dec, z);
  const ms = performance.now() - t0;
  const s = LIVE.stats;
  s.decodeMs.push(ms);
  if (s.decodeMs.length > 2000) s.decodeMs.splice(0, 1000);
  return img;
}

// --- map positions ---------------------------------------------------------------------------
// PCA is exact: (z - mean) @ components.T. t-SNE/UMAP: the coordinate-wise median of the map
// positions of the k nearest dataset codes, where openTSNE's transform starts a new point.
function mapPosition(proj, z) {
  if (!proj) return null;
  if (proj.method === "pca") {
    const [c0, c1] = proj.components, m = proj.mean;
    let x = 0, y = 0;
    for (let d = 0; d < z.length; d++) { const v = z[d] - m[d]; x += v * c0[d]; y += v * c1[d]; }
    return [x, y];
  }
  const t = LIVE.tables[proj.table];
  if (!t) return null;
  const N = t.n, D = t.d, k = Math.min(proj.k || 15, N), best = [];
  for (let i = 0; i < N; i++) {
    let s = 0;
    for (let d = 0; d < D; d++) { const v = t.means[i * D + d] - z[d]; s += v * v; }
    if (best.length < k || s < best[best.length - 1][0]) {
      best.push([s, i]); best.sort((a, b) => a[0] - b[0]);
      if (best.length > k) best.pop();
    }
  }
  const med = (a) => { a.sort((p, q) => p - q); const m = a.length >> 1; return a.length % 2 ? a[m] : (a[m - 1] + a[m]) / 2; };
  return [med(best.map((b) => t.xy[2 * b[1]])), med(best.map((b) => t.xy[2 * b[1] + 1]))];
}
function inverseMap(proj, x, y) {
  const [c0, c1] = proj.components, m = proj.mean;
  return m.map((v, d) => v + x * c0[d] + y * c1[d]);
}

// --- the big Plotly map: a live ★ and hover decoding ------------------------------------------
function findMap(key) {
  return document.querySelector(`.st-key-${key} .js-plotly-plot`);
}
function overlayOf(gd) {
  let ov = gd.querySelector(":scope > .vl-overlay");
  if (!ov) {
    if (getComputedStyle(gd).position === "static") gd.style.position = "relative";
    ov = el("div", { class: "vl-overlay" });
    Object.assign(ov.style, { position: "absolute", inset: "0", pointerEvents: "none", zIndex: 5 });
    const star = el("div", { class: "vl-star", "data-testid": "live-star", title: "current z" });
    star.innerHTML = '<svg viewBox="-10 -10 20 20" width="24" height="24"><polygon points="0,-9 2.6,-3.3 8.6,-2.8 4.1,1.3 5.3,7.3 0,4.2 -5.3,7.3 -4.1,1.3 -8.6,-2.8 -2.6,-3.3" fill="#e4572e" stroke="white" stroke-width="1.2"/></svg>';
    Object.assign(star.style, { position: "absolute", width: "24px", height: "24px", marginLeft: "-12px", marginTop: "-12px", display: "none" });
    const tip = el("div", { class: "vl-hover" });
    Object.assign(tip.style, { position: "absolute", display: "none", background: "white", border: "1px solid #bbb", borderRadius: "4px", padding: "3px", boxShadow: "0 2px 6px rgba(0,0,0,.2)", font: "11px sans-serif", color: "#333", maxWidth: "140px" });
    const cv = el("canvas", { "aria-label": "decoded hover preview", role: "img" });
    Object.assign(cv.style, { width: "96px", height: "96px", imageRendering: "pixelated", display: "block" });
    tip.append(cv, el("div", { class: "vl-hover-cap" }));
    ov.append(star, tip);
    gd.append(ov);
  }
  return ov;
}
function placeStar(gd, xy) {
  const ov = overlayOf(gd), star = ov.querySelector(".vl-star");
  const L = gd._fullLayout;
  if (!xy || !L || !L.xaxis || !L.xaxis.l2p) { star.style.display = "none"; return; }
  const xa = L.xaxis, ya = L.yaxis;
  const px = xa._offset + xa.l2p(xy[0]), py = ya._offset + ya.l2p(xy[1]);
  // beyond the visible axes: pinned to the edge, faded, so it never silently disappears
  const cx = Math.min(xa._offset + xa._length, Math.max(xa._offset, px));
  const cy = Math.min(ya._offset + ya._length, Math.max(ya._offset, py));
  const inside = cx === px && cy === py;
  star.style.display = "block";
  star.style.opacity = inside ? "1" : "0.55";
  star.title = inside ? "current z" : "current z (beyond the edge of the map)";
  star.style.left = `${cx}px`; star.style.top = `${cy}px`;
  star.dataset.x = String(xy[0]); star.dataset.y = String(xy[1]);
}
function attachMap(inst) {
  const gd = findMap(inst.data.mapKey);
  if (!gd || !gd._fullLayout) return null;
  inst.gd = gd;
  if (!gd.__vlHooked) {
    gd.__vlHooked = true;
    gd.addEventListener("mousemove", (ev) => { gd.__vlInst && hoverAt(gd.__vlInst, gd, ev); });
    gd.addEventListener("mouseleave", () => { const t = gd.querySelector(".vl-hover"); if (t) t.style.display = "none"; });
    if (gd.on) gd.on("plotly_afterplot", () => gd.__vlInst && placeStar(gd, gd.__vlInst.star));
  }
  gd.__vlInst = inst;
  return gd;
}
function hoverAt(inst, gd, ev) {
  const t0 = performance.now();
  const dec = LIVE.decoders[inst.data.decoder], proj = inst.data.proj, L = gd._fullLayout;
  if (!dec || !proj || !L || !L.xaxis || !L.xaxis.p2l) return;
  const r = gd.getBoundingClientRect(), xa = L.xaxis, ya = L.yaxis;
  const px = ev.clientX - r.left, py = ev.clientY - r.top;
  const tip = overlayOf(gd).querySelector(".vl-hover");
  if (px < xa._offset || px > xa._offset + xa._length || py < ya._offset || py > ya._offset + ya._length) {
    tip.style.display = "none"; return;
  }
  let z, cap, xy = [xa.p2l(px - xa._offset), ya.p2l(py - ya._offset)];
  if (proj.method === "pca") {
    z = inverseMap(proj, xy[0], xy[1]);
    cap = "decoded here (inverse PCA)";
  } else {
    const t = LIVE.tables[proj.table];
    if (!t) return;
    let best = -1, bd = Infinity;
    for (let i = 0; i < t.n; i++) {
      const dx = xa.l2p(t.xy[2 * i]) + xa._offset - px, dy = ya.l2p(t.xy[2 * i + 1]) + ya._offset - py;
      const d = dx * dx + dy * dy;
      if (d < bd) { bd = d; best = i; }
    }
    if (best < 0 || bd > 400) { tip.style.display = "none"; return; }
    z = Array.from(t.means.subarray(best * t.d, (best + 1) * t.d));
    xy = [t.xy[2 * best], t.xy[2 * best + 1]];
    cap = `latent mean of image #${t.rows[best]} (nearest point)`;
  }
  const img = timedDecode(dec, z);
  const cv = tip.querySelector("canvas");
  paint(cv, dec, img);
  tip.querySelector(".vl-hover-cap").textContent = cap;
  tip.style.display = "block";
  const left = px + 16 + 150 > r.width ? px - 160 : px + 16;
  tip.style.left = `${left}px`; tip.style.top = `${Math.max(0, py - 60)}px`;
  const now = performance.now();
  // lat: from the pointer event's creation to the preview drawn (what a benchmark reports)
  LIVE.last.hover = { z, xy, image: img, ms: now - t0, lat: now - ev.timeStamp, at: now };
}

// --- Explore's latent panel --------------------------------------------------------------------
function buildPanel(inst, root) {
  const d = inst.data;
  root.replaceChildren();
  const img = el("canvas", { class: "vl-img", "aria-label": "decoded z", role: "img" });
  // Without the dataset (d.minimap and d.kl null) the decoder still works: no mini-map, no KL.
  const mini = d.minimap ? el("canvas", { class: "vl-mini", "aria-label": "position of z", role: "img", width: 160, height: 160 }) : null;
  const top = el("div", { class: "vl-top" },
    el("figure", { class: "vl-fig" }, img, el("figcaption", { text: "What the decoder draws for z, live in your browser." })),
    ...(mini ? [el("figure", { class: "vl-fig vl-minifig" }, mini, el("figcaption", { text: "★ where z lies on the map (grey: where the data is)." }))] : []));
  const btn = (label, title, fn) => { const b = el("button", { type: "button", title, text: label }); b.addEventListener("click", fn); return b; };
  const buttons = el("div", { class: "vl-buttons" },
    btn("Reset to 0", d.prior ? "z = 0, the origin of the latent space." : "z = 0 is the centre of the prior N(0, I): the 'average' image.", () => setZ(inst, inst.z.map(() => 0), true)),
    btn("Random z", `Draw z from the prior ${d.prior ? d.prior.name : "N(0, I)"}, the way a VAE generates new images.`, () => setZ(inst, priorDraw(d.prior, inst.z.length).map((v) => clip(v, d.limit)), true)),
    ...(d.snap === false ? [] : [btn("Snap to data", "Jump to the latent code of the closest dataset image.", () => inst.args.setTriggerValue("snap", Array.from(inst.z)))]));
  const sliders = el("div", { class: "vl-sliders", role: "group", "aria-label": "latent sliders" });
  inst.inputs = {};
  const dims = d.showAll ? d.order : d.order.slice(0, d.top);
  for (const dim of dims) {
    const kl = d.kl ? d.kl[dim] : null, collapsed = kl !== null && kl < d.collapsed;
    const label = kl === null ? `z${dim}` : `z${dim} · KL ${kl.toFixed(2)}` + (collapsed ? " · collapsed" : "");
    const id = `${inst.args.key}-z${dim}`;
    const input = el("input", { type: "range", id, min: -d.limit, max: d.limit, step: 0.01, "aria-label": label });
    input.value = String(inst.z[dim]);
    const out = el("output", { for: id, text: fmt(inst.z[dim]) });
    const row = el("div", { class: "vl-row" + (collapsed ? " vl-collapsed" : ""), title: collapsed
      ? "Collapsed: this dimension's posterior equals the prior for every image, so the decoder ignores it."
      : kl === null ? `Latent dimension ${dim}.` : `Mean KL of this dimension over the dataset: ${kl.toFixed(3)} nats.` },
      el("label", { for: id, text: label }), el("div", { class: "vl-line" }, input, out));
    input.addEventListener("input", () => {
      inst.inputAt = performance.now();
      inst.z[dim] = parseFloat(input.value);
      out.textContent = fmt(inst.z[dim]);
      schedule(inst);
      share(inst);
    });
    input.addEventListener("change", () => sendLater(inst));
    // The range moves in 0.01 steps so a drag is smooth; keys move 0.1 (Page Up/Down: 1), as the
    // server-side sliders did. Home/End keep the browser's own behaviour.
    input.addEventListener("keydown", (ev) => {
      const step = { ArrowRight: 0.1, ArrowUp: 0.1, ArrowLeft: -0.1, ArrowDown: -0.1, PageUp: 1, PageDown: -1 }[ev.key];
      if (step === undefined) return;
      ev.preventDefault();
      input.value = String(clip(parseFloat(input.value) + step, d.limit));
      input.dispatchEvent(new Event("input"));
      input.dispatchEvent(new Event("change"));
    });
    inst.inputs[dim] = [input, out];
    sliders.append(row);
  }
  const notes = el("div", { class: "vl-note" });
  root.append(top, buttons, sliders, notes);
  inst.canvas = img; inst.mini = mini; inst.notes = notes;
  inst.lastKey = null; // a new canvas: paint it
  const rows = Math.ceil(dims.length / 2);
  // whole rows, never half a label: 8 rows of 54 px with 4 px between them
  if (rows > 8) sliders.style.maxHeight = `${8 * 54 + 7 * 4}px`;
}
function setZ(inst, z, send) {
  inst.z = Float32Array.from(z);
  for (const [dim, [input, out]] of Object.entries(inst.inputs)) { input.value = String(inst.z[dim]); out.textContent = fmt(inst.z[dim]); }
  inst.inputAt = performance.now();
  schedule(inst);
  if (send) { share(inst); sendNow(inst); }
}
function schedule(inst) {
  if (inst.frame) return;
  inst.frame = requestAnimationFrame(() => { inst.frame = 0; render(inst); });
}
function sendLater(inst) {
  clearTimeout(inst.sendTimer);
  inst.sendTimer = setTimeout(() => sendNow(inst), 250);
}
function sendNow(inst) {
  clearTimeout(inst.sendTimer);
  inst.seq = (inst.seq || 0) + 1;
  inst.args.setStateValue("z", { v: Array.from(inst.z, (v) => Math.round(v * 100) / 100), seq: `${inst.args.key}:${Date.now()}:${inst.seq}` });
}
function drawMini(inst, xy) {
  const m = inst.data.minimap, cv = inst.mini;
  if (!m || !cv) return;
  const ctx = cv.getContext("2d"), W = cv.width, H = cv.height;
  const draw = () => {
    ctx.drawImage(inst.miniImg, 0, 0, W, H);
    if (!xy) return;
    const [x0, x1, y0, y1] = m.extent;
    const px = Math.min(W - 6, Math.max(6, ((xy[0] - x0) / (x1 - x0)) * W));
    const py = Math.min(H - 6, Math.max(6, (1 - (xy[1] - y0) / (y1 - y0)) * H));
    ctx.beginPath();
    for (let i = 0; i < 10; i++) {
      const a = Math.PI / 2 + (i * Math.PI) / 5, r = i % 2 ? 3.5 : 8;
      ctx.lineTo(px + r * Math.cos(a), py - r * Math.sin(a));
    }
    ctx.closePath(); ctx.fillStyle = "#e4572e"; ctx.strokeStyle = "white"; ctx.fill(); ctx.stroke();
  };
  if (!inst.miniImg || inst.miniImg.dataset.src !== m.png) {
    inst.miniImg = new Image(); inst.miniImg.dataset.src = m.png;
    inst.miniImg.onload = () => drawMini(inst, inst.star);
    inst.miniImg.src = m.png;
    return;
  }
  if (inst.miniImg.complete) draw();
}
function render(inst) {
  const dec = LIVE.decoders[inst.data.decoder];
  if (!dec || !inst.canvas) return;
  const key = `${dec.id}|${inst.z.join(",")}`;
  let img = inst.lastImage;
  if (key !== inst.lastKey || inst.canvas.width === 0) {
    // a rerun that brings the same z back redraws nothing
    img = drawFrame(inst, dec, inst.z);
    inst.lastKey = key; inst.lastImage = img;
    inst.canvas.dataset.frames = String(LIVE.stats.frames); // benchmarks watch this attribute
  }
  const d = inst.data, same = d.serverStar && d.z.every((v, i) => Math.abs(v - inst.z[i]) < 1e-6);
  inst.star = same ? d.serverStar : mapPosition(d.proj, inst.z);
  drawMini(inst, inst.star);
  const gd = d.mapKey ? attachMap(inst) : null;
  if (gd) placeStar(gd, inst.star);
  LIVE.last.panel = { z: Array.from(inst.z), star: inst.star, image: img, at: performance.now() };
}
function panel(inst, root) {
  const d = inst.data;
  const sig = JSON.stringify([d.decoder, d.order, d.showAll, d.limit, d.top, d.kl]);
  if (d.zv !== inst.zv || !inst.z || inst.z.length !== d.z.length) { inst.zv = d.zv; inst.z = Float32Array.from(d.z); }
  if (sig !== inst.sig) { inst.sig = sig; buildPanel(inst, root); }
  else setZ(inst, inst.z, false);
  join(inst);
  inst.refresh = () => setZ(inst, inst.z, false);
  inst.notes.textContent = d.note || "";
  whenReady("decoders", d.decoder, () => schedule(inst));
  if (d.proj && d.proj.table) whenReady("tables", d.proj.table, () => schedule(inst));
  // The map is drawn after this panel, and a rerun may replace its element: whenever the page
  // changes, put the star on the map element that is there now (at most once per frame).
  const sync = () => {
    const gd = findMap(d.mapKey);
    if (gd && gd._fullLayout && (gd !== inst.gd || !gd.querySelector(":scope > .vl-overlay"))) {
      attachMap(inst);
      placeStar(gd, inst.star);
    }
  };
  sync();
  if (!inst.mapObserver && d.mapKey) {
    let pending = false;
    inst.mapObserver = new MutationObserver(() => {
      if (!inst.root.isConnected) { inst.mapObserver.disconnect(); return; }
      if (pending) return;
      pending = true;
      requestAnimationFrame(() => { pending = false; sync(); });
    });
    inst.mapObserver.observe(document.body, { childList: true, subtree: true });
  }
}

// --- the 2-D pad ---------------------------------------------------------------------------
function pad(inst, root) {
  const d = inst.data;
  const sig = JSON.stringify([d.decoder, d.dims, d.limit]);
  if (d.zv !== inst.zv || !inst.z) { inst.zv = d.zv; inst.z = Float32Array.from(d.z); }
  if (sig !== inst.sig) {
    inst.sig = sig;
    root.replaceChildren();
    const area = el("div", { class: "vl-pad", role: "application", "aria-label": `latent pad over z${d.dims[0]} (across) and z${d.dims[1]} (up)`, tabindex: "0" });
    if (d.grid) area.style.backgroundImage = `url(${d.grid})`;
    const handle = el("div", { class: "vl-handle" });
    area.append(handle);
    const img = el("canvas", { class: "vl-img", "aria-label": "decoded pad z", role: "img" });
    const cap = el("figcaption", { class: "vl-padcap" });
    const mk = (k) => {
      const i = el("input", { type: "range", min: -d.limit, max: d.limit, step: 0.01, "aria-label": `z${d.dims[k]} on the pad` });
      i.addEventListener("input", () => { inst.z[d.dims[k]] = parseFloat(i.value); inst.inputAt = performance.now(); padDraw(inst); share(inst); });
      i.addEventListener("change", () => sendLater(inst));
      return i;
    };
    const ia = mk(0), ib = mk(1);
    root.append(el("div", { class: "vl-padwrap" }, area, el("figure", { class: "vl-fig" }, img, cap)),
      el("div", { class: "vl-padsliders" }, el("label", { text: `z${d.dims[0]} →` }), ia, el("label", { text: `z${d.dims[1]} ↑` }), ib));
    Object.assign(inst, { area, handle, canvas: img, cap, ia, ib });
    const move = (ev) => {
      const r = area.getBoundingClientRect();
      const fx = Math.min(1, Math.max(0, (ev.clientX - r.left) / r.width)), fy = Math.min(1, Math.max(0, (ev.clientY - r.top) / r.height));
      inst.z[d.dims[0]] = clip((2 * fx - 1) * d.limit, d.limit);
      inst.z[d.dims[1]] = clip((1 - 2 * fy) * d.limit, d.limit);
      inst.inputAt = performance.now();
      if (!inst.frame) inst.frame = requestAnimationFrame(() => { inst.frame = 0; padDraw(inst); });
      share(inst);
    };
    area.addEventListener("pointerdown", (ev) => { area.setPointerCapture(ev.pointerId); inst.dragging = true; move(ev); });
    area.addEventListener("pointermove", (ev) => { if (inst.dragging) move(ev); });
    area.addEventListener("pointerup", () => { inst.dragging = false; sendNow(inst); });
    area.addEventListener("keydown", (ev) => {
      const step = (ev.shiftKey ? 0.5 : 0.1), k = { ArrowRight: [0, step], ArrowLeft: [0, -step], ArrowUp: [1, step], ArrowDown: [1, -step] }[ev.key];
      if (!k) return;
      ev.preventDefault();
      inst.z[d.dims[k[0]]] = clip(inst.z[d.dims[k[0]]] + k[1], d.limit);
      inst.inputAt = performance.now();
      padDraw(inst); share(inst); sendLater(inst);
    });
  }
  if (d.grid && inst.area) inst.area.style.backgroundImage = `url(${d.grid})`;
  join(inst);
  // a pad in a closed expander or an inactive tab is redrawn when it is shown, not per frame
  const host = root.getRootNode().host;
  const details = host && host.closest("details");
  const hidden = () => !inst.area.getClientRects().length || (details && !details.open);
  inst.refresh = () => {
    if (hidden()) { inst.stale = true; return; }
    if (!inst.frame) inst.frame = requestAnimationFrame(() => { inst.frame = 0; padDraw(inst); });
  };
  if (!inst.seen) {
    const show = () => { if (inst.stale && !hidden()) { inst.stale = false; padDraw(inst); } };
    inst.seen = new IntersectionObserver(show);
    inst.seen.observe(root);
    if (details) details.addEventListener("toggle", () => requestAnimationFrame(show));
  }
  whenReady("decoders", d.decoder, () => inst.refresh());
}
function padDraw(inst) {
  const d = inst.data, dec = LIVE.decoders[d.decoder];
  if (!dec) return;
  const [a, b] = d.dims, fx = (inst.z[a] / d.limit + 1) / 2, fy = 1 - (inst.z[b] / d.limit + 1) / 2;
  inst.handle.style.left = `${100 * Math.min(1, Math.max(0, fx))}%`;
  inst.handle.style.top = `${100 * Math.min(1, Math.max(0, fy))}%`;
  inst.ia.value = String(inst.z[a]); inst.ib.value = String(inst.z[b]);
  const img = drawFrame(inst, dec, inst.z);
  inst.cap.textContent = `z${a} = ${fmt(inst.z[a])}, z${b} = ${fmt(inst.z[b])}`;
  LIVE.last.pad = { z: Array.from(inst.z), image: img };
}

// --- the path scrubber (Interpolate) --------------------------------------------------------
// lerp, or slerp after White 2016 (the same formula as vae.model.interpolate_path).
function pathPoint(za, zb, t, mode) {
  if (mode === "slerp") {
    const na = Math.hypot(...za) || 1e-8, nb = Math.hypot(...zb) || 1e-8;
    let c = 0;
    for (let i = 0; i < za.length; i++) c += (za[i] / Math.max(na, 1e-8)) * (zb[i] / Math.max(nb, 1e-8));
    const om = Math.acos(Math.max(-1, Math.min(1, c)));
    if (Math.abs(om) >= 1e-4) {
      const so = Math.sin(om), p = Math.sin((1 - t) * om) / so, q = Math.sin(t * om) / so;
      return za.map((v, i) => p * v + q * zb[i]);
    }
  }
  return za.map((v, i) => (1 - t) * v + t * zb[i]);
}
function path(inst, root) {
  const d = inst.data;
  const sig = JSON.stringify([d.decoder, d.za, d.zb, d.interp]);
  if (sig !== inst.sig) {
    inst.sig = sig;
    root.replaceChildren();
    const img = el("canvas", { class: "vl-img", "aria-label": "decoded path point", role: "img" });
    const input = el("input", { type: "range", min: 0, max: 1, step: 0.005, value: String(d.t ?? 0.5), "aria-label": "position on the path from A to B" });
    const cap = el("figcaption", {});
    root.append(el("div", { class: "vl-path" }, el("span", { class: "vl-end", text: "A" }), input, el("span", { class: "vl-end", text: "B" })),
      el("figure", { class: "vl-fig" }, img, cap));
    Object.assign(inst, { canvas: img, cap, input });
    input.addEventListener("input", () => { inst.inputAt = performance.now(); if (!inst.frame) inst.frame = requestAnimationFrame(() => { inst.frame = 0; pathDraw(inst); }); });
  }
  whenReady("decoders", d.decoder, () => pathDraw(inst));
}
function pathDraw(inst) {
  const d = inst.data, dec = LIVE.decoders[d.decoder];
  if (!dec) return;
  const t = parseFloat(inst.input.value), z = pathPoint(d.za, d.zb, t, d.interp);
  const img = drawFrame(inst, dec, z);
  inst.cap.textContent = `t = ${t.toFixed(3)} (${d.interp})`;
  LIVE.last.path = { t, z, image: img };
}

export default function (args) {
  const { data, parentElement } = args;
  if (data instanceof Uint8Array) {
    // a carrier: register the payload, take no room on the page
    const host = parentElement.host || parentElement;
    const box = host.closest && host.closest('[data-testid="stElementContainer"]');
    if (box) box.style.display = "none";
    const magic = String.fromCharCode(data[0], data[1], data[2], data[3]);
    if (magic === "VAED") { const dec = VAEDecoder.parse(data); register("decoders", dec.id, dec); }
    else if (magic === "VAET") { const t = parseTable(data); register("tables", t.id, t); }
    return;
  }
  let inst = INST.get(parentElement);
  if (!inst) {
    const root = el("div", { class: "vl-root" });
    parentElement.append(root);
    inst = { root };
    INST.set(parentElement, inst);
  }
  inst.data = data; inst.args = args;
  if (data.mode === "panel") panel(inst, inst.root);
  else if (data.mode === "pad") pad(inst, inst.root);
  else if (data.mode === "path") path(inst, inst.root);
}
