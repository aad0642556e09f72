"""``HbmSpace``: the HBM as rows over C AXI ports, one per pseudo-channel (DFX §2.2; docs/core.md
"Memory system").

Row ``r``'s beat ``k`` is local beat ``r`` of pseudo-channel ``k`` (ISA byte ``a``: channel
``(a // W) % C``, local offset ``(a // R)·W + a % W``, the compiler's interleave). An op is
broadcast to every port's queue in one cycle (accepted when all have room): port ``k`` moves
the op's beats in its column, one burst of ``count`` beats at local beat ``row`` (+1 if the
first row does not use ``k``), or nothing. All ports see all ops in the same order, which is
the issue order the arbiter gives them; each port keeps it and its read/write ordering
(:class:`~.channel.AxiChannel`).

* **Rows back** (reads): the op's rows in order; a row leaves when every port of its mask has
  its beat (a register stage: an R beat accepted in cycle t is on ``rdata`` in t + 3 at the
  earliest).
* **Write rows**: ``wdata`` rows in write-op order (``wsel`` names the client whose row is
  next); a row is taken when every port of its mask can take its beat.
* **Write acknowledgements**: ``wack`` names the client of a write op with ``end`` once every
  port has the responses of all its bursts up to that op.
"""

from __future__ import annotations

from typing import Any

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from ..bus.axi import AxiSignature
from ..isa_layouts import Space
from .channel import OP_DEPTH, AxiChannel
from .geometry import ADDR_BITS, Geometry, cid_shape, row_mask, sop_layout, srow_layout, wrow_layout

__all__ = ["WDATA_DEPTH", "HbmSpace", "space_signature"]

WDATA_DEPTH = 4
"""Write ops accepted and waiting for (the rest of) their data rows, per space."""


def space_signature(g: Geometry) -> dict[str, Any]:
    """The members every space has: ``op`` (ops with ``cid``, in issue order), ``wdata`` (rows
    of its write ops, in order) and ``wsel`` (whose row is next, valid with ``wsel_valid``),
    ``rdata`` (rows of its read ops, in order, with ``cid``), ``wack`` (a pulse with ``cid``:
    a write op with ``end`` is acknowledged)."""
    return {
        "op": In(stream.Signature(sop_layout(g))),
        "wdata": In(stream.Signature(wrow_layout(g))),
        "wsel": Out(cid_shape()),
        "wsel_valid": Out(1),
        "rdata": Out(stream.Signature(srow_layout(g))),
        "wack": Out(stream.Signature(cid_shape(), always_ready=True)),
    }


