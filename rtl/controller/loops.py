"""``LoopStack``: the hardware-loop stack of the controller (``loop``/``endloop``,
``control.loop_depth`` deep; functional reference ``Card._op_loop``/``_op_endloop``).

Each entry is {``start`` (first body pc), ``end`` (the endloop's pc), ``remaining``
iterations}; the innermost loop is entry 0 (a shift stack: push moves every entry down, pop
moves them up), so ``top_*`` are plain registers. In one cycle at most one of ``push``,
``pop``, ``dec`` (``remaining`` - 1 of the innermost loop) is given; they take effect at the end
of the cycle. ``active``: a loop is open; ``full``: ``depth`` loops are open; ``top_last``: the
innermost loop is in its last iteration (``remaining`` = 1). ``clear``: empty (host start).
"""

from __future__ import annotations

from typing import Any

from amaranth.hdl import Module, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ..frontend.decode import check_positive
from .regfile import INT_BITS

__all__ = ["LoopStack"]


class LoopStack(wiring.Component):
    """Hardware loops (module doc). Parameters: ``depth`` (``control.loop_depth``), ``words``
    (instruction-buffer depth: pcs are ``range(words + 1)``)."""

    def __init__(self, depth: int, words: int):
        self._depth = check_positive(depth, "depth")
        self._words = check_positive(words, "words")
        pcs = range(words + 1)
        super().__init__({
            "clear": In(1),
            "push": In(1),
            "push_start": In(pcs),
            "push_end": In(pcs),
            "push_count": In(INT_BITS),
            "pop": In(1),
            "dec": In(1),
            "active": Out(1),
            "full": Out(1),
            "top_start": Out(pcs),
            "top_end": Out(pcs),
            "top_last": Out(1),
        })

    @property
    def depth(self) -> int:
        return self._depth

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        pcs = range(self._words + 1)
        entry = data.StructLayout({"start": pcs, "end": pcs, "remaining": INT_BITS})
        st = [Signal(entry, name=f"loop{i}") for i in range(self._depth)]
        n = Signal(range(self._depth + 1))
        m.d.comb += [
            self.active.eq(n != 0),
            self.full.eq(n == self._depth),
            self.top_start.eq(st[0].start),
            self.top_end.eq(st[0].end),
            self.top_last.eq(st[0].remaining == 1),
        ]
        with m.If(self.push):
            m.d.sync += [
                n.eq(n + 1),
                st[0].start.eq(self.push_start),
                st[0].end.eq(self.push_end),
                st[0].remaining.eq(self.push_count),
            ]
            m.d.sync += [st[i].eq(st[i - 1]) for i in range(1, self._depth)]
        with m.Elif(self.pop):
            m.d.sync += n.eq(n - 1)
            m.d.sync += [st[i].eq(st[i + 1]) for i in range(self._depth - 1)]
        with m.Elif(self.dec):
            m.d.sync += st[0].remaining.eq(st[0].remaining - 1)
        with m.If(self.clear):
            m.d.sync += n.eq(0)
        return m
