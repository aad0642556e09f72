"""The controller of one card (docs/timing.md, "What executes" and "Controller"): control flow,
hardware loops, integer registers and ``lw``/``sw``, executed functionally so that dynamic
counts, addresses and the token loop are exact. Mirrors ``rtl/controller`` (and the operand
resolution ``imm + r{reg}`` / ``r{base} + off`` it hands to issue).

:class:`Meta` holds the static facts of one instruction (its registers, scalar reads and
writes, class), computed once per program.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from dfx.isa.encoding import Instruction

from .stats import CONTROL, HALTED, HEAD, RUN, S_CRIT, S_INSTR

if TYPE_CHECKING:
    from .params import Params

_MASK64 = (1 << 64) - 1


def _s64(v: int) -> int:
    v &= _MASK64
    return v - (1 << 64) if v >> 63 else v


class Meta:
    """Static facts about one instruction of the program (precomputed once)."""

    __slots__ = ("ins", "op", "run", "rregs", "wreg", "sreads", "swrites", "sall", "cls",
                 "attention")

    def __init__(self, ins: Instruction, run: Callable[[Instruction, Meta], int], cls: int
                 ) -> None:
        self.ins, self.op, self.run, self.cls = ins, ins.op, run, cls
        ops = ins.operands
        rregs: list[int] = []
        kinds = {o.name: o.kind for o in ins.spec.operands}
        for name, v in ops.items():
            kind = kinds[name]
            if kind in ("vaddr", "maddr") and v.base:
                rregs.append(v.base)
            elif kind == "count" and v.reg:
                rregs.append(v.reg)
        for name in ("rs1", "rs2", "limit"):
            if name in ops and ops[name]:
                rregs.append(ops[name])
        if ins.op == "sw":
            rregs.append(ops["rs1"])
        self.rregs = tuple(sorted(set(r for r in rregs if r)))
        self.wreg = ops["rd"] if "rd" in ops and ins.op != "sw" else 0
        sreads: list[int] = []
        swrites: list[int] = []
        op = ins.op
        if op == "maskedmm":
            sreads.append(ops["scale"])
            swrites.extend(range(ops["max"], ops["max"] + (ops["batch"] or 1)))
        elif op in ("vadds", "vsubs", "vmuls"):
            sreads.append(ops["s"])
        elif op in ("vacc", "vaccsq", "vmax"):
            swrites.append(ops["sd"])
        elif ins.spec.cls == "scalar":
            swrites.append(ops["sd"])
            if op != "sli":
                sreads.append(ops["sa"])
            if op in ("sadd", "ssub", "smul"):
                sreads.append(ops["sb"])
        self.sreads, self.swrites = tuple(sreads), tuple(swrites)
        self.sall = self.sreads + self.swrites
        self.attention = op == "maskedmm" or (op == "mm" and bool(ops["kt"].reg or ops["nt"].reg))


class Controller:
    """Mixin of :class:`~.card.CardSim`: control and integer instructions, operand
    resolution."""

    OPS = {"nop": "_op_nop", "halt": "_op_halt", "loop": "_op_loop", "endloop": "_op_endloop",
           "jmp": "_op_branch", "beq": "_op_branch", "bne": "_op_branch", "blt": "_op_branch",
           "bge": "_op_branch", "lw": "_op_lw", "sw": "_op_sw"}

    p: Params
    n_prog: int
    meta: list[Meta]
    words: dict[tuple[str, int], int]
    stats: list[int]
    horizon: list[int]
    now: int
    npc: int
    int_av: list[int]
    int_cat: list[int]
    error: Callable[[str], Exception]
    _pre: Callable[[Meta], tuple[int, int]]
    _word: Callable[..., int]
    _word_ready: Callable[..., int]
    sw_resp: int
    _issue: Callable[[int, int], int]
    _taken: Callable[[], None]
    _space: Callable[[Any, str, tuple[str, ...]], tuple[str, int]]
    finalize: Callable[[int], None]

    def _init_controller(self) -> None:
        pass

    def _reset_controller(self) -> None:
        self.pc = 0
        self.r = [0] * 32
        self.loops: list[list[int]] = []  # [body start, endloop pc, remaining, loop pc, iter]
        self.halted = False
        self.end = 0

    def _key_controller(self) -> tuple:
        loops = tuple((lp[0], lp[1], lp[3]) if k == len(self.loops) - 1
                      else (lp[0], lp[1], lp[3], lp[2], lp[4])
                      for k, lp in enumerate(self.loops))
        return self.pc, loops

    # -- operands -------------------------------------------------------------------------------
    def _count(self, c: Any, name: str) -> int:
        v = c.imm + self.r[c.reg] if c.reg else c.imm
        if v < 0:
            raise self.error(f"{name} = {c.imm} + r{c.reg} = {v} is negative")
        return v

    def _va(self, a: Any) -> int:
        return self.r[a.base] + a.off if a.base else a.off

    # -- control --------------------------------------------------------------------------------
    def _op_nop(self, ins: Instruction, m: Meta) -> int:
        t, c = self._pre(m)
        self._issue(t, c)
        self.stats[S_INSTR + m.cls] += 1
        return RUN

    def _op_halt(self, ins: Instruction, m: Meta) -> int:
        t, c = self._pre(m)
        t = self._issue(t, c)
        self.stats[S_INSTR + m.cls] += 1
        # done: halted (the cycle after) and everything drained; the core's cycle count runs
        # from the first fetch (cycle 0) to done, both included
        h = self.horizon
        done = max(t + 1, h[0])
        if done + 1 > self.now:
            self.stats[S_CRIT + h[1]] += done + 1 - self.now
        self.end = done + 1
        self.finalize(self.end)
        self.halted = True
        return HALTED

    def _op_loop(self, ins: Instruction, m: Meta) -> int:
        t, c = self._pre(m)
        count = self._count(ins.count, "count")
        body = ins.body
        end = self.pc + body
        if body < 1 or end >= self.n_prog or self.meta[end].op != "endloop":
            raise self.error(f"the loop body (body={body}) must end with an endloop at pc {end}")
        self._issue(t, c)
        self.stats[S_INSTR + m.cls] += 1
        if count == 0:
            self.npc = end + 1
            self._taken()
            return RUN
        if len(self.loops) >= self.p.loop_depth:
            raise self.error(f"hardware loops nested deeper than core.control.loop_depth = "
                             f"{self.p.loop_depth}")
        self.loops.append([self.pc + 1, end, count, self.pc, 0])
        return RUN

    def _op_endloop(self, ins: Instruction, m: Meta) -> int:
        if not self.loops:
            raise self.error("endloop without an active hardware loop")
        top = self.loops[-1]
        if self.pc != top[1]:
            raise self.error(f"endloop does not close the innermost loop (loop at pc {top[3]})")
        t, c = self._pre(m)
        self._issue(t, c)
        self.stats[S_INSTR + m.cls] += 1
        top[2] -= 1
        if top[2] > 0:
            top[4] += 1
            self.npc = top[0]
            self._taken()
            self.head = (top[3], top[4])
            return HEAD
        self.loops.pop()
        return RUN

    def _op_branch(self, ins: Instruction, m: Meta) -> int:
        t, c = self._pre(m)
        self._issue(t, c)
        self.stats[S_INSTR + m.cls] += 1
        r = self.r
        op = m.op
        if op == "jmp":
            take = True
        else:
            a, b = r[ins.rs1], r[ins.rs2]
            take = (a == b if op == "beq" else a != b if op == "bne" else
                    a < b if op == "blt" else a >= b)
        if take:
            tgt = self.pc + ins.target
            if not 0 <= tgt < self.n_prog:
                raise self.error(f"branch target pc {tgt} is outside the program")
            if self.loops:
                top = self.loops[-1]
                if not top[0] <= tgt <= top[1]:
                    raise self.error(f"branch to pc {tgt} leaves the hardware loop at pc "
                                     f"{top[3]}")
            self.npc = tgt
            self._taken()
        return RUN

    # -- integer --------------------------------------------------------------------------------
    def _set(self, rd: int, v: int, avail: int, cat: int) -> None:
        if rd:
            self.r[rd] = _s64(v)
            self.int_av[rd] = avail
            self.int_cat[rd] = cat

    def _op_int(self, ins: Instruction, m: Meta) -> int:
        t, c = self._pre(m)
        t = self._issue(t, c)
        self.stats[S_INSTR + m.cls] += 1
        r, op = self.r, m.op
        if op == "li":
            v = ins.imm
        elif op == "add":
            v = r[ins.rs1] + r[ins.rs2]
        elif op == "sub":
            v = r[ins.rs1] - r[ins.rs2]
        elif op == "addi":
            v = r[ins.rs1] + ins.imm
        elif op == "muli":
            v = r[ins.rs1] * ins.imm
        elif op in ("shli", "shri"):
            if not 0 <= ins.imm <= 63:
                raise self.error(f"shift amount {ins.imm} is outside 0..63")
            v = r[ins.rs1] << ins.imm if op == "shli" else (r[ins.rs1] & _MASK64) >> ins.imm
        elif op == "andi":
            v = r[ins.rs1] & ins.imm
        else:  # pragma: no cover - every integer op is listed
            raise self.error(f"{op} is not implemented by the timing model")
        self._set(ins.rd, v, t + self.p.int_latency, CONTROL)
        return RUN

    def _op_lw(self, ins: Instruction, m: Meta) -> int:
        t, c = self._pre(m)
        space, addr = self._space(ins.mem, "mem", ("hbm", "ddr"))
        t = self._issue(self._word_ready(t, False, space), c)
        self.stats[S_INSTR + m.cls] += 1
        v = self.words.get((space, addr), 0)
        resp = self._word(t, False, space, addr, CONTROL)
        self._set(ins.rd, v, resp + self.p.lw_delay, CONTROL)
        return RUN

    def _op_sw(self, ins: Instruction, m: Meta) -> int:
        t, c = self._pre(m)
        space, addr = self._space(ins.mem, "mem", ("hbm", "ddr"))
        t = self._issue(self._word_ready(t, True, space), c)
        self.stats[S_INSTR + m.cls] += 1
        self.words[(space, addr)] = self.r[ins.rs1] & 0xFFFFFFFF
        self.sw_resp = self._word(t, True, space, addr, CONTROL)
        return RUN
