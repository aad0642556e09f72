"""Exact memoisation of hardware-loop iterations (docs/timing.md, "Memo").

The simulator stops every card at the head of each iteration of an eligible loop and compares
the joint state of all cards and links, relative to card 0's issue cycle, with the states it
saw at earlier heads of the same loop. If the state at iteration ``j`` equals the state at
iteration ``j - p``, and the integer registers advance by the same amount in every iteration
in a way that cannot change any timing, then every later period of ``p`` iterations repeats
the last one shifted in time, and the simulator jumps over all but the final iteration.

This module decides the second half: which loops qualify and whether a register progression
is timing-invariant (:func:`invariant`). The argument, in short: the body is straight-line
code (no branches, no ``sw``, no token output), so it executes the same instructions every
iteration; every register the body computes from a register that changes is built with
add/sub/addi/muli/shli, so each value is affine in the iteration number; and a changing value
is only ever used as the base of an HBM address moving by a multiple of the interleave period
(the pseudo-channel split is periodic), of a DDR address moving by whole bursts and staying in
one channel, or as a MaskedMM ``limit`` (data only). Counts, VRF addresses, branch operands,
``lw`` addresses and weight-buffer addresses must not change.
"""

from __future__ import annotations

from dfx.isa.golden.lutgemm import stream_bytes

from .card import CardSim, Meta
from .dma import unit_rows
from .params import Params

_MASK64 = (1 << 64) - 1
_FLOW = {"loop", "endloop", "jmp", "beq", "bne", "blt", "bge", "halt", "sw", "vargmax"}


def body(card: CardSim, loop_pc: int, skip: int = 0) -> list[Meta]:
    """The instructions of the loop at ``loop_pc`` (without its endloop), starting ``skip``
    instructions into the body and wrapping around."""
    end = loop_pc + card.meta[loop_pc].ins.body
    b = card.meta[loop_pc + 1:end]
    return b[skip:] + b[:skip]


def eligible(card: CardSim, loop_pc: int) -> bool:
    """A loop qualifies if its body is straight-line code without sw or token output."""
    return all(m.op not in _FLOW for m in body(card, loop_pc))


def _wrap(v: int) -> int:
    v &= _MASK64
    return v - (1 << 64) if v >> 63 else v


