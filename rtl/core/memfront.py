"""``MemFront``: the issue stage's memory commands in the memory system's terms (docs/core.md
"Memory system"): at issue every matrix, LUT-GEMM and DMA instruction hands its transfer to
the memory system, in issue order, so the memory serves transfers in that order.

* conv1d / maskedmm / mm -> the weight streamer (tiles in the MPU's tile order, conv1d biases);
* lutmv -> the LUT-GEMM stream reader (signs, scales, bias);
* load / store / store_t / copy -> the DMA engine.

A command passes in the cycle issue accepts the instruction (combinationally: ``cmd.ready`` is
the target's ready), so the memory system sees it in the same cycle.
"""

from __future__ import annotations

from typing import Any

from amaranth.hdl import Module, Mux
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from dfx.rtl.dma.dma_ops import DmaOp
from dfx.rtl.isa_layouts import LAYOUTS, Opcode

__all__ = ["MemFront"]


class MemFront(wiring.Component):
    """Issue commands -> memory-system client commands (module doc). Parameters: the issue
    command layout, the memory system's command layouts (:meth:`for_system` reads them) and
    the MPU's tile-order block width ``interleave``."""

    def __init__(self, cmd_layout: data.StructLayout, *, dma_layout: data.StructLayout,
                 mpu_layout: data.StructLayout, lut_layout: data.StructLayout, interleave: int):
        self._interleave = interleave
        super().__init__({
            "cmd": In(stream.Signature(cmd_layout)),
            "dma": Out(stream.Signature(dma_layout)),
            "mpu": Out(stream.Signature(mpu_layout)),
            "lut": Out(stream.Signature(lut_layout)),
        })

    @classmethod
    def for_system(cls, cmd_layout: data.StructLayout, system: Any, interleave: int
                   ) -> MemFront:
        """The adapter for a :class:`dfx.rtl.dma.system.MemorySystem`'s command ports."""
        sig = system.signature.members
        return cls(cmd_layout,
                   dma_layout=sig["dma_cmd"].signature.members["payload"].shape,
                   mpu_layout=sig["mpu_cmd"].signature.members["payload"].shape,
                   lut_layout=sig["lut_cmd"].signature.members["payload"].shape,
                   interleave=interleave)

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        c = self.cmd.payload
        mat = data.View(LAYOUTS["mat"], c.word)
        lut = data.View(LAYOUTS["lut"], c.word)
        dma = data.View(LAYOUTS["dma"], c.word)
        val = c.val

        # weights (and conv1d biases) of a matrix instruction
        w = self.mpu.payload
        m.d.comb += [
            w.space.eq(mat.w_space), w.addr.eq(val[2]), w.kt.eq(val[4]), w.nt.eq(val[5]),
            w.kt_stride.eq(Mux(mat.kt_stride == 0, val[4], mat.kt_stride)),
            w.interleave.eq(self._interleave), w.batch.eq(mat.batch),
            w.bias.eq(c.op == Opcode.CONV1D), w.bspace.eq(mat.b_space), w.baddr.eq(val[3]),
        ]
        # the packed stream (and bias) of a lutmv
        lt = self.lut.payload
        m.d.comb += [
            lt.space.eq(lut.w_space), lt.addr.eq(val[2]), lt.n.eq(val[4]), lt.ng.eq(val[5]),
            lt.gs.eq(lut.gs), lt.q.eq(lut.q), lt.batch.eq(lut.batch), lt.bias.eq(lut.bias),
            lt.bspace.eq(lut.b_space), lt.baddr.eq(val[3]),
        ]
        # a DMA transfer
        dm = self.dma.payload
        m.d.comb += [
            dm.dst_space.eq(dma.dst_space), dm.dst.eq(val[0]),
            dm.src_space.eq(dma.src_space), dm.src.eq(val[1]),
            dm.n.eq(val[2]), dm.stride.eq(dma.stride),
        ]
        with m.Switch(c.op):
            with m.Case(Opcode.CONV1D, Opcode.MASKEDMM, Opcode.MM):
                m.d.comb += [self.mpu.valid.eq(self.cmd.valid), self.cmd.ready.eq(self.mpu.ready)]
            with m.Case(Opcode.LUTMV):
                m.d.comb += [self.lut.valid.eq(self.cmd.valid), self.cmd.ready.eq(self.lut.ready)]
            for op, dop in ((Opcode.LOAD, DmaOp.LOAD), (Opcode.STORE, DmaOp.STORE),
                            (Opcode.STORE_T, DmaOp.STORE_T), (Opcode.COPY, DmaOp.COPY)):
                with m.Case(op):
                    m.d.comb += [dm.op.eq(dop), self.dma.valid.eq(self.cmd.valid),
                                 self.cmd.ready.eq(self.dma.ready)]
            with m.Default():
                m.d.comb += self.cmd.ready.eq(1)
        return m

