"""``DdrSpace``: the DDR as rows over one AXI port (docs/core.md "Memory system").

Row ``r``'s beat ``k`` is at AXI address ``ddr_base + r·R + k·W``: an op is one burst from its
first row's lowest beat to its last row's highest beat (beats of the span outside the op's
masks are read and dropped, or written with no strobe), served in issue order with the port's
read/write ordering (:class:`~.channel.AxiChannel`). Rows are gathered beat by beat (one beat
per cycle): a row leaves on ``rdata`` the cycle after its last beat left the R buffer; write
rows are cut into their beats, one per cycle. ``wack`` follows each write op's response.
"""

from __future__ import annotations

from typing import Any

from amaranth.hdl import Array, Cat, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from ..bus.axi import AxiSignature
from ..isa_layouts import Space
from .channel import AxiChannel
from .geometry import ADDR_BITS, Geometry, row_mask
from .hbm import WDATA_DEPTH, space_signature

__all__ = ["DdrSpace", "highest_bit", "lowest_bit"]


def lowest_bit(v: Any, width: int) -> Any:
    """Index of the lowest set bit of ``v`` (0 if none)."""
    r = 0
    for i in reversed(range(width)):
        r = Mux(v[i], i, r)
    return r


def highest_bit(v: Any, width: int) -> Any:
    """Index of the highest set bit of ``v`` (0 if none)."""
    r = 0
    for i in range(width):
        r = Mux(v[i], i, r)
    return r


