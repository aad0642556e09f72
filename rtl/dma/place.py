"""Write-side inverses of :class:`~.extract.Extractor` (docs/core.md "Memory system").

* ``Placer``: a unit (a vector) of ``nbytes`` bytes to byte offset ``o`` of a row: one write
  row, or two when ``two`` (the unit continues into the next row), with strobes on exactly the
  unit's bytes. The unit is shifted by ``o % W`` into ``M`` beats, which land on beats
  ``o // W ..`` of the two-row window.
* ``ScatterPlacer`` (``store_t``): a chunk of ``cnt`` ≤ l FP16 elements, element ``e`` to byte
  ``o + e·2d`` (isa/spec.yaml store_t: one element per beat, every ``2d / W`` beats): each beat
  carries its element repeated, strobes on its two bytes.

Both: a unit accepted in cycle t gives its first row in t + 2 and its second (``two``) in
t + 3; one row per cycle; they stall while ``row`` is not taken.
"""

from __future__ import annotations

from typing import Any

from amaranth.hdl import Array, Cat, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .extract import _check_unit, slots_for
from .geometry import Geometry

__all__ = ["Placer", "ScatterPlacer", "place_row_layout"]


def place_row_layout(g: Geometry) -> data.StructLayout:
    """A row to write: ``data``, ``strb``, ``last`` (the unit's last row) and the unit's
    ``user`` bit."""
    return data.StructLayout({"data": 8 * g.row_bytes, "strb": g.row_bytes, "last": 1,
                              "user": 1})


class _TwoRows(wiring.Component):
    """Shared control: a one-unit register, then one or two output rows from it."""

    def _control(self, m: Module, s1v: Signal, two: Signal, user: Signal
                 ) -> tuple[Any, Signal, Any]:
        out = self.row
        can = ~out.valid | out.ready
        phase = Signal()
        emit = s1v & can
        more = emit & ~phase & two  # a second row follows
        free = ~s1v | (emit & ~more)
        with m.If(emit):
            m.d.sync += [out.valid.eq(1), phase.eq(more), out.payload.last.eq(~more),
                         out.payload.user.eq(user)]
        with m.Elif(out.ready):
            m.d.sync += out.valid.eq(0)
        return emit, phase, free


class Placer(_TwoRows):
    """A unit of at most ``unit_bytes`` into its one or two rows (module doc)."""

    def __init__(self, geometry: Geometry, unit_bytes: int, *, gran: int = 2):
        g = geometry
        _check_unit(g, unit_bytes, gran)
        self._g, self._u = g, unit_bytes
        self._m = slots_for(unit_bytes, g.beat_bytes, gran)
        super().__init__({
            "unit": In(stream.Signature(data.StructLayout({
                "data": 8 * unit_bytes, "o": g.row_shift, "nbytes": range(unit_bytes + 1),
                "two": 1, "user": 1}))),
            "row": Out(stream.Signature(place_row_layout(g))),
        })

    @property
    def latency(self) -> int:
        """Cycles from a unit's acceptance to its first row on ``row``."""
        return 2

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        g, M = self._g, self._m  # noqa: N806
        C, W = g.channels, g.beat_bytes  # noqa: N806
        u = self.unit.payload
        s1v = Signal()
        s1 = Signal(8 * W * M)
        s1s = Signal(W * M)
        k0 = Signal(range(C))
        two = Signal()
        user = Signal()
        emit, phase, free = self._control(m, s1v, two, user)
        m.d.comb += self.unit.ready.eq(free)
        fine = u.o[:g.beat_shift]
        with m.If(free):
            m.d.sync += [
                s1v.eq(self.unit.valid), user.eq(u.user),
                s1.eq(u.data << (fine * 8)),
                s1s.eq(Cat((b >= fine) & (b < fine + u.nbytes) for b in range(W * M))),
                k0.eq(u.o >> g.beat_shift), two.eq(u.two),
            ]
        slots = Array(s1[j * 8 * W:(j + 1) * 8 * W] for j in range(M))
        strbs = Array(s1s[j * W:(j + 1) * W] for j in range(M))
        dbeats, sbeats = [], []
        for c in range(C):
            idx = Signal(range(2 * C), name=f"idx{c}")
            m.d.comb += idx.eq(c + phase * C - k0)
            ok = idx < M
            dbeats.append(Mux(ok, slots[idx], 0))
            sbeats.append(Mux(ok, strbs[idx], 0))
        with m.If(emit):
            m.d.sync += [self.row.payload.data.eq(Cat(dbeats)),
                         self.row.payload.strb.eq(Cat(sbeats))]
        return m


class ScatterPlacer(_TwoRows):
    """A store_t chunk into its one or two rows (module doc)."""

    def __init__(self, geometry: Geometry):
        g = self._g = geometry
        super().__init__({
            "unit": In(stream.Signature(data.StructLayout({
                "elems": data.ArrayLayout(16, g.l), "cnt": range(g.l + 1), "o": g.row_shift,
                "two": 1, "user": 1}))),
            "row": Out(stream.Signature(place_row_layout(g))),
        })

    @property
    def latency(self) -> int:
        """Cycles from a chunk's acceptance to its first row on ``row``."""
        return 2

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        g = self._g
        C, W, L = g.channels, g.beat_bytes, g.l  # noqa: N806
        sp = g.vector_bytes // W  # beats between elements
        sps = sp.bit_length() - 1
        u = self.unit.payload
        s1v = Signal()
        elems = Signal(16 * L)
        cnt = Signal(range(L + 1))
        fine = Signal(range(W))
        k0 = Signal(range(C))
        two = Signal()
        user = Signal()
        emit, phase, free = self._control(m, s1v, two, user)
        m.d.comb += self.unit.ready.eq(free)
        with m.If(free):
            m.d.sync += [
                s1v.eq(self.unit.valid), user.eq(u.user), elems.eq(u.elems), cnt.eq(u.cnt),
                fine.eq(u.o[:g.beat_shift]), k0.eq(u.o >> g.beat_shift), two.eq(u.two),
            ]
        values = Array(elems[e * 16:(e + 1) * 16] for e in range(L))
        onebeat = Cat(((b >> 1) == (fine >> 1)) for b in range(W))
        dbeats, sbeats = [], []
        for c in range(C):
            idx = Signal(range(2 * C), name=f"idx{c}")
            m.d.comb += idx.eq(c + phase * C - k0)
            e = idx >> sps
            ok = ((idx & (sp - 1)) == 0) & (e < cnt)
            dbeats.append(values[e[:max(1, (L - 1).bit_length())]].replicate(W // 2))
            sbeats.append(Mux(ok, onebeat, 0))
        with m.If(emit):
            m.d.sync += [self.row.payload.data.eq(Cat(dbeats)),
                         self.row.payload.strb.eq(Cat(sbeats))]
        return m
