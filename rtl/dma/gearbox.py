"""``Gearbox``: a contiguous byte stream, read as rows, cut into pieces of up to one row
(docs/core.md "Memory system": the LUT-GEMM stream reader).

``rows`` brings the stream's rows in order; the first row of a stream has ``start`` and the
byte offset ``o`` at which the stream begins in it. ``req`` asks for the next ``size`` bytes
(at most R), ``emit`` (or only skip them), ``flush`` (the stream's last request: the rest of
the window is dropped and the next ``start`` row may enter). A request is served in the
cycle the two-row window holds its bytes; its piece (the bytes first, then don't-care) is on
``out`` one cycle later (a register). The window's rows are shifted by the stream position
in ``gran``-byte steps (a rotator over two rows); a row enters the cycle after a slot frees.
"""

from __future__ import annotations

from typing import Any

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .geometry import Geometry

__all__ = ["Gearbox"]


class Gearbox(wiring.Component):
    """Rows in, pieces out (module doc). Parameters: ``geometry``, ``gran`` (every stream
    start and request size is a multiple of it: a power of two up to W)."""

    def __init__(self, geometry: Geometry, *, gran: int):
        g = self._g = geometry
        if not isinstance(gran, int) or gran < 1 or gran & (gran - 1) or gran > g.beat_bytes:
            raise ValueError(f"gran must be a power of two 1..{g.beat_bytes}, not {gran!r}")
        self._gran = gran
        R = g.row_bytes  # noqa: N806
        super().__init__({
            "rows": In(stream.Signature(data.StructLayout({
                "data": 8 * R, "start": 1, "o": g.row_shift}))),
            "req": In(stream.Signature(data.StructLayout({
                "size": range(R + 1), "emit": 1, "flush": 1}))),
            "out": Out(stream.Signature(8 * R)),
        })

    @property
    def latency(self) -> int:
        """Cycles from a request's service to its piece on ``out``."""
        return 1

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        g = self._g
        R, rs = g.row_bytes, g.row_shift  # noqa: N806
        gs = self._gran.bit_length() - 1
        a = Signal(8 * R)
        b = Signal(8 * R)
        va = Signal()
        vb = Signal()
        active = Signal()
        p = Signal(rs)  # position in row a, bytes
        rq = self.req.payload
        out = self.out
        can = ~out.valid | out.ready
        end = p + rq.size
        have = Mux(vb, 2 * R, Mux(va, R, 0))
        serve = self.req.valid & active & (end <= have) & can
        m.d.comb += self.req.ready.eq(serve)
        # the rotator: R bytes of the window from byte p (p a multiple of gran: one shifter
        # cell, a log2(2R / gran)-level barrel shifter after synthesis)
        win = Cat(a, b)
        rot = win.bit_select(Cat(Const(0, 3 + gs), p[gs:]), 8 * R)
        with m.If(serve & rq.emit):
            m.d.sync += [out.valid.eq(1), out.payload.eq(rot)]
        with m.Elif(out.ready):
            m.d.sync += out.valid.eq(0)
        # window: drop row a when the position passes it, refill from rows
        drop = serve & (end >= R)
        na = Mux(drop, vb, va)
        nb = Mux(drop, 0, vb)
        row = self.rows.payload
        take_start = ~active & ~va & ~vb
        take = Mux(row.start, take_start, active & ~nb)
        m.d.comb += self.rows.ready.eq(take)
        got = self.rows.valid & take
        with m.If(serve):
            m.d.sync += p.eq(end[:rs])
            with m.If(drop):
                m.d.sync += a.eq(b)
        m.d.sync += [va.eq(na), vb.eq(nb)]
        with m.If(got):
            with m.If(row.start):
                m.d.sync += [a.eq(row.data), va.eq(1), active.eq(1), p.eq(row.o)]
            with m.Elif(~na):
                m.d.sync += [a.eq(row.data), va.eq(1)]
            with m.Else():
                m.d.sync += [b.eq(row.data), vb.eq(1)]
        with m.If(serve & rq.flush):
            m.d.sync += [va.eq(0), vb.eq(0), active.eq(0)]
        return m
