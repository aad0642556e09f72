"""Test harness of the control unit (``dfx.rtl.controller.unit.ControlUnit``) on Amaranth's
simulator, and its references.

* :func:`run_cases` loads each program (from a Python DDR model through ``prog_cmd`` /
  ``prog_data``), serves ``mem_req``/``mem_resp`` from a Python word memory, acts as the issue
  stage (accepting each presented instruction after a delay) and as the core writing
  ``vargmax`` results (``rd_write``), and records every firing instruction and the end state.
  One simulator runs all cases (``start`` restarts the unit).
* :func:`reference` runs the same program on the functional simulator
  (:class:`dfx.sim.functional.card.Card`), its control and integer instructions as they are;
  the others are replaced by what the controller does with them (counts checked, operands
  resolved, ``vargmax`` writing the value the harness's core writes).
* :func:`predict_fires` applies the cycle rules of the controller's module doc to the
  reference's trace and the harness's (deterministic) environment.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from amaranth.sim import Simulator

from dfx.isa.container import CardImage, Segment
from dfx.isa.encoding import Instruction, decode
from dfx.isa.errors import IsaError
from dfx.rtl.controller.unit import ControlUnit
from dfx.rtl.core.faults import ERROR_CLASS, Fault
from dfx.rtl.isa_layouts import (
    CONTROLLER,
    FORMAT_OF,
    INT_DEST,
    INT_READS,
    LAYOUTS,
    RESOLVED,
    UNIT_OF,
    WORD_BITS,
    Opcode,
    Space,
)
from dfx.sim.functional.card import Card
from dfx.sim.functional.errors import IllegalInstructionError, SimError

MASK64 = (1 << 64) - 1
PROG_ADDR = 0x1000  # DDR-port byte address of the program (any value)
WORD_BYTES = WORD_BITS // 8


def s64(v: int) -> int:
    v &= MASK64
    return v - (1 << 64) if v >> 63 else v


def vargmax_value(k: int) -> int:
    """The value the harness's core writes for the k-th vargmax (and the reference uses)."""
    return (k * 7919 + 13) % 50257


@dataclass
class Env:
    """The harness's environment. Delays are (lo, hi) cycles, drawn uniformly per event;
    probabilities are per cycle."""

    seed: int = 0
    prog_ready_p: float = 1.0  # prog_cmd.ready
    prog_valid_p: float = 1.0  # a program word offered in a cycle
    mem_ready_p: float = 1.0  # mem_req.ready
    mem_latency: tuple[int, int] = (3, 3)  # request transfer -> response
    accept_delay: tuple[int, int] = (0, 0)  # issue.valid rising -> ready
    rd_delay: tuple[int, int] = (2, 2)  # issue of vargmax -> rd_write


@dataclass
class Case:
    words: list[int]  # the program's instruction words
    mem: dict[tuple[int, int], int] = field(default_factory=dict)  # (space, addr) -> u32
    prog_words: int | None = None  # override the length given to the loader
    max_cycles: int = 20000


@dataclass
class Result:
    fault: Fault = Fault.OK
    fault_pc: int = 0
    fault_word: int = 0
    halted: bool = False
    regs: list[int] = field(default_factory=list)  # signed
    issued: list[tuple] = field(default_factory=list)  # (op, pc, val tuple, limit)
    issue_cycles: list[int] = field(default_factory=list)
    fires: list[tuple[int, int]] = field(default_factory=list)  # (cycle, pc)
    first_fetch: int | None = None
    start: int = 0
    prog_cmd: tuple[int, int] | None = None
    mem: dict[tuple[int, int], int] = field(default_factory=dict)
    mem_log: list[tuple] = field(default_factory=list)  # (req cycle, resp cycle, write)
    rd_writes: list[tuple[int, int, int]] = field(default_factory=list)  # (cycle, reg, value)


def make_unit(core: Any, **kw: Any) -> ControlUnit:
    return ControlUnit.from_core(core, **kw)


