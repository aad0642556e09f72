"""``WordPort``: the controller's ``lw`` / ``sw`` (isa/spec.yaml; docs/core.md "Memory system").

``req`` {``write``, ``space`` (HBM or DDR), ``addr`` (ISA byte address, 4-aligned),
``wdata``} is accepted at issue (it claims its space then) and becomes one single-beat op;
``resp`` {``rdata``} answers every request once, in request order: a ``lw`` with the
little-endian word when its row is back, a ``sw`` when its write response is (the word is
then in memory: a later read anywhere sees it). Up to ``depth`` requests are in flight.
"""

from __future__ import annotations

from typing import Any

from amaranth.hdl import Array, Cat, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from ..isa_layouts import Space
from .fabric import FabricPort, space_bits
from .geometry import ADDR_BITS, MEM_SPACES, Geometry

__all__ = ["WordPort", "word_req_layout", "word_resp_layout"]

WORD_BITS = 32
"""lw / sw move 32 bits (isa/spec.yaml)."""


def word_req_layout() -> data.StructLayout:
    return data.StructLayout({"write": 1, "space": Space, "addr": ADDR_BITS,
                              "wdata": WORD_BITS})


def word_resp_layout() -> data.StructLayout:
    return data.StructLayout({"rdata": WORD_BITS})


class WordPort(wiring.Component):
    """lw / sw (module doc). Parameters: ``geometry``, ``depth`` (requests in flight)."""

    def __init__(self, geometry: Geometry, *, depth: int = 4):
        self._g, self._depth = geometry, depth
        super().__init__({
            "req": In(stream.Signature(word_req_layout())),
            "resp": Out(stream.Signature(word_resp_layout())),
            "mem": Out(FabricPort(geometry, writes=True)),
        })

    @property
    def depth(self) -> int:
        """Requests in flight, at most."""
        return self._depth

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        g = self._g
        C, R = g.channels, g.row_bytes  # noqa: N806
        rs, bs = g.row_shift, g.beat_shift
        mem = self.mem
        rl = word_req_layout()
        plen = data.StructLayout({"write": 1, "space": 2})
        m.submodules.opq = opq = SyncFIFO(width=rl.size, depth=self._depth)
        m.submodules.wq = wq = SyncFIFO(width=rl.size, depth=self._depth)
        m.submodules.pend = pend = SyncFIFO(width=plen.size, depth=self._depth)
        rq = self.req.payload
        room = opq.w_rdy & wq.w_rdy & pend.w_rdy
        acc = self.req.valid & room & mem.claim_ok
        pn = plen(pend.w_data)
        m.d.comb += [
            mem.claim.eq(space_bits(rq.space)), mem.claim_valid.eq(self.req.valid & room),
            self.req.ready.eq(room & mem.claim_ok),
            opq.w_data.eq(rq), opq.w_en.eq(acc),
            wq.w_data.eq(rq), wq.w_en.eq(acc & rq.write),
            pn.write.eq(rq.write), pn.space.eq(Mux(rq.space == Space.DDR, 1, 0)),
            pend.w_en.eq(acc),
        ]
        # ---- ops
        h = rl(opq.r_data)
        beat = Cat(h.addr[bs:rs] == b for b in range(C))
        op = mem.op.payload
        m.d.comb += [
            op.space.eq(h.space), op.write.eq(h.write), op.row.eq(h.addr[rs:]),
            op.nrows.eq(1), op.m0.eq(beat), op.m1.eq(beat), op.end.eq(1),
            op.tag.eq(h.addr[:rs]),
            mem.op.valid.eq(opq.r_rdy), opq.r_en.eq(mem.op.ready),
        ]
        wh = rl(wq.r_data)
        wpos = wh.addr[2:rs]
        m.d.comb += [
            mem.wdata.payload.space.eq(wh.space),
            mem.wdata.payload.data.eq(wh.wdata.replicate(R // 4)),
            mem.wdata.payload.strb.eq(Cat((wpos == i).replicate(4) for i in range(R // 4))),
            mem.wdata.valid.eq(wq.r_rdy), wq.r_en.eq(mem.wdata.ready),
        ]
        # ---- responses in request order
        ph = plen(pend.r_data)
        nacks = [Signal(range(self._depth + 1), name=f"acks{i}") for i in range(2)]
        have_ack = Mux(ph.space == 1, nacks[1] != 0, nacks[0] != 0)
        row = mem.rdata.payload
        words = Array(row.data[32 * i:32 * (i + 1)] for i in range(R // 4))
        sel = words[row.tag[2:rs]]
        ready_now = pend.r_rdy & Mux(ph.write, have_ack, mem.rdata.valid)
        fire = ready_now & self.resp.ready
        m.d.comb += [
            self.resp.valid.eq(ready_now), self.resp.payload.rdata.eq(sel),
            mem.rdata.ready.eq(pend.r_rdy & ~ph.write & self.resp.ready),
            pend.r_en.eq(fire),
        ]
        for i, sp in enumerate(MEM_SPACES[:2]):
            assert sp in (Space.HBM, Space.DDR)
            m.d.sync += nacks[i].eq(nacks[i] + mem.wack[i]
                                    - (fire & ph.write & (ph.space == i)))
        return m
