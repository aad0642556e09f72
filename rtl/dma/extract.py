"""``Extractor``: cut a unit (a vector, a bias beat, a word...) out of the rows read for it
(docs/core.md "Memory system").

A unit of at most ``unit_bytes`` at byte offset ``o`` of its first row is read as its own op of
one or two rows (``two``: it continues into the next row, which is then the op's second row).
Each row comes in with the unit's ``o``, ``nbytes``, ``two`` and ``done`` (this row completes
the unit); a row that does not complete one is kept. The unit is the window ``first row ++
second row`` from byte ``o``, ``nbytes`` long, zero beyond: first the ``M = ceil((unit_bytes +
W - gran) / W)`` beats from beat ``o // W`` are selected (a 2C-to-1 choice per beat), then
shifted by ``o % W`` bytes (``gran``-byte steps). Two register stages: a completing row
accepted in cycle t gives its unit in t + 2 (:attr:`Extractor.latency`); one unit per cycle;
the whole pipeline stalls while ``unit`` is not taken. ``user`` bits travel with the unit.
"""

from __future__ import annotations

from typing import Any

from amaranth.hdl import Array, Cat, Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .geometry import Geometry

__all__ = ["Extractor", "slots_for"]


def slots_for(unit_bytes: int, beat_bytes: int, gran: int) -> int:
    """Beats a unit of ``unit_bytes`` starting on a ``gran``-byte boundary can touch."""
    return max(1, -(-(unit_bytes + beat_bytes - gran) // beat_bytes))


def _check_unit(g: Geometry, unit_bytes: int, gran: int) -> None:
    if not isinstance(unit_bytes, int) or not 1 <= unit_bytes <= g.row_bytes:
        raise ValueError(f"unit_bytes must be an integer 1..{g.row_bytes}, not {unit_bytes!r}")
    if not isinstance(gran, int) or gran < 1 or gran & (gran - 1) or gran > g.beat_bytes:
        raise ValueError(f"gran must be a power of two 1..{g.beat_bytes}, not {gran!r}")


class Extractor(wiring.Component):
    """Rows in, units out (module doc). Parameters: ``geometry``, ``unit_bytes``, ``gran``
    (the alignment of every unit's address), ``user_bits``."""

    def __init__(self, geometry: Geometry, unit_bytes: int, *, gran: int = 2,
                 user_bits: int = 1):
        g = geometry
        _check_unit(g, unit_bytes, gran)
        self._g, self._u, self._gran, self._ub = g, unit_bytes, gran, user_bits
        self._m = slots_for(unit_bytes, g.beat_bytes, gran)
        super().__init__({
            "row": In(stream.Signature(self.row_layout)),
            "unit": Out(stream.Signature(data.StructLayout({"data": 8 * unit_bytes,
                                                            "user": user_bits}))),
        })

    @property
    def row_layout(self) -> data.StructLayout:
        g = self._g
        return data.StructLayout({
            "data": 8 * g.row_bytes, "o": g.row_shift, "nbytes": range(self._u + 1),
            "two": 1, "done": 1, "user": self._ub,
        })

    @property
    def latency(self) -> int:
        """Cycles from a completing row's acceptance to its unit on ``unit``."""
        return 2

    @property
    def slots(self) -> int:
        return self._m

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        g, U, M = self._g, self._u, self._m  # noqa: N806
        C, W = g.channels, g.beat_bytes  # noqa: N806
        row = self.row.payload
        out = self.unit
        en = ~out.valid | out.ready
        take = self.row.valid & en
        m.d.comb += self.row.ready.eq(en)

        prev = Signal(8 * g.row_bytes)
        with m.If(take & ~row.done):
            m.d.sync += prev.eq(row.data)
        beats = Array(Cat(prev, row.data)[b * 8 * W:(b + 1) * 8 * W] for b in range(2 * C))
        k0 = row.o >> g.beat_shift
        base = Signal(range(2 * C))
        m.d.comb += base.eq(k0 + (~row.two) * C)
        s1v = Signal()
        s1 = Signal(8 * W * M)
        s1f = Signal(range(W))
        s1n = Signal(range(U + 1))
        s1u = Signal(self._ub)
        with m.If(en):
            m.d.sync += [
                s1v.eq(take & row.done),
                s1.eq(Cat(beats[(base + j)[:base.shape().width]] for j in range(M))),
                s1f.eq(row.o[:g.beat_shift] if g.beat_shift else 0),
                s1n.eq(row.nbytes), s1u.eq(row.user),
            ]
            shifted = (s1 >> (s1f * 8))[:8 * U]
            keep = Cat((b < s1n).replicate(8) for b in range(U))
            m.d.sync += [
                out.valid.eq(s1v), out.payload.data.eq(shifted & keep),
                out.payload.user.eq(s1u),
            ]
        return m