def run_cases(dut: ControlUnit, cases: list[Case], env: Env) -> list[Result]:
    """Run every case on one simulator of ``dut`` (module doc)."""
    rng = random.Random(env.seed)
    results: list[Result] = []

    def draw(r: tuple[int, int]) -> int:
        return rng.randint(r[0], r[1])

    async def bench(ctx: Any) -> None:
        cycle = 0
        for case in cases:
            res = Result()
            mem = dict(case.mem)
            n = len(case.words) if case.prog_words is None else case.prog_words
            ctx.set(dut.prog, PROG_ADDR)
            ctx.set(dut.prog_words, n)
            ctx.set(dut.start, 1)
            res.start = cycle
            await ctx.tick()
            cycle += 1
            ctx.set(dut.start, 0)
            to_send: list[int] = []
            mem_q: list[list[int]] = []  # [resp cycle, rdata] in order
            rd_q: list[list[int]] = []  # [cycle, reg, value] in order
            valid_since: int | None = None
            accept_at = 0
            vargmax_k = 0
            done_at: int | None = None
            log_open: list[list[Any]] = []
            while True:
                if cycle - res.start > case.max_cycles:
                    raise AssertionError(f"case did not finish in {case.max_cycles} cycles")
                # -- inputs for this cycle --------------------------------------------------
                ctx.set(dut.prog_cmd.ready, rng.random() < env.prog_ready_p)
                offer = bool(to_send) and rng.random() < env.prog_valid_p
                ctx.set(dut.prog_data.valid, offer)
                if offer:
                    ctx.set(dut.prog_data.payload, to_send[0])
                ctx.set(dut.mem_req.ready, rng.random() < env.mem_ready_p)
                resp = bool(mem_q) and mem_q[0][0] <= cycle
                ctx.set(dut.mem_resp.valid, resp)
                if resp:
                    ctx.set(dut.mem_resp.payload.rdata, mem_q[0][1])
                wr = bool(rd_q) and rd_q[0][0] <= cycle
                ctx.set(dut.rd_write.valid, wr)
                if wr:
                    ctx.set(dut.rd_write.reg, rd_q[0][1])
                    ctx.set(dut.rd_write.value, rd_q[0][2])
                iv = ctx.get(dut.issue.valid)
                if iv and valid_since is None:
                    valid_since = cycle
                    accept_at = cycle + draw(env.accept_delay)
                ready = bool(iv) and cycle >= accept_at
                ctx.set(dut.issue.ready, ready)
                # -- observe -----------------------------------------------------------------
                if ctx.get(dut.first_fetch):
                    res.first_fetch = cycle
                if ctx.get(dut.fire):
                    res.fires.append((cycle, ctx.get(dut.fire_pc)))
                if ctx.get(dut.prog_cmd.valid) and ctx.get(dut.prog_cmd.ready):
                    a, w = ctx.get(dut.prog_cmd.payload.addr), ctx.get(dut.prog_cmd.payload.words)
                    res.prog_cmd = (a, w)
                    assert a == PROG_ADDR
                    to_send = list(case.words[:w]) + [0] * max(0, w - len(case.words))
                if offer and ctx.get(dut.prog_data.ready):
                    to_send.pop(0)
                if resp:
                    mem_q.pop(0)
                    log_open.pop(0)[1] = cycle
                if wr:
                    res.rd_writes.append((cycle, rd_q[0][1], rd_q[0][2]))
                    rd_q.pop(0)
                if ctx.get(dut.mem_req.valid) and ctx.get(dut.mem_req.ready):
                    p = dut.mem_req.payload
                    write, space = ctx.get(p.write), ctx.get(p.space)
                    addr, wdata = ctx.get(p.addr), ctx.get(p.wdata)
                    space = space.value if hasattr(space, "value") else int(space)
                    rdata = 0
                    if write:
                        mem[(space, addr)] = wdata
                    else:
                        rdata = mem.get((space, addr), 0xDEADBEEF)
                    t = cycle + draw(env.mem_latency)
                    if mem_q:
                        t = max(t, mem_q[-1][0] + 1)
                    mem_q.append([t, rdata])
                    entry = [cycle, None, bool(write)]
                    log_open.append(entry)
                    res.mem_log.append(entry)
                if ready:
                    p = dut.issue.payload
                    op = ctx.get(p.op)
                    op = op if isinstance(op, Opcode) else Opcode(op)
                    val = tuple(s64(ctx.get(p.val[i])) for i in range(len(p.val)))
                    res.issued.append((op, ctx.get(p.pc), val, s64(ctx.get(p.limit))))
                    res.issue_cycles.append(cycle)
                    valid_since = None
                    if op == Opcode.VARGMAX:
                        rd = LAYOUTS["vec"].from_bits(ctx.get(p.word))["rd"]
                        t = cycle + draw(env.rd_delay)
                        if rd_q:
                            t = max(t, rd_q[-1][0] + 1)
                        rd_q.append([t, rd, vargmax_value(vargmax_k)])
                        vargmax_k += 1
                fault = ctx.get(dut.fault)
                fault = fault if isinstance(fault, Fault) else Fault(fault)
                stopped = fault != Fault.OK or ctx.get(dut.halted)
                if stopped and not mem_q and not rd_q and ctx.get(dut.idle) and not ctx.get(
                        dut.loading):
                    if done_at is None:
                        done_at = cycle
                    elif cycle >= done_at + 2:
                        break
                await ctx.tick()
                cycle += 1
            res.fault = fault
            res.fault_pc = ctx.get(dut.fault_pc)
            res.fault_word = ctx.get(dut.fault_word)
            res.halted = bool(ctx.get(dut.halted))
            regs = dut.controller.regs.regs
            res.regs = [0] + [s64(ctx.get(r)) for r in regs[1:]]
            res.mem = mem
            results.append(res)
            for s in (dut.prog_data.valid, dut.mem_resp.valid, dut.rd_write.valid,
                      dut.issue.ready):
                ctx.set(s, 0)
            await ctx.tick()
            cycle += 1

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return results


