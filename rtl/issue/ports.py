"""Signatures of the ports between the unit ports and the scoreboard, SRF and controller
(seen from the unit port: ``Out`` members are driven by it)."""

from __future__ import annotations

from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["AdvanceSignature", "CheckSignature", "DoneSignature", "IntWriteSignature"]


class CheckSignature(wiring.Signature):
    """Is VRF vector ``v`` available to an instruction whose own writer entry is ``own``
    (``has_own``)? The scoreboard answers ``ok`` combinationally."""

    def __init__(self, vectors: int, writers: int):
        self.vectors, self.writers = vectors, writers
        super().__init__({"v": Out(range(vectors)), "own": Out(range(writers)),
                          "has_own": Out(1), "ok": In(1)})

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, CheckSignature) and other.vectors == self.vectors
                and other.writers == self.writers)

    def __hash__(self) -> int:
        return hash((CheckSignature, self.vectors, self.writers))


class AdvanceSignature(wiring.Signature):
    """One more vector of writer entry ``idx`` was written (``en``)."""

    def __init__(self, writers: int):
        self.writers = writers
        super().__init__({"en": Out(1), "idx": Out(range(writers))})

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AdvanceSignature) and other.writers == self.writers

    def __hash__(self) -> int:
        return hash((AdvanceSignature, self.writers))


class DoneSignature(wiring.Signature):
    """Reader entry ``idx`` has read all it needs (``en``)."""

    def __init__(self, readers: int):
        self.readers = readers
        super().__init__({"en": Out(1), "idx": Out(range(readers))})

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DoneSignature) and other.readers == self.readers

    def __hash__(self) -> int:
        return hash((DoneSignature, self.readers))


class IntWriteSignature(wiring.Signature):
    """Write ``value`` into integer register ``reg`` (``en``): a vargmax result."""

    def __init__(self) -> None:
        super().__init__({"en": Out(1), "reg": Out(5), "value": Out(64)})
