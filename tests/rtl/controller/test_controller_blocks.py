"""The controller's blocks on Amaranth's simulator: integer registers, loop stack, word port,
ALU, operand resolution."""

from __future__ import annotations

import gc
import random

import pytest
from amaranth.sim import Simulator

from dfx.isa.encoding import Instruction
from dfx.isa.spec import load_spec
from dfx.rtl.controller.alu import ALU_OPS, IntAlu
from dfx.rtl.controller.loops import LoopStack
from dfx.rtl.controller.memport import WordPort
from dfx.rtl.controller.regfile import IntRegs
from dfx.rtl.controller.resolve import READ_PORTS, Resolve
from dfx.rtl.isa_layouts import CONTROLLER, INT_DEST, INT_READS, RESOLVED, UNIT_OF, Opcode

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
SPEC = load_spec()
MASK = (1 << 64) - 1


def simulate(dut, bench) -> None:
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


def test_regs_read_write_pending_clear() -> None:
    dut = IntRegs(read_ports=2, write_ports=["a", "b"])

    async def bench(ctx):
        ctx.set(dut.w_a.idx, 0)  # r0 ignores writes
        ctx.set(dut.w_a.value, 5)
        ctx.set(dut.w_a.en, 1)
        ctx.set(dut.w_b.idx, 7)
        ctx.set(dut.w_b.value, MASK)
        ctx.set(dut.w_b.en, 1)
        ctx.set(dut.claim_idx, 3)
        ctx.set(dut.claim_en, 1)
        ctx.set(dut.r_idx[0], 7)
        ctx.set(dut.r_idx[1], 0)
        assert ctx.get(dut.r_val[0]) == 0  # written at the end of the cycle
        await ctx.tick()
        ctx.set(dut.w_a.en, 0)
        ctx.set(dut.w_b.en, 0)
        ctx.set(dut.claim_en, 0)
        assert (ctx.get(dut.r_val[0]), ctx.get(dut.r_val[1])) == (MASK, 0)
        assert ctx.get(dut.pending) == 1 << 3
        # a claim and a write of the same register: pending stays (the claim is later)
        ctx.set(dut.w_a.idx, 3)
        ctx.set(dut.w_a.value, 9)
        ctx.set(dut.w_a.en, 1)
        ctx.set(dut.claim_en, 1)
        await ctx.tick()
        ctx.set(dut.claim_en, 0)
        assert ctx.get(dut.pending) == 1 << 3
        await ctx.tick()  # the write alone clears it
        ctx.set(dut.w_a.en, 0)
        ctx.set(dut.r_idx[1], 3)
        assert ctx.get(dut.pending) == 0 and ctx.get(dut.r_val[1]) == 9
        ctx.set(dut.clear, 1)
        await ctx.tick()
        assert ctx.get(dut.r_val[0]) == 0 and ctx.get(dut.r_val[1]) == 0

    simulate(dut, bench)


def test_loop_stack_against_a_list() -> None:
    depth = 3
    dut = LoopStack(depth, 64)
    rng = random.Random(4)

    async def bench(ctx):
        model: list[list[int]] = []
        for _ in range(300):
            assert ctx.get(dut.active) == bool(model)
            assert ctx.get(dut.full) == (len(model) == depth)
            if model:
                top = model[-1]
                assert (ctx.get(dut.top_start), ctx.get(dut.top_end)) == (top[0], top[1])
                assert ctx.get(dut.top_last) == (top[2] == 1)
            choice = rng.random()
            for s in (dut.push, dut.pop, dut.dec):
                ctx.set(s, 0)
            if choice < 0.4 and len(model) < depth:
                e = [rng.randrange(64), rng.randrange(64), rng.choice([1, 2, 3, 1 << 40])]
                ctx.set(dut.push_start, e[0])
                ctx.set(dut.push_end, e[1])
                ctx.set(dut.push_count, e[2])
                ctx.set(dut.push, 1)
                model.append(e)
            elif choice < 0.7 and model:
                if model[-1][2] > 1:
                    ctx.set(dut.dec, 1)
                    model[-1][2] -= 1
                else:
                    ctx.set(dut.pop, 1)
                    model.pop()
            await ctx.tick()

    simulate(dut, bench)


def test_word_port_tracks_requests_in_order() -> None:
    dut = WordPort(3)
    rng = random.Random(5)

    async def bench(ctx):
        inflight: list[tuple[bool, int]] = []
        for _ in range(400):
            assert ctx.get(dut.busy) == bool(inflight)
            assert ctx.get(dut.full) == (len(inflight) == 3)
            assert ctx.get(dut.writes) == any(w for w, _ in inflight)
            send = not ctx.get(dut.full) and rng.random() < 0.5
            write, rd = rng.random() < 0.4, rng.randrange(32)
            ctx.set(dut.sent, send)
            ctx.set(dut.sent_write, write)
            ctx.set(dut.sent_rd, rd)
            resp = bool(inflight) and rng.random() < 0.5
            data = rng.getrandbits(32)
            ctx.set(dut.resp.valid, resp)
            ctx.set(dut.resp.payload.rdata, data)
            if resp:
                w, r = inflight.pop(0)
                assert ctx.get(dut.wb.en) == (not w)
                if not w:
                    assert (ctx.get(dut.wb.idx), ctx.get(dut.wb.value)) == (r, data)
            else:
                assert not ctx.get(dut.wb.en)
            if send:
                inflight.append((write, rd))
            await ctx.tick()

    simulate(dut, bench)


