"""The controller's memory word port for ``lw``/``sw`` (docs/core.md "Memory system": the
controller word port is one client of the per-channel in-order arbitration).

``mem_req`` {``write``, ``space`` (``Space.HBM``/``Space.DDR``), ``addr`` (the ISA byte
address in that space, 4-aligned), ``wdata`` (32 bits)} goes out; ``mem_resp`` {``rdata``}
comes back, exactly one per request, in request order (a ``sw``'s response once its write is
done). :class:`WordPort` remembers what each outstanding request was (up to ``outstanding``):
the response to a ``lw`` writes ``rdata`` (zero-extended) to its ``rd`` through ``wb`` in the
cycle it arrives (``mem_resp.ready`` is always high), so the value is available the next
cycle. ``writes`` says some ``sw`` is still outstanding (a ``lw`` waits for it: loads never
pass stores); ``full``: no new request may go out; ``busy``: something is outstanding.
"""

from __future__ import annotations

from typing import Any

from amaranth.hdl import Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..frontend.decode import check_positive
from ..isa_layouts import Space
from .regfile import INT_COUNT, IntWriteSignature

__all__ = ["WORD_DATA_BITS", "WordPort", "mem_req_layout", "mem_resp_layout"]

WORD_DATA_BITS = 32
"""lw/sw move one 32-bit word (isa/spec.yaml)."""


def mem_req_layout(addr_bits: int) -> data.StructLayout:
    """A word request: ``write``, ``space``, ``addr`` (``addr_bits`` wide), ``wdata``."""
    return data.StructLayout({
        "write": 1, "space": Space, "addr": addr_bits, "wdata": WORD_DATA_BITS,
    })


def mem_resp_layout() -> data.StructLayout:
    """A word response: ``rdata`` (lw; ignored for sw)."""
    return data.StructLayout({"rdata": WORD_DATA_BITS})


class WordPort(wiring.Component):
    """Outstanding lw/sw bookkeeping (module doc). Parameter ``outstanding``: requests in
    flight at most (>= 1)."""

    def __init__(self, outstanding: int):
        self._n = check_positive(outstanding, "outstanding")
        super().__init__({
            "clear": In(1),
            "sent": In(1),
            "sent_write": In(1),
            "sent_rd": In(range(INT_COUNT)),
            "resp": In(stream.Signature(mem_resp_layout())),
            "wb": Out(IntWriteSignature()),
            "busy": Out(1),
            "writes": Out(1),
            "full": Out(1),
        })

    @property
    def outstanding(self) -> int:
        return self._n

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        n = self._n
        entry = data.StructLayout({"write": 1, "rd": range(INT_COUNT)})
        q = [Signal(entry, name=f"req{i}") for i in range(n)]
        count = Signal(range(n + 1))
        nwrites = Signal(range(n + 1))
        take = self.resp.valid & (count != 0)
        head = q[0]
        m.d.comb += [
            self.resp.ready.eq(1),
            self.busy.eq(count != 0),
            self.writes.eq(nwrites != 0),
            self.full.eq(count == n),
            self.wb.en.eq(take & ~head.write),
            self.wb.idx.eq(head.rd),
            self.wb.value.eq(self.resp.payload.rdata),
        ]
        # a shift queue: the oldest request is q[0]
        new = Signal(entry)
        m.d.comb += [new.write.eq(self.sent_write), new.rd.eq(self.sent_rd)]
        after = count - take
        for i in range(n):
            with m.If(take & (i + 1 < count)):
                m.d.sync += q[i].eq(q[i + 1] if i + 1 < n else q[i])
            with m.If(self.sent & (after == i)):
                m.d.sync += q[i].eq(new)
        m.d.sync += [
            count.eq(count + self.sent - take),
            nwrites.eq(nwrites + (self.sent & self.sent_write) - (take & head.write)),
        ]
        with m.If(self.clear):
            m.d.sync += [count.eq(0), nwrites.eq(0)]
        return m
