"""The one base class of the project's own errors: a message meant for the user.

Every error that `vae` raises on purpose (bad config, unreadable checkpoint, missing dataset,
unusable image, ...) derives from `ExplorerError`, so the app catches them all in one place and
shows the message, while anything else is a bug and gets an error id instead.

On a shared deployment (`VAE_PUBLIC=1`) the messages shown to visitors never carry the server's
absolute paths: `str(e)` shortens each to its last part ("…/mnist"), and `public_text` does the
same for other messages (dataset status lines, say).
"""

from __future__ import annotations

import os
import re

# an absolute path of two or more parts, not inside a URL ("https://host/a/b" keeps its path)
_ABS_PATH = re.compile(r"(?<![\w.:/~])/(?:[^\s/'\"`(),;:<>]+/)+([^\s/'\"`(),;:<>]*)")


def public() -> bool:
    """A shared deployment (VAE_PUBLIC=1): see README, "Security and reliability"."""
    return os.environ.get("VAE_PUBLIC", "").strip().lower() not in ("", "0", "false", "no")


def redact_paths(text: str) -> str:
    """'/srv/app/data/mnist is missing' -> '…/mnist is missing'."""
    return _ABS_PATH.sub(lambda m: "…/" + m.group(1), text)


def public_text(text: str) -> str:
    """`text` as a visitor may see it: without absolute server paths when public."""
    return redact_paths(text) if public() else text


class ExplorerError(Exception):
    """A problem with the user's input or files; `str(e)` says what and what to do."""

    def __str__(self) -> str:
        return public_text(super().__str__())