class HbmSpace(wiring.Component):
    """The HBM space (module doc). Parameters: ``geometry``; ``asm_depth`` (read ops in flight,
    default the read credits), ``ack_depth`` (write ops awaiting acknowledgement)."""

    def __init__(self, geometry: Geometry, *, asm_depth: int | None = None,
                 ack_depth: int = 16):
        if not isinstance(geometry, Geometry):
            raise TypeError(f"geometry must be a Geometry, not {geometry!r}")
        self._g = g = geometry
        self._asm_depth = asm_depth or g.read_credits
        self._ack_depth = ack_depth
        self._beat_bits = max(1, (g.hbm_rows - 1).bit_length())
        self._block = g.block_rows(Space.HBM)
        sig = space_signature(g)
        sig["base"] = In(data.ArrayLayout(ADDR_BITS, g.channels))
        sig["axi"] = Out(AxiSignature(data_width=8 * g.beat_bytes)).array(g.channels)
        super().__init__(sig)

    @property
    def geometry(self) -> Geometry:
        return self._g

    @property
    def wdata_depth(self) -> int:
        """Write ops waiting for their data rows, at most (then no more ops are taken)."""
        return WDATA_DEPTH

    @property
    def op_depth(self) -> int:
        """Each AXI port's op queue (:data:`~.channel.OP_DEPTH`)."""
        return OP_DEPTH

    @property
    def wack_latency(self) -> int:
        """Cycles from the last B response of a write op with ``end`` to ``wack``: the port's
        acknowledgement, then the space's counters."""
        return 2

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        g = self._g
        C, W = g.channels, g.beat_bytes  # noqa: N806
        chans = []
        for c in range(C):
            ch = AxiChannel(beat_bytes=W, beat_bits=self._beat_bits, max_len=self._block,
                            credits=g.read_credits, ack_depth=self._ack_depth)
            m.submodules[f"ch{c}"] = ch
            wiring.connect(m, wiring.flipped(self.axi[c]), ch.axi)
            m.d.comb += ch.base.eq(self.base[c])
            chans.append(ch)

        # ---- broadcast
        op = self.op.payload
        rq_lay = data.StructLayout({"nrows": op.nrows.shape(), "m0": C, "m1": C,
                                    "tag": op.tag.shape(), "cid": op.cid.shape()})
        wq_lay = data.StructLayout({"nrows": op.nrows.shape(), "m0": C, "m1": C,
                                    "cid": op.cid.shape()})
        tq_lay = data.StructLayout({"cid": op.cid.shape(), "end": 1})
        m.submodules.aq = aq = SyncFIFO(width=rq_lay.size, depth=self._asm_depth)
        m.submodules.dq = dq = SyncFIFO(width=wq_lay.size, depth=WDATA_DEPTH)
        m.submodules.tq = tq = SyncFIFO(width=tq_lay.size, depth=self._ack_depth)
        room = Signal()
        m.d.comb += room.eq(Cat(ch.op.ready for ch in chans).all()
                            & (~op.write | (dq.w_rdy & tq.w_rdy)) & (op.write | aq.w_rdy))
        go = self.op.valid & room
        m.d.comb += self.op.ready.eq(room)
        one = op.nrows == 1
        for c, ch in enumerate(chans):
            i0, i1 = op.m0[c], op.m1[c]
            m.d.comb += [
                ch.op.valid.eq(go),
                ch.op.payload.write.eq(op.write),
                ch.op.payload.beat.eq(op.row + (~one & ~i0)),
                ch.op.payload.count.eq(Mux(one, i0 & i1, op.nrows - ~i0 - ~i1)),
            ]
        rq_in = rq_lay(aq.w_data)
        wq_in = wq_lay(dq.w_data)
        tq_in = tq_lay(tq.w_data)
        m.d.comb += [
            rq_in.nrows.eq(op.nrows), rq_in.m0.eq(op.m0), rq_in.m1.eq(op.m1),
            rq_in.tag.eq(op.tag), rq_in.cid.eq(op.cid),
            wq_in.nrows.eq(op.nrows), wq_in.m0.eq(op.m0), wq_in.m1.eq(op.m1),
            wq_in.cid.eq(op.cid),
            tq_in.cid.eq(op.cid), tq_in.end.eq(op.end),
            aq.w_en.eq(go & ~op.write), dq.w_en.eq(go & op.write), tq.w_en.eq(go & op.write),
        ]

        # ---- row assembly
        ah = rq_lay(aq.r_data)
        j = Signal(range(self._block + 1))
        mask = Signal(C)
        m.d.comb += mask.eq(row_mask(j, ah.nrows, ah.m0, ah.m1, C))
        have = Cat(~mask[c] | ch.r.valid for c, ch in enumerate(chans)).all()
        out = self.rdata
        can = ~out.valid | out.ready
        fire = aq.r_rdy & have & can
        last = j == ah.nrows - 1
        for c, ch in enumerate(chans):
            m.d.comb += ch.r.ready.eq(fire & mask[c])
        m.d.comb += aq.r_en.eq(fire & last)
        with m.If(fire):
            m.d.sync += [
                out.valid.eq(1),
                out.payload.data.eq(Cat(ch.r.payload for ch in chans)),
                out.payload.tag.eq(ah.tag), out.payload.cid.eq(ah.cid),
                out.payload.first.eq(j == 0), out.payload.last.eq(last),
                j.eq(j + 1),
            ]
            with m.If(last):
                m.d.sync += j.eq(0)
        with m.Elif(out.ready):
            m.d.sync += out.valid.eq(0)

        # ---- write distribution
        wh = wq_lay(dq.r_data)
        wj = Signal(range(self._block + 1))
        wmask = Signal(C)
        m.d.comb += wmask.eq(row_mask(wj, wh.nrows, wh.m0, wh.m1, C))
        wroom = Cat(~wmask[c] | ch.w.ready for c, ch in enumerate(chans)).all()
        wfire = dq.r_rdy & self.wdata.valid & wroom
        wlast = wj == wh.nrows - 1
        row = self.wdata.payload
        for c, ch in enumerate(chans):
            m.d.comb += [
                ch.w.valid.eq(wfire & wmask[c]),
                ch.w.payload.data.eq(row.data[c * 8 * W:(c + 1) * 8 * W]),
                ch.w.payload.strb.eq(row.strb[c * W:(c + 1) * W]),
            ]
        m.d.comb += [
            self.wsel.eq(wh.cid), self.wsel_valid.eq(dq.r_rdy),
            self.wdata.ready.eq(wfire), dq.r_en.eq(wfire & wlast),
        ]
        with m.If(wfire):
            m.d.sync += wj.eq(wj + 1)
            with m.If(wlast):
                m.d.sync += wj.eq(0)

        # ---- write acknowledgements
        kb = (self._ack_depth).bit_length() + 1
        seq = Signal(kb)
        acked = [Signal(kb, name=f"acked{c}") for c in range(C)]
        for c, ch in enumerate(chans):
            m.d.sync += acked[c].eq(acked[c] + ch.acked)
        th = tq_lay(tq.r_data)
        done = tq.r_rdy & Cat(a != seq for a in acked).all()
        m.d.comb += [
            tq.r_en.eq(done),
            self.wack.valid.eq(done & th.end), self.wack.payload.eq(th.cid),
        ]
        m.d.sync += seq.eq(seq + done)
        return m
