"""The Train page's parts: the new-run form, the live view of a job, and the library's charts.

    values = training.form()                      # the widgets; returns the raw values (dict)
    job = training.start_from_form(values)        # validate, start, or show the errors
    training.jobs_panel()                         # pick a run and watch it (polls while active)

Modules:
- `form`: the widgets (kept across page switches), `parse_form` validation, `start_from_form`.
- `live`: the live view of one job (status, progress, Stop / Resume / Explore / Delete, curves,
  KL heatmap) and the run picker that polls it; badges and durations for the Model library.
- `preview`: the checkpoint's samples, reconstructions and latent map (model calls through
  `vae.ui.infer`), with a placeholder until the first checkpoint.
- `figures`: the Plotly figures (training curves with their legend, KL heatmap, runs compared).
"""

from vae.ui.training.figures import compare_figure, curves_figure, kl_heatmap
from vae.ui.training.form import (
    CLEAR_NAME,
    DATASET_TITLES,
    HIDDEN_DEFAULT,
    NEEDS_DIR,
    RESIZABLE,
    dataset_status,
    device_label,
    device_note,
    device_options,
    form,
    log_every,
    parse_form,
    parse_hidden,
    probe,
    start_from_form,
    suggest_name,
)
from vae.ui.training.live import (
    POLL_S,
    STATE_BADGE,
    WATCH,
    actions,
    badge,
    badge_text,
    duration,
    explore_button,
    jobs_panel,
    live_view,
    progress_text,
    summary,
    watch_options,
)
from vae.ui.training.preview import PREVIEW_N, Preview, preview, show_preview, weights_stamp

__all__ = [
    "CLEAR_NAME",
    "DATASET_TITLES",
    "HIDDEN_DEFAULT",
    "NEEDS_DIR",
    "POLL_S",
    "PREVIEW_N",
    "RESIZABLE",
    "STATE_BADGE",
    "WATCH",
    "Preview",
    "actions",
    "badge",
    "badge_text",
    "compare_figure",
    "curves_figure",
    "dataset_status",
    "device_label",
    "device_note",
    "device_options",
    "duration",
    "explore_button",
    "form",
    "jobs_panel",
    "kl_heatmap",
    "live_view",
    "log_every",
    "parse_form",
    "parse_hidden",
    "preview",
    "probe",
    "progress_text",
    "show_preview",
    "start_from_form",
    "suggest_name",
    "summary",
    "watch_options",
    "weights_stamp",
]