def _operands(m: Meta, vals: list[int], p: Params) -> list[tuple[str, int, int, int]]:
    """(space, base register, offset, bytes spanned) of the memory operands of ``m``."""
    ins, op = m.ins, m.op

    def cnt(c: object) -> int:
        return c.imm + (vals[c.reg] if c.reg else 0)  # type: ignore[attr-defined]

    out = []
    if op in ("conv1d", "maskedmm", "mm"):
        kt, nt = cnt(ins.kt), cnt(ins.nt)
        kts = ins.kt_stride or kt
        out.append((ins.w.space, ins.w.base, ins.w.off, ((nt - 1) * kts + kt) * p.tile_bytes))
        if op == "conv1d":
            out.append((ins.b.space, ins.b.base, ins.b.off, 2 * nt * p.l))
    elif op in ("load", "store", "store_t", "copy"):
        n = cnt(ins.n)
        if op == "store_t":
            span = ((n - 1) // p.l) * ins.stride + p.l * 2 * p.d if n else 0
        elif op == "copy":
            span = 2 * n
        else:
            span = 2 * n + (n // p.d) * max(0, ins.stride - 2 * p.d)
        for a in (ins.dst, ins.src):
            if a.space != "vrf":
                out.append((a.space, a.base, a.off, span))
    elif op == "lutmv" and p.lut is not None:  # executed before, so its operands are valid
        n = cnt(ins.n)
        out.append((ins.w.space, ins.w.base, ins.w.off,
                    stream_bytes(n, cnt(ins.ng), ins.gs, ins.q, p.lut.slice)))
        if ins.bias:
            out.append((ins.b.space, ins.b.base, ins.b.off, 2 * n))
    elif op == "lw":
        out.append((ins.mem.space, ins.mem.base, ins.mem.off, 4))
    return out


def ddr_ops(m: Meta, vals: list[int], p: Params, addr: int, span: int) -> tuple:
    """How an access of ``m`` at DDR address ``addr`` splits into ops: per unit (a vector, a
    bias block, a store_t chunk, a row of a run) the beats of each of its rows."""
    ins, op = m.ins, m.op
    rb = p.mem.row_bytes
    units: list[tuple[int, int]] = []
    if op in ("load", "store"):
        n = ins.n.imm + (vals[ins.n.reg] if ins.n.reg else 0)
        step = ins.stride or 2 * p.d
        units = [(addr + k * step, 2 * min(p.d, n - k * p.d)) for k in range(-(-n // p.d))]
    elif op == "conv1d":
        nt = ins.nt.imm + (vals[ins.nt.reg] if ins.nt.reg else 0)
        units = [(addr + q0 * 2 * p.l, 2 * p.l * min(p.zigzag, nt - q0))
                 for q0 in range(0, nt, p.zigzag)]
    elif op == "lutmv":
        n = ins.n.imm + (vals[ins.n.reg] if ins.n.reg else 0)
        units = [(addr + k * 2 * p.d, 2 * min(p.d, n - k * p.d)) for k in range(-(-n // p.d))]
        if span != 2 * n:  # the stream: runs of rows
            units = [(addr, 0)]
    else:  # store_t, copy: rows of the span
        units = [(addr, 0)]
    out = []
    for a, nb in units:
        if nb:
            out.append(tuple(hi - lo for _, lo, hi in unit_rows(p, a, nb)))
        else:
            out.append((a % rb, span))
    return tuple(out)


class PhaseError(Exception):
    """A DDR access splits into ops differently in a replayed iteration than in the recorded
    one of the same phase (its offset within a row moves): this period cannot be replayed,
    a longer one might."""


def invariant(card: CardSim, loop_pc: int, regs: list[int], delta: list[int], jump: int,
              skip: int = 1, period: int = 1) -> bool:
    """True if running the body with registers ``regs + k * delta`` (k = 0..jump) gives the
    same timing as the recorded iteration of the same phase (k mod ``period``) and ends with
    registers advanced by exactly ``delta``. Raises :class:`PhaseError` if only DDR accesses
    moving within a row stand in the way."""
    p = card.p
    vals = list(regs)
    dl = list(delta)
    for m in body(card, loop_pc, skip):
        ins, op = m.ins, m.op
        ops = ins.operands
        # uses of registers
        for v in ops.values():
            kind = type(v).__name__
            if kind == "VAddr" and v.base and dl[v.base]:
                return False
            if kind == "Count" and v.reg and dl[v.reg]:
                return False
            if kind == "MemAddr" and v.space == "vrf" and v.base and dl[v.base]:
                return False
        for space, base, off, span in _operands(m, vals, p):
            if not base or not dl[base]:
                continue
            step = dl[base]
            if op == "lw" or space == "wbuf":
                return False
            if space == "hbm":
                if step % p.hbm.period:
                    return False
            elif space == "ddr":
                # one AXI port: the timing depends on how the access splits into ops (rows
                # crossed) and bursts (beats), i.e. on its offset within a row: it must split
                # the same way in every replayed iteration
                a = vals[base] + off
                rb = p.mem.row_bytes * p.mem.block_rows["ddr"]
                if (period * step) % rb:
                    if step % p.mem.beat_bytes:
                        return False
                    # replayed iteration k repeats the recorded one period - k mod period
                    # iterations before the current one
                    sig = {r: ddr_ops(m, vals, p, a - r * step, span)
                           for r in range(1, period + 1)}
                    if any(ddr_ops(m, vals, p, a + k * step, span) != sig[period - k % period]
                           for k in range(jump)):
                        raise PhaseError
        # register writes
        if op in ("li", "add", "sub", "addi", "muli", "shli", "shri", "andi", "lw"):
            rd = ins.rd
            if op == "li":
                v, dv = ins.imm, 0
            elif op == "add":
                v, dv = vals[ins.rs1] + vals[ins.rs2], dl[ins.rs1] + dl[ins.rs2]
            elif op == "sub":
                v, dv = vals[ins.rs1] - vals[ins.rs2], dl[ins.rs1] - dl[ins.rs2]
            elif op == "addi":
                v, dv = vals[ins.rs1] + ins.imm, dl[ins.rs1]
            elif op == "muli":
                v, dv = vals[ins.rs1] * ins.imm, dl[ins.rs1] * ins.imm
            elif op == "shli":
                v, dv = vals[ins.rs1] << ins.imm, dl[ins.rs1] << ins.imm
            elif op == "lw":
                # constant: its address does not move and the body has no sw
                addr = (vals[ins.mem.base] if ins.mem.base else 0) + ins.mem.off
                v, dv = card.words.get((ins.mem.space, addr), 0), 0
            else:
                if dl[ins.rs1]:
                    return False
                x = vals[ins.rs1]
                v = (x & _MASK64) >> ins.imm if op == "shri" else x & ins.imm
                dv = 0
            if rd:
                vals[rd], dl[rd] = _wrap(v), _wrap(dv)
        elif "rd" in ops and ops["rd"]:
            dl[ops["rd"]] = 0
    return all(_wrap(a) == _wrap(b) for a, b in zip(dl, delta, strict=True))
