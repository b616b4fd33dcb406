"""Streamlit helpers shared by the app's pages (the only part of `vae` that imports streamlit).

A page is a flat script: controls, calls into these helpers, rendering. Pages never import torch;
everything here takes and returns numpy arrays, PIL images or bytes.

    from vae.ui import cache, data, images, infer, maps, models, sliders, state

    run = models.require_run()            # selected model (vae.checkpoint.Run) or error + stop
    ds = data.require_dataset(run)        # its dataset (test split, or all when tiny) or stop
    table = cache.latent_table(run, n)    # means, log-variances, labels, KL of n images
    scores = cache.elbo_scores(run, table)       # their ELBO and recon error (a decoder pass)
    proj = cache.projection(run, table, "pca")   # .embedding (n, 2), .transform(z) -> (m, 2)
    img = infer.decode(run, z)            # (C, H, W) float32 in [0, 1]
    st.image(images.upscale(img, 256))    # crisp enlargement; image_grids.tiles(...) for tiles
    st.plotly_chart(maps.latent_map(...).figure)
    state.request_z(z); st.switch_page("pages/explore.py")   # open z in Explore's sliders

Modules:
- `state`: session keys, pending z (`request_z`/`pop_z`/`peek_z`), selected index, map size and
  projection, URL query parameters (model, page, idx, z, proj) so a link reproduces a view.
- `models`: model discovery (assets/, runs/, uploads, added folders, and your own PyTorch model
  named on the server's command line, `vae.adapter`), cached loading, the sidebar picker, safe
  zip upload.
- `data`: the run's dataset (cached), images by row, the sidebar availability/download panel.
- `cache`: latent table, ELBO scores and projections, cached in memory and on disk next to the run.
- `infer`: decode / encode / reconstruct / nearest / prior samples / `encode_upload`, numpy in
  and out; `configure_threads` (called once by app.py).
- `maps`: the latent map (Plotly WebGL scatter with selection mapping, the ★, stars, paths and
  points drawn on it) and the Pillow-drawn position mini-map (`density_grid`, `position_image`).
- `charts`: the other Plotly charts (curves, posterior bars, KL and activity bars, heatmaps).
- `images`: one array -> PIL, upscaling, PNG bytes and data URIs.
- `image_grids`: pictures made of many decoded images: `tiles`, labelled grids, strips, GIFs.
- `sliders`: KL-ordered latent sliders (the server-side panel) that keep their values.
- `live`: the browser-decoding component (Explore's panel, the 2-D pad, the path scrubber).
- `analysis`: cached model analyses for Diagnostics and Demos.
- `training`: the Train page (form, live view, checkpoint preview, figures).
- `guard`: errors to messages (the project's own) or an error id (a bug).
- `frame`: `frame.ensure()`, each page's first call, brings a page that Streamlit ran alone (a
  deep link as a fresh server's first request) back inside app.py's frame.
"""
