"""``IntAlu``: the controller's integer ALU (``li``, ``add``, ``sub``, ``addi``, ``muli``,
``shli``, ``shri``, ``andi`` of ``isa/spec.yaml``; functional reference ``Card._op_li`` ..
``_op_andi``). Combinational, 64-bit two's complement, wrapping.

``op``, ``a`` = r{rs1}, ``b`` = r{rs2}, ``imm`` (the int format's 64-bit immediate) in;
``result`` and ``shift_bad`` (``shli``/``shri`` with ``imm`` outside 0..63: fault ``COUNT``)
out. ``muli`` keeps the low 64 bits of the product (one-cycle 64 x 64 multiplier).
"""

from __future__ import annotations

from typing import Any

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..isa_layouts import Opcode
from .regfile import INT_BITS

__all__ = ["ALU_OPS", "IntAlu"]

ALU_OPS = (Opcode.LI, Opcode.ADD, Opcode.SUB, Opcode.ADDI, Opcode.MULI, Opcode.SHLI,
           Opcode.SHRI, Opcode.ANDI)
"""The opcodes the ALU computes (the integer class but lw/sw)."""

_SHIFT_BITS = (INT_BITS - 1).bit_length()


class IntAlu(wiring.Component):
    """The integer ALU (module doc)."""

    def __init__(self) -> None:
        super().__init__({
            "op": In(Opcode), "a": In(INT_BITS), "b": In(INT_BITS), "imm": In(INT_BITS),
            "result": Out(INT_BITS), "shift_bad": Out(1),
        })

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        a, b, imm, r = self.a, self.b, self.imm, self.result
        sh = imm[:_SHIFT_BITS]
        m.d.comb += self.shift_bad.eq(imm[_SHIFT_BITS:].any())
        with m.Switch(self.op):
            with m.Case(Opcode.LI):
                m.d.comb += r.eq(imm)
            with m.Case(Opcode.ADD):
                m.d.comb += r.eq(a + b)
            with m.Case(Opcode.SUB):
                m.d.comb += r.eq(a - b)
            with m.Case(Opcode.ADDI):
                m.d.comb += r.eq(a + imm)
            with m.Case(Opcode.MULI):
                m.d.comb += r.eq(a * imm)
            with m.Case(Opcode.SHLI):
                m.d.comb += r.eq(a << sh)
            with m.Case(Opcode.SHRI):
                m.d.comb += r.eq(a >> sh)
            with m.Case(Opcode.ANDI):
                m.d.comb += r.eq(a & imm)
        return m
