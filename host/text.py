"""Text from binaries and users, made safe to print on a terminal (docs/limits.md).

A ``.dfx`` binary carries free text (model fields, symbol names, debug annotations, labels,
the tool string). Printed as is, an escape sequence in it could rewrite the terminal, and a
newline inside an annotation could add a line to a ``dfx disasm`` listing that assembles to
something else. :func:`terminal_text` escapes control characters (C0, DEL, C1) and the
Unicode bidirectional controls as ``\\xNN`` / ``\\uNNNN``; ``keep`` lists the few that a whole
listing may contain (its own newlines).
"""

from __future__ import annotations

import re

__all__ = ["one_line", "terminal_text"]

_BIDI = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_UNSAFE = re.compile(f"[\x00-\x1f\x7f-\x9f{_BIDI}]")


def _escape(m: re.Match[str]) -> str:
    c = ord(m.group())
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def terminal_text(text: str, keep: str = "") -> str:
    """``text`` with every control character except those in ``keep`` escaped."""
    if not keep:
        return _UNSAFE.sub(_escape, text)
    return _UNSAFE.sub(lambda m: m.group() if m.group() in keep else _escape(m), text)


def one_line(text: object) -> str:
    """An error message as one safe line: whitespace runs become one space, controls escaped."""
    return terminal_text(" ".join(str(text).split()))
