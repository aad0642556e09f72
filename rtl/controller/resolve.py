"""Operand resolution (docs/core.md "Controller -> issue: Resolved").

:class:`Resolve` looks at the X-stage word through its format's layout and names the integer
registers it reads (``r_idx[j]`` = field ``INT_READS[format][j]``) and writes (``dest``, 0 if
none); from their values (``r_val``) it forms every resolved operand of the format
(``RESOLVED[format]``, in order): ``val[i] = r{reg} + imm`` (64-bit two's complement; the
immediate is unsigned), ``neg[i]`` when the exact sum is negative (``count_neg``: for some
``count`` operand: fault ``COUNT``), and the values of the read ``reg`` operands
(``rs1``, ``rs2``, ``limit``). Combinational.

:func:`resolved_layout` is the payload the controller hands to issue: ``op``, ``pc``, ``word``
(the raw instruction), ``val[RESOLVED_MAX]`` (positions past the format's operands are 0),
``limit`` (r{limit}, maskedmm).
"""

from __future__ import annotations

from typing import Any

from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ..isa_layouts import (
    CONTROLLER,
    FORMAT_OF,
    INT_DEST,
    INT_READS,
    LAYOUTS,
    REG_READS,
    RESOLVED,
    RESOLVED_MAX,
    UNIT_OF,
    WORD_BITS,
    Opcode,
)
from .regfile import INT_BITS, INT_COUNT

__all__ = ["LIMIT", "READ_PORTS", "REG_NAMES", "Resolve", "resolved_layout"]

#: The read ``reg`` operand issued instructions carry in ``Resolved.limit`` (maskedmm).
LIMIT = "limit"
#: Register read ports the widest format needs (mat: y, x, w, b bases, kt, nt, limit).
READ_PORTS = max(len(v) for v in INT_READS.values())
#: Every read ``reg`` operand name of any format (``rs1``, ``rs2``, ``limit``).
REG_NAMES = tuple(dict.fromkeys(n for v in REG_READS.values() for n in v))

_ISSUED_FORMATS = {FORMAT_OF[op] for op in Opcode if UNIT_OF[op] != CONTROLLER}
assert all(set(REG_READS[f]) <= {LIMIT} for f in _ISSUED_FORMATS), REG_READS


def resolved_layout(words: int) -> data.StructLayout:
    """The ``Resolved`` payload (module doc); ``words``: instruction-buffer depth (an issued
    instruction's pc is below it). Equal to ``dfx.rtl.issue.plan.resolved_layout(core)``."""
    return data.StructLayout({
        "op": Opcode,
        "pc": unsigned(max(1, (words - 1).bit_length())),
        "word": WORD_BITS,
        "val": data.ArrayLayout(signed(INT_BITS), RESOLVED_MAX),
        "limit": signed(INT_BITS),
    })


class Resolve(wiring.Component):
    """Register indices and resolved operands of the X-stage word (module doc)."""

    def __init__(self) -> None:
        super().__init__({
            "word": In(WORD_BITS),
            "r_idx": Out(data.ArrayLayout(range(INT_COUNT), READ_PORTS)),
            "r_val": In(data.ArrayLayout(INT_BITS, READ_PORTS)),
            "dest": Out(range(INT_COUNT)),
            "val": Out(data.ArrayLayout(signed(INT_BITS), RESOLVED_MAX)),
            "neg": Out(RESOLVED_MAX),
            "count_neg": Out(1),
            "regs": Out(data.StructLayout({n: INT_BITS for n in REG_NAMES})),
        })

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        op = self.word[:Opcode.as_shape().width]
        with m.Switch(op):
            for fname, layout in LAYOUTS.items():
                ops = [o.value for o in Opcode if FORMAT_OF[o] == fname]
                if not ops:
                    continue
                with m.Case(*ops):
                    self._format(m, fname, data.View(layout, self.word))
        return m

    def _format(self, m: Module, fname: str, v: data.View) -> None:
        reads = INT_READS[fname]
        port = {name: j for j, name in enumerate(reads)}
        for j, name in enumerate(reads):
            m.d.comb += self.r_idx[j].eq(v[name])
        if INT_DEST[fname] is not None:
            m.d.comb += self.dest.eq(v[INT_DEST[fname]])
        count_neg = 0
        for i, o in enumerate(RESOLVED[fname]):
            s = Signal(signed(INT_BITS + 2), name=f"{fname}_{o.name}_sum")
            m.d.comb += [
                s.eq(self.r_val[port[o.reg]].as_signed() + v[o.imm]),
                self.val[i].eq(s),
                self.neg[i].eq(s < 0),
            ]
            if o.kind == "count":
                count_neg = count_neg | (s < 0)
        m.d.comb += self.count_neg.eq(count_neg)
        for name in REG_READS[fname]:
            m.d.comb += self.regs[name].eq(self.r_val[port[name]])
