"""Text from files and plugins made safe to show: one line, no terminal escapes.

Class names and result labels end up in terminals (CLI output), status bars, file names of
exports and YAML/XML files; a newline splits a one-line message, an escape sequence recolours or
rewrites the user's terminal, and a bidi override makes "gpj.exe" read as "exe.jpg".
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["clean_label"]

# ANSI/VT sequences are removed whole (CSI "ESC [ ... final", OSC "ESC ] ... BEL|ESC \\", and
# two-byte "ESC x"), so no "[31m" residue is left once the ESC itself is gone.
_ESCAPES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x9b[0-?]*[ -/]*[@-~]|\x1b[@-_]?"
)
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")


def clean_label(text: object) -> str:
    """``text`` as one line: escape sequences dropped, control and bidi characters and line
    breaks (tabs too) turned into spaces, ends stripped. Other characters are kept as they are."""
    s = _ESCAPES.sub("", str(text))
    if s.isprintable():
        return s.strip()  # the usual case
    return "".join(
        " " if unicodedata.category(ch) in ("Cc", "Zl", "Zp") or ch in _BIDI else ch for ch in s
    ).strip()
