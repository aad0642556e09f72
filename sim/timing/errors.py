"""Errors of the timing simulator (one-line :class:`~dfx.isa.errors.DfxError` messages)."""

from __future__ import annotations

from dfx.isa.errors import DfxError


class TimingError(DfxError):
    """A program the timing model cannot run (an illegal operand, a deadlock, bad input)."""