def _alu_ref(op: Opcode, a: int, b: int, imm: int) -> int:
    sh = imm & 63
    return {
        Opcode.LI: imm, Opcode.ADD: a + b, Opcode.SUB: a - b, Opcode.ADDI: a + imm,
        Opcode.MULI: a * imm, Opcode.SHLI: a << sh, Opcode.SHRI: (a & MASK) >> sh,
        Opcode.ANDI: a & imm,
    }[op] & MASK


def test_alu() -> None:
    dut = IntAlu()
    rng = random.Random(6)
    edge = [0, 1, -1, 63, 64, -64, (1 << 63) - 1, -(1 << 63)]

    async def bench(ctx):
        for _ in range(400):
            op = rng.choice(ALU_OPS)
            a, b = (rng.choice(edge + [rng.getrandbits(64) - (1 << 63)]) for _ in range(2))
            imm = rng.choice(edge + [rng.randrange(64), rng.getrandbits(64) - (1 << 63)])
            for s, v in ((dut.op, op), (dut.a, a & MASK), (dut.b, b & MASK), (dut.imm, imm & MASK)):
                ctx.set(s, v)
            if op in (Opcode.SHLI, Opcode.SHRI):
                assert ctx.get(dut.shift_bad) == (not 0 <= imm <= 63)
                if not 0 <= imm <= 63:
                    continue
            assert ctx.get(dut.result) == _alu_ref(op, a, b, imm)

    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()


def test_resolve_every_format() -> None:
    dut = Resolve()
    rng = random.Random(7)
    regs = [0] + [rng.choice([0, 5, -3, -(1 << 63), (1 << 63) - 1, rng.getrandbits(64) - (1 << 63)])
                  for _ in range(31)]

    async def bench(ctx):
        for ispec in SPEC.instructions.values():
            for _ in range(20):
                values = {}
                for f in ispec.fields:
                    if f.operand is not None:
                        values[f.name] = (rng.choice(f.codes) if f.codes else
                                          rng.randint(f.lo, f.hi))
                ins = Instruction.from_fields(ispec.name, **values)
                fields = ins.fields
                fmt = ispec.format.name
                ctx.set(dut.word, ins.word)
                for j in range(READ_PORTS):
                    idx = ctx.get(dut.r_idx[j])
                    if j < len(INT_READS[fmt]):
                        assert idx == fields[INT_READS[fmt][j]]
                    ctx.set(dut.r_val[j], regs[idx] & MASK)
                dest = fields.get(INT_DEST[fmt], 0) if INT_DEST[fmt] else 0
                assert ctx.get(dut.dest) == dest
                negs = []
                for i, o in enumerate(RESOLVED[fmt]):
                    v = fields[o.imm] + regs[fields[o.reg]]
                    got = ctx.get(dut.val[i])
                    assert got == ((v + (1 << 63)) & MASK) - (1 << 63), (ispec.name, o.name)
                    assert ctx.get(dut.neg) >> i & 1 == (v < 0)
                    negs.append(v < 0 and o.kind == "count")
                assert ctx.get(dut.count_neg) == any(negs)
                if "limit" in fields:
                    assert ctx.get(dut.regs.limit) == regs[fields["limit"]] & MASK
                if "rs1" in fields and UNIT_OF[Opcode[ispec.name.upper()]] == CONTROLLER:
                    assert ctx.get(dut.regs.rs1) == regs[fields["rs1"]] & MASK

    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()


def test_bad_parameters() -> None:
    with pytest.raises(ValueError, match="write_ports must be distinct identifiers"):
        IntRegs(read_ports=1, write_ports=["a", "a"])
    with pytest.raises(ValueError, match="read_ports must be an integer >= 1"):
        IntRegs(read_ports=0, write_ports=["a"])
    with pytest.raises(ValueError, match="depth must be an integer >= 1, not 0"):
        LoopStack(0, 16)
    with pytest.raises(ValueError, match="outstanding must be an integer >= 1"):
        WordPort(0)
    gc.collect()


def test_resolved_layout_is_the_issue_stage_payload() -> None:
    from dfx.isa.config import load_core
    from dfx.rtl.controller.resolve import resolved_layout
    from dfx.rtl.issue.plan import resolved_layout as issue_layout

    for name in ("tiny", "dfx-u280"):
        core = load_core(name)
        assert resolved_layout(core.buffers.instruction_words) == issue_layout(core)