# ---- the functional simulator as reference ---------------------------------------------------

@dataclass
class Ref:
    error: str | None = None  # the error class name, None if halted
    pc: int | None = None
    halted: bool = False
    regs: list[int] = field(default_factory=list)
    issued: list[tuple] = field(default_factory=list)  # as Result.issued
    trace: list[dict] = field(default_factory=list)  # executed instructions (timing)
    mem: dict[tuple[int, int], int] = field(default_factory=dict)


def _resolve(ins: Instruction, r: list[int]) -> tuple[tuple[int, ...], int]:
    fmt = ins.spec.format.name
    fields = ins.fields
    vals = []
    for o in RESOLVED[fmt]:
        v = fields[o.imm] + r[fields[o.reg]]
        if o.kind == "count" and v < 0:
            raise IllegalInstructionError(f"{o.name} = {v} is negative")
        vals.append(s64(v))
    vals += [0] * (6 - len(vals))
    limit = r[fields["limit"]] if "limit" in fields else 0
    return tuple(vals), s64(limit)


def _segments(mem: dict[tuple[int, int], int]) -> list[Segment]:
    names = {s.value: s.name.lower() for s in Space}
    return [Segment(names[sp], a, np.frombuffer(v.to_bytes(4, "little"), dtype=np.uint8))
            for (sp, a), v in sorted(mem.items())]


def reference(core: Any, case: Case, limit: int = 200_000) -> Ref:
    """The functional simulator's run of ``case`` (module doc)."""
    ref = Ref()
    words = case.words
    n = len(words) if case.prog_words is None else case.prog_words
    if n > core.buffers.instruction_words:
        ref.error = ERROR_CLASS[Fault.PROGRAM_SIZE]
        return ref
    program = []
    for pc, w in enumerate(words[:n]):
        try:
            program.append(decode(w.to_bytes(WORD_BYTES, "little"), pc))
        except IsaError:
            ref.error, ref.pc = "IllegalInstructionError", pc
            return ref
    image = CardImage(program=b"".join(w.to_bytes(WORD_BYTES, "little") for w in words[:n]),
                      segments=_segments(case.mem), debug=[(0, "test")])
    card = Card(0, core, image, program=program)
    k = [0]

    def issued(ins: Instruction) -> None:
        vals, lim = _resolve(ins, card.r)
        ref.issued.append((Opcode[ins.op.upper()], card.pc, vals, lim))
        if ins.op == "vargmax":
            card._set(ins.rd, vargmax_value(k[0]))
            k[0] += 1

    for op in Opcode:
        if UNIT_OF[op] != CONTROLLER:
            card._handlers[op.value] = issued
    ref.mem = dict(case.mem)

    def on_sw(space: str, addr: int, value: int) -> None:
        ref.mem[(Space[space.upper()].value, addr)] = value

    card.on_sw = on_sw
    try:
        while not card.halted:
            pc = card.pc
            before = list(card.r)
            loops_before = [list(lp) for lp in card.loops]
            if card.run(1) != 1:
                break
            ins = program[pc]
            ref.trace.append(_trace_entry(ins, pc, card.pc, before, loops_before))
            if len(ref.trace) > limit:
                raise AssertionError("reference did not halt")
    except SimError as e:
        ref.error, ref.pc = type(e).__name__, e.pc
    ref.halted = card.halted
    ref.regs = list(card.r)
    return ref


