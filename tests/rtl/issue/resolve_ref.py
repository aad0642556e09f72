"""Python reference of operand resolution (docs/core.md "Controller -> issue"): the values the
controller hands to issue for an instruction, given the integer registers."""

from __future__ import annotations

from typing import Any

from dfx.isa.encoding import Instruction

RESOLVED_ORDER = {
    "mat": ("y", "x", "w", "b", "kt", "nt"),
    "lut": ("y", "x", "w", "b", "n", "ng"),
    "vec": ("y", "a", "b", "n"),
    "dma": ("dst", "src", "n"),
    "route": ("v", "n"),
}

MASK64 = (1 << 64) - 1


def s64(v: int) -> int:
    v &= MASK64
    return v - (1 << 64) if v >> 63 else v


def resolve(ins: Instruction, r: list[int]) -> dict[str, Any]:
    """``{"op", "val", "limit"}`` of ``ins`` with integer registers ``r`` (r[0] = 0)."""
    fmt = ins.spec.format.name
    vals = []
    for name in RESOLVED_ORDER.get(fmt, ()):
        o = ins.operands.get(name)
        if o is None:
            vals.append(0)
        elif hasattr(o, "imm"):
            vals.append(s64(o.imm + r[o.reg]))
        else:
            vals.append(s64(o.off + r[o.base]))
    vals += [0] * (6 - len(vals))
    limit = r[ins.operands["limit"]] if "limit" in ins.operands else 0
    return {"op": ins.opcode, "val": vals, "limit": s64(limit)}
