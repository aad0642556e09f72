"""``WbufSpace``: the DMA weight buffer, an on-chip memory of ``buffers.wbuf_tiles`` rows of one
tile (DFX §IV-B; docs/core.md "Memory system").

One row per cycle, in op (issue) order: a read row is issued in cycle t and leaves on
``rdata`` in ``t + timing.wbuf_latency`` (a pipeline that stalls as a whole while ``rdata``
is not taken); a write row is written in the cycle its ``wdata`` row is taken (byte enables =
``strb`` within the row's beats), so a read issued after it sees it. ``wack`` pulses in the
cycle the last row of a write op with ``end`` is written.
"""

from __future__ import annotations

from typing import Any

from amaranth.hdl import Cat, Module, Signal, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.memory import Memory

from ..uram_init import ultra
from .geometry import Geometry, row_mask, sop_layout
from .hbm import space_signature

__all__ = ["WbufSpace"]


class WbufSpace(wiring.Component):
    """The weight buffer (module doc). Parameters: ``geometry``, ``latency`` (read latency in
    cycles, >= 1: ``timing.wbuf_latency``)."""

    def __init__(self, geometry: Geometry, *, latency: int):
        if not isinstance(geometry, Geometry):
            raise TypeError(f"geometry must be a Geometry, not {geometry!r}")
        if not isinstance(latency, int) or latency < 1:
            raise ValueError(f"latency (timing.wbuf_latency) must be an integer >= 1, "
                             f"not {latency!r}")
        self._g, self._lat = geometry, latency
        #: The storage (its ``data`` is reachable from a simulator testbench).
        self.mem = Memory(shape=unsigned(8 * geometry.row_bytes), depth=geometry.wbuf_rows,
                          init=[], attrs=ultra())
        super().__init__(space_signature(geometry))

    @property
    def latency(self) -> int:
        """Cycles from a read row's issue to its row on ``rdata``."""
        return self._lat

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        g = self._g
        C, W, R = g.channels, g.beat_bytes, g.row_bytes  # noqa: N806
        m.submodules.mem = mem = self.mem
        rd = mem.read_port()
        wr = mem.write_port(granularity=8)
        lay = sop_layout(g)
        m.submodules.opq = opq = SyncFIFO(width=lay.size, depth=4)
        m.d.comb += [opq.w_data.eq(self.op.payload), opq.w_en.eq(self.op.valid),
                     self.op.ready.eq(opq.w_rdy)]
        h = lay(opq.r_data)
        j = Signal(range(g.max_block_rows + 1))
        last = j == h.nrows - 1
        abits = max(1, (g.wbuf_rows - 1).bit_length())
        addr = (h.row + j)[:abits]

        # ---- read pipeline (stalls as a whole)
        meta = data.StructLayout({"tag": h.tag.shape(), "cid": h.cid.shape(), "first": 1,
                                  "last": 1})
        L = self._lat  # noqa: N806
        v = [Signal(name=f"v{i}") for i in range(L + 1)]  # v[i]: stage i holds a row
        md = [Signal(meta, name=f"meta{i}") for i in range(L + 1)]
        dd = [None, rd.data] + [Signal(8 * R, name=f"data{i}") for i in range(2, L + 1)]
        adv = ~v[L] | self.rdata.ready
        issue_rd = opq.r_rdy & ~h.write & adv
        m.d.comb += [rd.addr.eq(addr), rd.en.eq(adv)]
        with m.If(adv):
            m.d.sync += [v[1].eq(issue_rd), md[1].tag.eq(h.tag), md[1].cid.eq(h.cid),
                         md[1].first.eq(j == 0), md[1].last.eq(last)]
            for i in range(2, L + 1):
                m.d.sync += [v[i].eq(v[i - 1]), md[i].eq(md[i - 1]), dd[i].eq(dd[i - 1])]
        out = self.rdata.payload
        m.d.comb += [
            self.rdata.valid.eq(v[L]), out.data.eq(dd[L]), out.tag.eq(md[L].tag),
            out.cid.eq(md[L].cid), out.first.eq(md[L].first), out.last.eq(md[L].last),
        ]

        # ---- writes
        do_wr = opq.r_rdy & h.write & self.wdata.valid
        mask = Signal(C)
        m.d.comb += mask.eq(row_mask(j, h.nrows, h.m0, h.m1, C))
        en = Cat(self.wdata.payload.strb[c * W:(c + 1) * W] & mask[c].replicate(W)
                 for c in range(C))
        m.d.comb += [
            wr.addr.eq(addr), wr.data.eq(self.wdata.payload.data),
            wr.en.eq(Cat(en) & do_wr.replicate(R)),
            self.wdata.ready.eq(do_wr),
            self.wsel.eq(h.cid), self.wsel_valid.eq(opq.r_rdy & h.write),
            self.wack.valid.eq(do_wr & last & h.end), self.wack.payload.eq(h.cid),
        ]

        step = issue_rd | do_wr
        m.d.comb += opq.r_en.eq(step & last)
        with m.If(step):
            m.d.sync += j.eq(j + 1)
            with m.If(last):
                m.d.sync += j.eq(0)
        return m
