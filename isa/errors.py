"""Errors that reach the user as one line (``dfx: error: ...``) with a non-zero exit status.

Every module raises a subclass of :class:`DfxError` for bad input; the CLI prints its message
and exits with :attr:`DfxError.exit_code`. The message names what was wrong and where (file,
field, card, instruction).
"""

from __future__ import annotations


class DfxError(Exception):
    """Bad input from the user: reported as one line, exit status ``exit_code``."""

    exit_code = 1


class IsaError(DfxError):
    """An instruction that cannot be encoded, decoded or assembled."""


class BinaryFormatError(DfxError):
    """A ``.dfx`` binary that is truncated, corrupted, of another version or another ISA."""

    exit_code = 2


def indices(n: int) -> str:
    """The valid indices of ``n`` things for a message: ``0..n-1``, or ``none`` when empty
    (never ``0..-1``)."""
    return f"0..{n - 1}" if n > 0 else "none"
