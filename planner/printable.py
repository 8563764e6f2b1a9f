"""Hostile text stops at the rendering boundary: what the planner prints or writes for people carries no control
characters.

A goal description, a data file name or an override can hold terminal escape sequences (`\\x1b[2J` clears the
screen, OSC 8 forges links, `\\r` overwrites a line) or bidirectional overrides that make text read differently
from what it is. Every renderer for people passes its whole output through `printable` once (the text and
markdown reports, planner.diff's reports, ConfigError.render, the sweep table), so no field needs its own care.
Newline and tab stay: the reports are laid out with them. JSON output goes through `json_safe` instead, which
writes the same characters as JSON escapes, so the document still parses to the same values.
"""

from __future__ import annotations

import re

# C0 controls but tab and newline, DEL, C1 controls (0x9b is a one-byte CSI), and the Unicode bidi controls.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
# In JSON, C0 controls are escaped already; these are not.
_JSON_RAW = re.compile("[\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """`text` with each control character written as a visible escape (`\\x1b`, `\\u202e`)."""
    return _CONTROL.sub(_escape, text) if _CONTROL.search(text) else text


def json_safe(document: str) -> str:
    """A JSON document with the control characters JSON leaves raw written as \\uXXXX escapes (same values)."""
    return _JSON_RAW.sub(lambda m: f"\\u{ord(m.group()):04x}", document) if _JSON_RAW.search(document) else document


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


__all__ = ["json_safe", "printable"]