def _trace_entry(ins: Instruction, pc: int, npc: int, r: list[int], loops: list) -> dict:
    op = Opcode[ins.op.upper()]
    fmt = FORMAT_OF[op]
    fields = ins.fields
    reads = {fields[f] for f in INT_READS[fmt]} - {0}
    dest = fields.get(INT_DEST[fmt], 0) if INT_DEST[fmt] else 0
    if op in (Opcode.JMP, Opcode.BEQ, Opcode.BNE, Opcode.BLT, Opcode.BGE):
        a, b = r[fields["rs1"]], r[fields["rs2"]]
        redirect = {Opcode.JMP: True, Opcode.BEQ: a == b, Opcode.BNE: a != b,
                    Opcode.BLT: a < b, Opcode.BGE: a >= b}[op]
    elif op == Opcode.LOOP:
        redirect = npc != pc + 1
    elif op == Opcode.ENDLOOP:
        redirect = loops[-1][2] > 1
    else:
        redirect = False
    return {"op": op, "pc": pc, "reads": reads, "dest": dest, "redirect": redirect}


# ---- the cycle rules ----------------------------------------------------------------------------

def predict_fires(dut: ControlUnit, ref: Ref, first_fetch: int, env: Env) -> list[tuple[int, int]]:
    """(cycle, pc) of every firing instruction by the controller's cycle rules, for a
    deterministic ``env`` (fixed delays, every ready high)."""
    assert env.mem_latency[0] == env.mem_latency[1] and env.accept_delay[0] == env.accept_delay[1]
    assert env.rd_delay[0] == env.rd_delay[1] and env.mem_ready_p == 1.0
    lat, acc, rdd = env.mem_latency[0], env.accept_delay[0], env.rd_delay[0]
    avail = [0] * 32
    fires = []
    nxt = first_fetch + dut.first_fire_delay
    reqs: list[tuple[int, int, bool]] = []  # (request, response, write)
    last_resp = -1
    last_rd = -1
    for e in ref.trace:
        op = e["op"]
        t = max([nxt] + [avail[r] for r in e["reads"] | {e["dest"]} if r])
        if op in (Opcode.LW, Opcode.SW):
            while True:
                out = [q for q in reqs if q[0] < t <= q[1]]
                if len(out) < dut.mem_outstanding and (
                        op == Opcode.SW or not any(q[2] for q in out)):
                    break
                t += 1
            resp = max(t + lat, last_resp + 1)
            last_resp = resp
            reqs.append((t, resp, op == Opcode.SW))
            if op == Opcode.LW and e["dest"]:
                avail[e["dest"]] = resp + dut.lw_result_delay
        elif UNIT_OF[op] != CONTROLLER:
            t += acc
            if op == Opcode.VARGMAX and e["dest"]:
                w = max(t + rdd, last_rd + 1)
                last_rd = w
                avail[e["dest"]] = w + dut.rd_write_delay
        elif INT_DEST[FORMAT_OF[op]] and e["dest"]:
            avail[e["dest"]] = t + dut.int_latency
        fires.append((t, e["pc"]))
        nxt = t + dut.issue_cycles + (dut.branch_penalty if e["redirect"] else 0)
    return fires
