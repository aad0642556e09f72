"""``ProgramLoader``: the program read for the frontend's loader (docs/core.md "The
instruction's path", step 1; "Memory system").

``cmd`` {``addr`` (the DDR-port byte address ``prog``, 32-byte aligned), ``words``} claims
the DDR and reads the ``words · 32`` bytes in runs of whole rows (one op per DDR block);
``data`` gives the 256-bit instruction words in order, little-endian as isa/encoding writes
them, one per cycle as the rows come back. ``ddr_base`` is the DDR buffer's address: the
loader asks for DDR offset ``addr − ddr_base`` (mod 2^64), so the AXI address is ``addr``.
"""

from __future__ import annotations

from typing import Any

from amaranth.hdl import Array, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..isa_layouts import WORD_BITS, Space
from .fabric import FabricPort, space_bits
from .geometry import ADDR_BITS, Geometry, prefix_mask, suffix_mask

__all__ = ["ProgramLoader", "prog_cmd_layout"]

WORD_BYTES = WORD_BITS // 8


def prog_cmd_layout(words: int) -> data.StructLayout:
    """``addr`` (DDR-port byte address), ``words`` (256-bit words, 0..words)."""
    return data.StructLayout({"addr": ADDR_BITS, "words": range(words + 1)})


class ProgramLoader(wiring.Component):
    """The program reader (module doc). Parameters: ``geometry``, ``words`` (the instruction
    buffer's size, ``buffers.instruction_words``)."""

    def __init__(self, geometry: Geometry, *, words: int):
        g = self._g = geometry
        if g.row_bytes % WORD_BYTES:
            raise ValueError(f"a row ({g.row_bytes} bytes) must hold whole instruction words")
        self._words = words
        super().__init__({
            "cmd": In(stream.Signature(prog_cmd_layout(words))),
            "data": Out(stream.Signature(WORD_BITS)),
            "ddr_base": In(ADDR_BITS),
            "mem": Out(FabricPort(g, writes=False)),
        })

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        g = self._g
        C, R = g.channels, g.row_bytes  # noqa: N806
        rs, bs = g.row_shift, g.beat_shift
        per = R // WORD_BYTES
        blk = g.block_rows(Space.DDR)
        mem = self.mem
        cp = self.cmd.payload
        busy = Signal()
        m.d.comb += [
            mem.claim.eq(space_bits(Space.DDR)), mem.claim_valid.eq(self.cmd.valid & ~busy),
            self.cmd.ready.eq(~busy & mem.claim_ok),
        ]
        pos = Signal(ADDR_BITS)  # next DDR offset to ask for
        end = Signal(ADDR_BITS)
        left = Signal(range(self._words + 1))  # words still to give out
        with m.If(self.cmd.valid & self.cmd.ready):
            off = cp.addr - self.ddr_base
            m.d.sync += [pos.eq(off), end.eq(off + cp.words * WORD_BYTES), left.eq(cp.words),
                         busy.eq(cp.words != 0)]
        # ---- ops: runs of rows inside one DDR block
        asking = Signal()
        m.d.comb += asking.eq(busy & (pos != end))
        r0 = pos[rs:]
        rlast = (end - 1)[rs:]
        n_blk = blk - (r0 & (blk - 1))
        nrows = Mux(rlast - r0 + 1 < n_blk, rlast - r0 + 1, n_blk)
        stop = (r0 + nrows) << rs
        op = mem.op.payload
        m.d.comb += [
            op.space.eq(Space.DDR), op.write.eq(0), op.row.eq(r0), op.nrows.eq(nrows),
            op.m0.eq(suffix_mask(pos[bs:rs], C)),
            op.m1.eq(Mux(stop >= end, prefix_mask((end - 1)[bs:rs], C), (1 << C) - 1)),
            op.end.eq(stop >= end), op.tag.eq(pos[:rs]),
            mem.op.valid.eq(asking),
        ]
        with m.If(mem.op.valid & mem.op.ready):
            m.d.sync += pos.eq(Mux(stop >= end, end, stop))
        # ---- rows back: words from the first one the row holds
        rowv = Signal()
        row = Signal(8 * R)
        idx = Signal(range(per))
        rd = mem.rdata
        can_take = ~rowv
        m.d.comb += rd.ready.eq(can_take)
        with m.If(rd.valid & can_take):
            m.d.sync += [rowv.eq(1), row.eq(rd.payload.data),
                         idx.eq(Mux(rd.payload.first, rd.payload.tag[5:rs], 0))]
        sel = Array(row[WORD_BITS * i:WORD_BITS * (i + 1)] for i in range(per))[idx]
        m.d.comb += [self.data.valid.eq(rowv & (left != 0)), self.data.payload.eq(sel)]
        with m.If(self.data.valid & self.data.ready):
            m.d.sync += [idx.eq(idx + 1), left.eq(left - 1)]
            with m.If((idx == per - 1) | (left == 1)):
                m.d.sync += rowv.eq(0)
            with m.If(left == 1):
                m.d.sync += busy.eq(0)
        return m
