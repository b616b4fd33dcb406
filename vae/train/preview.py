"""When to write the live view's preview (`preview.safetensors`): every N steps, N chosen by time.

    previews = PreviewSchedule(every_s=5.0, step=0)
    if previews.due(step):            # after each step
        save_preview(run_dir, model, step=step, epoch=epoch)
    previews.restart(step)            # after a pause (evaluation, checkpoint): time from here

Until N is known, the first interval is timed step by step; from then on the clock is read every
N steps only, and N is re-derived each time from how long the last N steps took, so previews come
about every `every_s` seconds of training even as the step time drifts. The schedule reads a
clock, never an RNG or the model, so a run with previews trains exactly like one without.
"""

from __future__ import annotations

import time
from collections.abc import Callable

PREVIEW_EVERY_S = 5.0  # the CLI's default: a fresh preview every few seconds of training


class PreviewSchedule:
    """Steps after which to write a preview; `every_s` <= 0 turns previews off."""

    def __init__(
        self, every_s: float, step: int, clock: Callable[[], float] = time.perf_counter
    ) -> None:
        self.every_s, self.clock = every_s, clock
        self.n: int | None = None  # steps per preview, once the first interval is timed
        self.restart(step)

    def restart(self, step: int) -> None:
        """Time the next interval from now and `step` (a pause before it does not count)."""
        self.t0, self.step0 = self.clock(), step
        self.next = None if self.n is None else step + self.n

    def due(self, step: int) -> bool:
        """Whether to write a preview now that `step` is done; re-derives N when it is."""
        if self.every_s <= 0 or (self.next is not None and step < self.next):
            return False
        now = self.clock()
        if self.next is None and now - self.t0 < self.every_s:
            return False  # still timing the first interval
        step_s = max(now - self.t0, 1e-9) / max(step - self.step0, 1)
        self.n = max(1, round(self.every_s / step_s))
        self.t0, self.step0, self.next = now, step, step + self.n
        return True
