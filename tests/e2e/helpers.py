"""Browser-side helpers for the end-to-end tests and benchmarks (the builders shared with the
other suites are in tests/helpers.py and re-exported here)."""

from __future__ import annotations

from tests.helpers import (  # noqa: F401  (re-exported for the e2e suite and the benchmarks)
    ROOT,
    app_pages,
    digit_photo_png,
    free_port,
    tiny_digits_checkpoint,
)

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
