"""User-facing errors.

Every failure a user can cause (a missing file, a corrupt clip, music without audio) is raised
as a MontageError with a one-line message naming the file and the reason; the CLI prints it
without a traceback and exits non-zero. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class MontageError(Exception):
    """A problem with the user's input or environment, explained in one line."""

    exit_code = 2


class MediaError(MontageError):
    """A media file cannot be read or lacks the stream we need."""


class RenderError(MontageError):
    """ffmpeg failed while conforming the timeline."""

    exit_code = 3


def plain_validation_message(err: dict) -> str:
    """pydantic's "Input should be greater than 0" as "must be greater than 0", for one-line
    errors about a setting or a value in a file."""
    msg = str(err.get("msg", "invalid value")).replace("Value error, ", "")
    for prefix, plain in (("Input should be ", "must be "), ("Value should be ", "must be "),
                          ("String should ", "must ")):
        if msg.startswith(prefix):
            return plain + msg[len(prefix):]
    return msg
