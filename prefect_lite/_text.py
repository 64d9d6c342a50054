"""Text safe for a terminal: the one place that makes control characters visible.

Names, tags, parameters, state and log messages can come from anyone with API access.
Printed raw, an ESC starts CSI/OSC sequences (colours, cursor moves, window titles,
hyperlinks), a ``\\r`` or a forged ``\\n`` overwrites or invents lines, and bidi controls
reorder what is read. ``visible()`` shows each such character as an escape (``\\x1b``,
``\\r``, ``\\u202e``) instead; ``visible(text, keep_lines=True)`` leaves line breaks and
tabs alone (for tracebacks), escaping everything else.
"""

from __future__ import annotations

import re
from typing import Any

_BIDI_AND_SEPARATORS = "\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
_ALL = re.compile(f"[\x00-\x1f\x7f-\x9f{_BIDI_AND_SEPARATORS}]")
_ALL_BUT_LINES = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{_BIDI_AND_SEPARATORS}]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    return _NAMED.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def visible(value: Any, keep_lines: bool = False) -> str:
    """``value`` as text with every control character shown as an escape."""
    text = "" if value is None else str(value)
    return (_ALL_BUT_LINES if keep_lines else _ALL).sub(_escape, text)
