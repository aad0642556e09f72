"""Small stream buffers shared by the core's units (docs/core.md "Folders": ``bus/``).

:class:`Fifo2` is the two-entry output buffer the MPU and the LUT-GEMM unit put in front of
their output streams: both ``w_rdy`` and ``r_rdy`` come from registers only, so it cuts every
combinational valid/ready path between a producer and a consumer while still moving one
item per cycle. Larger queues should use :class:`amaranth.lib.fifo.SyncFIFOBuffered`.
"""

from __future__ import annotations

from typing import Any

from amaranth.hdl import Module, Shape, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["Fifo2", "RegFifo"]


class Fifo2(wiring.Component):
    """A two-entry register FIFO with the port names of :mod:`amaranth.lib.fifo`.

    ``w_data``/``w_en``/``w_rdy`` push, ``r_data``/``r_en``/``r_rdy`` pop (a transfer when
    ``*_en`` and ``*_rdy`` are both high). ``w_rdy`` (level < 2) and ``r_rdy`` (level > 0)
    depend on registered state only; an item pushed in cycle t is readable in cycle t + 1;
    a push and a pop may happen in the same cycle at any level. Full throughput: one item
    per cycle in and out. ``r_data`` is a register (no read-side logic after it).

    Parameter: ``shape``, the item's shape (anything :class:`~amaranth.hdl.Shape` accepts,
    including a :mod:`amaranth.lib.data` layout).
    """

    def __init__(self, shape: Any):
        try:
            Shape.cast(shape)
        except TypeError:
            raise TypeError(f"shape must be a shape (int, Shape, layout), not {shape!r}") from None
        self._shape = shape
        super().__init__({
            "w_data": In(shape), "w_en": In(1), "w_rdy": Out(1),
            "r_data": Out(shape), "r_en": In(1), "r_rdy": Out(1),
        })

    @property
    def shape(self) -> Any:
        return self._shape

    @property
    def depth(self) -> int:
        return 2

    @property
    def latency(self) -> int:
        """Cycles from a push to the item being readable."""
        return 1

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        e1 = Signal(self._shape)
        level = Signal(range(3))
        push = self.w_en & self.w_rdy
        pop = self.r_en & self.r_rdy
        m.d.comb += [self.w_rdy.eq(level < 2), self.r_rdy.eq(level != 0)]
        m.d.sync += level.eq(level + push - pop)
        with m.If(pop):
            m.d.sync += self.r_data.eq(e1)
        with m.If(push):
            with m.If((level == 0) | ((level == 1) & pop)):
                m.d.sync += self.r_data.eq(self.w_data)
            with m.Else():
                m.d.sync += e1.eq(self.w_data)
        return m


class RegFifo(wiring.Component):
    """A FIFO of ``depth`` (>= 1) register entries with the port names of
    :mod:`amaranth.lib.fifo` plus ``level``: ``w_rdy`` (level < depth) and ``r_rdy`` (level >
    0) come from registers; an item pushed in cycle t is readable in cycle t + 1; a push and a
    pop may happen in one cycle at any level. For the small command queues between units
    (``depth`` 1 is a single register slot, which :class:`amaranth.lib.fifo.SyncFIFO` cannot
    build without zero-width signals)."""

    def __init__(self, shape: Any, depth: int):
        try:
            Shape.cast(shape)
        except TypeError:
            raise TypeError(f"shape must be a shape (int, Shape, layout), not {shape!r}") from None
        if not isinstance(depth, int) or isinstance(depth, bool) or depth < 1:
            raise ValueError(f"depth must be a positive integer, not {depth!r}")
        self._shape, self._depth = shape, depth
        super().__init__({
            "w_data": In(shape), "w_en": In(1), "w_rdy": Out(1),
            "r_data": Out(shape), "r_en": In(1), "r_rdy": Out(1),
            "level": Out(range(depth + 1)),
        })

    @property
    def depth(self) -> int:
        return self._depth

    @property
    def latency(self) -> int:
        """Cycles from a push to the item being readable."""
        return 1

    def elaborate(self, platform: Any) -> Module:
        from amaranth.hdl import Array

        m = Module()
        n = self._depth
        slots = Array(Signal(self._shape, name=f"slot{i}") for i in range(n))
        rp = Signal(range(max(2, n)))  # (a 1-bit 0 for depth 1: no zero-width signals)
        wp = Signal(range(max(2, n)))
        push = self.w_en & self.w_rdy
        pop = self.r_en & self.r_rdy
        m.d.comb += [self.w_rdy.eq(self.level < n), self.r_rdy.eq(self.level != 0),
                     self.r_data.eq(slots[rp])]
        m.d.sync += self.level.eq(self.level + push - pop)
        with m.If(push):
            m.d.sync += [slots[wp].eq(self.w_data), wp.eq(0 if n == 1 else
                                                          (wp + 1) % n if n & (n - 1)
                                                          else wp + 1)]
        with m.If(pop):
            m.d.sync += rp.eq(0 if n == 1 else (rp + 1) % n if n & (n - 1) else rp + 1)
        return m
