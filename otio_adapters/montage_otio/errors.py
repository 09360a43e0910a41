"""montage_otio's own error: callers (the engine's facade) translate it to theirs."""

from __future__ import annotations


class InterchangeError(Exception):
    """A timeline cannot be written or read in a format: the message is one line for a user,
    naming the file."""
