"""Untrusted text (file names above all) made safe for where it is written.

A file name on Linux may hold any byte but `/` and NUL: newlines, carriage returns, escape
sequences, bytes that are not UTF-8 (Python hands those over as lone surrogates). Each place a
name goes can hold less: a line-based format (an EDL, a message, a line of a picture) breaks on
any line separator `str.splitlines` knows, UTF-8 cannot encode a lone surrogate, and XML 1.0
cannot hold most control characters at all, escaped or not. These helpers are the one place
that knows, so every writer treats a name the same way.
"""

from __future__ import annotations

import re
import unicodedata

#: what breaks a line or cannot be written as UTF-8: control characters (C0, DEL, C1 such as
#: NEL), the Unicode line and paragraph separators, and lone surrogates (undecodable bytes)
_UNSAFE_CATEGORIES = {"Cc", "Zl", "Zp", "Cs"}
#: what XML 1.0 cannot hold even as a character reference (tab, LF and CR it can)
_XML_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_SURROGATE_ESCAPES = range(0xDC80, 0xDD00)     # how os.fsdecode carries an undecodable byte


def is_unsafe(ch: str) -> bool:
    """Whether `ch` would break a line or cannot be encoded as UTF-8."""
    return unicodedata.category(ch) in _UNSAFE_CATEGORIES


def escape_char(ch: str) -> str:
    r"""A visible stand-in for an unsafe character: \n, \x1b, \u2028, and \xff for the byte
    a lone surrogate stands for."""
    code = ord(ch)
    if code in _SURROGATE_ESCAPES:
        return f"\\x{code - 0xDC00:02x}"
    return ch.encode("unicode_escape", "backslashreplace").decode("ascii")


def one_line(text: str, replacement: str | None = None) -> str:
    """`text` on one line and encodable as UTF-8: each unsafe character becomes `replacement`,
    or a visible escape when none is given (for messages and pictures, where a reader should
    see what the name holds)."""
    if not any(is_unsafe(ch) for ch in text):
        return text
    return "".join((escape_char(ch) if replacement is None else replacement) if is_unsafe(ch) else ch
                   for ch in text)


def xml_safe(text: str | None) -> str | None:
    """XML 1.0 cannot carry most control characters or lone surrogates at all (escaping does
    not help): drop them."""
    return _XML_BAD.sub("", text) if text else text


def xml_can_hold(text: str) -> bool:
    """Whether `text` can be written in an XML 1.0 document unchanged."""
    return _XML_BAD.search(text) is None


def keep_carriage_returns(document: str) -> str:
    """A serialised XML document with each raw CR written as `&#13;`: XML readers turn a raw
    CR (and CR LF) into LF, so a name holding one would come back changed. Serialisers write
    LF between lines, so a raw CR can only be part of a value."""
    return document.replace("\r", "&#13;")
