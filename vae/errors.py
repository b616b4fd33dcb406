"""The one base class of the project's own errors: a message meant for the user.

Every error that `vae` raises on purpose (bad config, unreadable checkpoint, missing dataset,
unusable image, ...) derives from `ExplorerError`, so the app catches them all in one place and
shows the message, while anything else is a bug and gets an error id instead.
"""

from __future__ import annotations


class ExplorerError(Exception):
    """A problem with the user's input or files; `str(e)` says what and what to do."""