class DdrSpace(wiring.Component):
    """The DDR space (module doc). Parameters: ``geometry``, ``asm_depth`` (read ops in
    flight), ``ack_depth`` (write ops awaiting their response)."""

    def __init__(self, geometry: Geometry, *, asm_depth: int = 16, ack_depth: int = 16):
        if not isinstance(geometry, Geometry):
            raise TypeError(f"geometry must be a Geometry, not {geometry!r}")
        self._g = g = geometry
        self._asm_depth, self._ack_depth = asm_depth, ack_depth
        self._block = g.block_rows(Space.DDR)
        sig = space_signature(g)
        sig["base"] = In(ADDR_BITS)
        sig["axi"] = Out(AxiSignature(data_width=8 * g.beat_bytes))
        super().__init__(sig)

    @property
    def geometry(self) -> Geometry:
        return self._g

    @property
    def wdata_depth(self) -> int:
        """Write ops waiting for their data rows, at most."""
        return WDATA_DEPTH

    @property
    def wack_latency(self) -> int:
        """Cycles from the last B response of a write op with ``end`` to ``wack``: the port's
        acknowledgement (no counter stage: one port)."""
        return 1

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        g = self._g
        C, W = g.channels, g.beat_bytes  # noqa: N806
        kbits = max(1, (C - 1).bit_length())
        ch = AxiChannel(beat_bytes=W, beat_bits=ADDR_BITS - g.beat_shift,
                        max_len=self._block * C, credits=g.ddr_credits,
                        ack_depth=self._ack_depth)
        m.submodules.ch = ch
        wiring.connect(m, wiring.flipped(self.axi), ch.axi)
        m.d.comb += ch.base.eq(self.base)

        op = self.op.payload
        one = op.nrows == 1
        lo = Signal(kbits)
        hi = Signal(kbits)
        m.d.comb += [
            lo.eq(lowest_bit(Mux(one, op.m0 & op.m1, op.m0), C)),
            hi.eq(highest_bit(Mux(one, op.m0 & op.m1, op.m1), C)),
        ]
        rq_lay = data.StructLayout({"nrows": op.nrows.shape(), "lo": kbits, "hi": kbits,
                                    "tag": op.tag.shape(), "cid": op.cid.shape()})
        wq_lay = data.StructLayout({"nrows": op.nrows.shape(), "lo": kbits, "hi": kbits,
                                    "m0": C, "m1": C, "cid": op.cid.shape()})
        tq_lay = data.StructLayout({"cid": op.cid.shape(), "end": 1})
        m.submodules.aq = aq = SyncFIFO(width=rq_lay.size, depth=self._asm_depth)
        m.submodules.dq = dq = SyncFIFO(width=wq_lay.size, depth=WDATA_DEPTH)
        m.submodules.tq = tq = SyncFIFO(width=tq_lay.size, depth=self._ack_depth)
        room = ch.op.ready & Mux(op.write, dq.w_rdy & tq.w_rdy, aq.w_rdy)
        go = self.op.valid & room
        rq_in, wq_in, tq_in = rq_lay(aq.w_data), wq_lay(dq.w_data), tq_lay(tq.w_data)
        m.d.comb += [
            self.op.ready.eq(room),
            ch.op.valid.eq(go),
            ch.op.payload.write.eq(op.write),
            ch.op.payload.beat.eq(Cat(lo, op.row)),
            ch.op.payload.count.eq(((op.nrows - 1) << kbits) + hi - lo + 1),
            rq_in.nrows.eq(op.nrows), rq_in.lo.eq(lo), rq_in.hi.eq(hi),
            rq_in.tag.eq(op.tag), rq_in.cid.eq(op.cid),
            wq_in.nrows.eq(op.nrows), wq_in.lo.eq(lo), wq_in.hi.eq(hi),
            wq_in.m0.eq(op.m0), wq_in.m1.eq(op.m1), wq_in.cid.eq(op.cid),
            tq_in.cid.eq(op.cid), tq_in.end.eq(op.end),
            aq.w_en.eq(go & ~op.write), dq.w_en.eq(go & op.write), tq.w_en.eq(go & op.write),
        ]

        # ---- rows back, beat by beat
        ah = rq_lay(aq.r_data)
        j = Signal(range(self._block + 1))
        k = Signal(kbits)
        started = Signal()  # k is valid for the head op
        kk = Mux(started, k, ah.lo)
        rowreg = Signal(8 * C * W)
        last_row = j == ah.nrows - 1
        row_end = (kk == C - 1) | (last_row & (kk == ah.hi))
        out = self.rdata
        can = ~out.valid | out.ready
        fire = aq.r_rdy & ch.r.valid & (~row_end | can)
        m.d.comb += [ch.r.ready.eq(fire), aq.r_en.eq(fire & row_end & last_row)]
        merged = Cat(Mux(kk == s, ch.r.payload, rowreg[s * 8 * W:(s + 1) * 8 * W])
                     for s in range(C))
        with m.If(fire):
            m.d.sync += [rowreg.eq(merged), k.eq(kk + 1), started.eq(1)]
            with m.If(row_end):
                m.d.sync += [
                    out.valid.eq(1), out.payload.data.eq(merged),
                    out.payload.tag.eq(ah.tag), out.payload.cid.eq(ah.cid),
                    out.payload.first.eq(j == 0), out.payload.last.eq(last_row),
                    j.eq(j + 1), k.eq(0),
                ]
                with m.If(last_row):
                    m.d.sync += [j.eq(0), started.eq(0)]
            with m.Elif(out.ready):
                m.d.sync += out.valid.eq(0)
        with m.Elif(out.ready):
            m.d.sync += out.valid.eq(0)

        # ---- write rows, beat by beat
        wh = wq_lay(dq.r_data)
        wj = Signal(range(self._block + 1))
        wk = Signal(kbits)
        wstarted = Signal()
        wkk = Mux(wstarted, wk, wh.lo)
        wlast_row = wj == wh.nrows - 1
        wrow_end = (wkk == C - 1) | (wlast_row & (wkk == wh.hi))
        wmask = Signal(C)
        m.d.comb += wmask.eq(row_mask(wj, wh.nrows, wh.m0, wh.m1, C))
        row = self.wdata.payload
        beats = Array(row.data[s * 8 * W:(s + 1) * 8 * W] for s in range(C))
        strbs = Array(row.strb[s * W:(s + 1) * W] for s in range(C))
        wfire = dq.r_rdy & self.wdata.valid & ch.w.ready
        m.d.comb += [
            ch.w.valid.eq(dq.r_rdy & self.wdata.valid),
            ch.w.payload.data.eq(beats[wkk]),
            ch.w.payload.strb.eq(Mux(wmask.bit_select(wkk, 1), strbs[wkk], 0)),
            self.wdata.ready.eq(wfire & wrow_end),
            self.wsel.eq(wh.cid), self.wsel_valid.eq(dq.r_rdy),
            dq.r_en.eq(wfire & wrow_end & wlast_row),
        ]
        with m.If(wfire):
            m.d.sync += [wk.eq(wkk + 1), wstarted.eq(1)]
            with m.If(wrow_end):
                m.d.sync += [wj.eq(wj + 1), wk.eq(0)]
                with m.If(wlast_row):
                    m.d.sync += [wj.eq(0), wstarted.eq(0)]

        # ---- write acknowledgements: one burst per write op
        th = tq_lay(tq.r_data)
        m.d.comb += [
            tq.r_en.eq(ch.acked),
            self.wack.valid.eq(ch.acked & th.end), self.wack.payload.eq(th.cid),
        ]
        return m
