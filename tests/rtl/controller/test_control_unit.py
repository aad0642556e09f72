"""The control unit (front end + controller) against the functional simulator and against its
cycle rules, on Amaranth's simulator, for the ``tiny`` and ``dfx-u280`` cores.

Every control and integer instruction and every fault the controller raises (and the loader's)
gives the same integer registers, memory words, issued instructions (resolved operands), fault
class and pc as :mod:`dfx.sim.functional`; random programs too, with random stalls of every
stream. With a deterministic environment, every instruction fires in exactly the cycle the
controller's rules (module doc of :mod:`dfx.rtl.controller.controller`) say.
"""

from __future__ import annotations

import gc
import random

import pytest
from amaranth.sim import Simulator
from control_harness import (
    Case,
    Env,
    Ref,
    Result,
    make_unit,
    predict_fires,
    reference,
    run_cases,
)
from program_gen import init_memory, random_program

from dfx.isa.asm import assemble
from dfx.isa.config import load_core
from dfx.isa.encoding import Instruction
from dfx.rtl.controller.controller import Controller
from dfx.rtl.controller.unit import ControlUnit
from dfx.rtl.core.faults import ERROR_CLASS, Fault
from dfx.rtl.isa_layouts import Opcode

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")

CORES = {name: load_core(name) for name in ("tiny", "dfx-u280")}
RANDOM_ENV = Env(seed=11, prog_ready_p=0.5, prog_valid_p=0.7, mem_ready_p=0.6,
                 mem_latency=(1, 7), accept_delay=(0, 4), rd_delay=(1, 6))
FIXED_ENV = Env(mem_latency=(5, 5), accept_delay=(1, 1), rd_delay=(3, 3))


def asm(text: str) -> list[int]:
    return [i.word for i in assemble(text)]


def same(core, case: Case, res: Result, ref: Ref | None = None) -> Ref:
    """Assert the unit's run equals the functional simulator's."""
    ref = ref or reference(core, case)
    assert ERROR_CLASS.get(res.fault) == ref.error, (res.fault, ref.error)
    if ref.error is not None:
        assert ref.pc is None or res.fault_pc == ref.pc  # HostError (program size): no pc
        return ref
    assert res.halted and ref.halted
    assert res.regs == ref.regs
    assert res.issued == ref.issued
    assert res.mem == ref.mem
    return ref


# ---- every control and integer instruction -------------------------------------------------

DIRECTED = {
    "alu": """
        li rd=r1, imm=-5
        li rd=r2, imm=0x7fffffffffffffff
        add rd=r3, rs1=r2, rs2=r2           # wraps
        sub rd=r4, rs1=r1, rs2=r2
        addi rd=r5, rs1=r2, imm=1           # wraps to the most negative
        muli rd=r6, rs1=r2, imm=-0x123456789
        shli rd=r7, rs1=r1, imm=63
        shli rd=r8, rs1=r1, imm=0
        shri rd=r9, rs1=r1, imm=1           # logical
        shri rd=r10, rs1=r1, imm=63
        andi rd=r11, rs1=r1, imm=-0x100
        li rd=r0, imm=7                     # r0 stays 0
        add rd=r12, rs1=r0, rs2=r11
        addi rd=r13, rs1=r13, imm=1
        addi rd=r13, rs1=r13, imm=1         # back to back on the same register
        muli rd=r13, rs1=r13, imm=3
        halt""",
    "branches": """
        li rd=r1, imm=-5
        li rd=r2, imm=3
        blt rs1=r1, rs2=r2, target=a        # signed: taken
        li rd=r10, imm=1
    a:  bge rs1=r1, rs2=r2, target=b        # not taken
        li rd=r11, imm=1
    b:  beq rs1=r1, rs2=r1, target=c        # taken
        li rd=r12, imm=1
    c:  bne rs1=r1, rs2=r1, target=d        # not taken
        li rd=r13, imm=1
    d:  bge rs1=r2, rs2=r1, target=e        # taken
        li rd=r14, imm=1
    e:  beq rs1=r1, rs2=r2, target=f        # not taken
        li rd=r15, imm=1
    f:  jmp target=g
        li rd=r16, imm=1
    h:  li rd=r17, imm=2
        jmp target=i
    g:  jmp target=h                        # backwards
    i:  bne rs1=r1, rs2=r2, target=j        # taken to the next instruction
    j:  li rd=r3, imm=3
    k:  addi rd=r3, rs1=r3, imm=-1          # a count-down loop
        addi rd=r4, rs1=r4, imm=10
        blt rs1=r0, rs2=r3, target=k
        halt""",
    "loops": """
        li rd=r5, imm=4
        loop count=3
            addi rd=r1, rs1=r1, imm=1
            loop count=r5+1
                addi rd=r2, rs1=r2, imm=1
                loop count=2
                    loop count=1
                        addi rd=r6, rs1=r6, imm=1
                    endloop
                endloop
            endloop
        endloop
        loop count=r0                       # skipped
            addi rd=r3, rs1=r3, imm=1
        endloop
        loop count=3                        # body = the endloop alone
        endloop
        loop count=2
            beq rs1=r0, rs2=r0, target=x    # a branch inside the body
            addi rd=r7, rs1=r7, imm=100
        x:  addi rd=r7, rs1=r7, imm=1
        endloop
        addi rd=r4, rs1=r4, imm=1
        halt""",
    "memory": """
        li rd=r1, imm=0x1234567890
        sw rs1=r1, mem=ddr[r0+16]
        lw rd=r2, mem=ddr[r0+16]            # after the sw: sees it
        li rd=r3, imm=8
        lw rd=r4, mem=hbm[r3+4]
        lw rd=r5, mem=hbm[r3+8]
        add rd=r6, rs1=r4, rs2=r5           # waits for both loads
        lw rd=r0, mem=hbm[r0+0]             # discarded
        sw rs1=r0, mem=hbm[r3+0]
        sw rs1=r6, mem=hbm[r0+4]
        sw rs1=r2, mem=ddr[r0+20]
        lw rd=r7, mem=hbm[r0+4]
        lw rd=r7, mem=ddr[r0+20]            # WAW on a pending register
        addi rd=r8, rs1=r7, imm=1
        halt""",
    "issued": """
        li rd=r1, imm=5
        li rd=r2, imm=-2
        vadd y=v[r1+1], a=v[r2+10], b=v[r1+0], n=r1+3
        vargmax rd=r3, a=v[r1+2], n=r1+1
        addi rd=r4, rs1=r3, imm=1           # waits for the vargmax result
        loop count=r3                       # counts from it too
            addi rd=r5, rs1=r5, imm=1
        endloop
        vargmax rd=r3, a=v[0], n=3
        vargmax rd=r6, a=v[0], n=3
        maskedmm y=v[r2+100], x=v[r1], w=hbm[r1+0x4000], kt=r1+1, nt=2, limit=r3, scale=s1, max=s2
        conv1d y=v[0], x=v[r4], w=wbuf[r2+64], b=ddr[r1+8], kt=1, nt=r0+1, gelu
        lutmv y=v[1], x=v[2], w=hbm[r6+0x100], b=ddr[0], n=r1+7, ng=1, gs=1, q=2, bias
        load dst=vrf[r1+3], src=hbm[r2+0x40], n=r4+2, stride=64
        copy dst=wbuf[0], src=ddr[r1+2], n=16
        send v=v[r2+4], n=r1
        sadd sd=s1, sa=s2, sb=s3
        halt""",
}


@pytest.mark.parametrize("core_name", list(CORES))
def test_every_instruction_matches_the_functional_simulator(core_name: str) -> None:
    core = CORES[core_name]
    rng = random.Random(1)
    cases = [Case(asm(t), mem=init_memory(rng)) for t in DIRECTED.values()]
    dut = make_unit(core)
    for case, res in zip(cases, run_cases(dut, cases, RANDOM_ENV), strict=True):
        ref = same(core, case, res)
        assert ref.error is None
    cases = [Case(asm(t), mem=init_memory(rng)) for t in DIRECTED.values()]
    dut = make_unit(core)
    for case, res in zip(cases, run_cases(dut, cases, FIXED_ENV), strict=True):
        assert res.fires == predict_fires(dut, same(core, case, res), res.first_fetch, FIXED_ENV)


# ---- every fault --------------------------------------------------------------------------

def fault_cases(core) -> list[tuple[str, Case, Fault, int]]:
    """(name, case, fault, pc)."""
    hbm, ddr = core.b.hbm.capacity_bytes, core.b.ddr.capacity_bytes
    depth = core.control.loop_depth
    nest = "\n".join(["loop count=2"] * (depth + 1) + ["nop"] + ["endloop"] * (depth + 1))
    out: list[tuple[str, list[int] | Case, Fault, int]] = [
        ("run past the end", asm("nop\nnop"), Fault.PC_RANGE, 2),
        ("loop skips to the end", asm("loop count=0\nendloop"), Fault.PC_RANGE, 2),
        ("target past the end", asm("li rd=r1, imm=1\njmp target=@+2\nhalt"), Fault.PC_RANGE, 1),
        ("target before 0", asm("nop\nbeq rs1=r0, rs2=r0, target=@-2\nhalt"), Fault.PC_RANGE, 1),
        ("body without endloop", [Instruction("loop", count=2, body=1).word,
                                  Instruction("nop").word, Instruction("endloop").word,
                                  Instruction("halt").word], Fault.LOOP, 0),
        ("body 0", [Instruction("loop", count=2, body=0).word, Instruction("halt").word],
         Fault.LOOP, 0),
        ("body past the end", [Instruction("loop", count=0, body=5).word,
                               Instruction("endloop").word], Fault.LOOP, 0),
        ("nested too deep", asm(nest + "\nhalt"), Fault.LOOP, depth),
        ("endloop without loop", asm("nop\nendloop\nhalt"), Fault.LOOP, 1),
        ("endloop of the outer loop", [Instruction("loop", count=2, body=2).word,
                                       Instruction("loop", count=2, body=2).word,
                                       Instruction("endloop").word,
                                       Instruction("endloop").word,
                                       Instruction("halt").word], Fault.LOOP, 2),
        ("branch out of a loop", asm("loop count=2\njmp target=out\nendloop\nout: halt"),
         Fault.LOOP, 1),
        ("branch back before a loop", asm("a: loop count=2\nbne rs1=r0, rs2=r0, target=a\n"
                                          "jmp target=a\nendloop\nhalt"), Fault.LOOP, 2),
        ("negative loop count", asm("li rd=r1, imm=-5\nloop count=r1+4\nendloop\nhalt"),
         Fault.COUNT, 1),
        ("negative issued count", asm("li rd=r1, imm=-9\nnop\n"
                                      "vadd y=v[0], a=v[0], b=v[0], n=r1+8\nhalt"),
         Fault.COUNT, 2),
        ("negative second count", asm("li rd=r1, imm=-9\nmm y=v[0], x=v[0], w=hbm[0], "
                                      "kt=1, nt=r1+3\nhalt"), Fault.COUNT, 1),
        ("shift 64", asm("shli rd=r1, rs1=r1, imm=64\nhalt"), Fault.COUNT, 0),
        ("shift -1", asm("nop\nshri rd=r1, rs1=r1, imm=-1\nhalt"), Fault.COUNT, 1),
        ("lw from vrf", asm("lw rd=r1, mem=vrf[r0+0]\nhalt"), Fault.SPACE, 0),
        ("sw to wbuf", asm("sw rs1=r1, mem=wbuf[r0+4]\nhalt"), Fault.SPACE, 0),
        ("lw misaligned", asm("li rd=r2, imm=1\nlw rd=r1, mem=hbm[r2+4]\nhalt"), Fault.ALIGN, 1),
        ("sw misaligned", asm("sw rs1=r1, mem=ddr[r0+6]\nhalt"), Fault.ALIGN, 0),
        ("lw past HBM", asm(f"lw rd=r1, mem=hbm[r0+{hbm}]\nhalt"), Fault.MEM_RANGE, 0),
        ("sw past DDR", asm(f"li rd=r3, imm={ddr - 8}\nsw rs1=r1, mem=ddr[r3+8]\nhalt"),
         Fault.MEM_RANGE, 1),
        ("lw below 0", asm("li rd=r2, imm=-4\nlw rd=r1, mem=ddr[r2+0]\nhalt"),
         Fault.MEM_RANGE, 1),
        ("lw far away", asm("li rd=r2, imm=0x7ffffffffffffffc\nlw rd=r1, mem=hbm[r2+8]\nhalt"),
         Fault.MEM_RANGE, 1),
        ("undefined opcode", asm("nop\nnop\nhalt")[:1] + [0xEE, Instruction("halt").word],
         Fault.UNDEFINED_OPCODE, 1),
        ("reserved bits", asm("nop\nnop")[:1] + [Instruction("halt").word | 1 << 200],
         Fault.RESERVED_BITS, 1),
        ("unused field", [Instruction("jmp", target=1).word | 1 << 8, 1], Fault.RESERVED_BITS, 0),
    ]
    cases = [(n, c if isinstance(c, Case) else Case(c), f, pc) for n, c, f, pc in out]
    cases.append(("program too big", Case([0], prog_words=core.buffers.instruction_words + 1),
                  Fault.PROGRAM_SIZE, 0))
    return cases


@pytest.mark.parametrize("core_name", list(CORES))
def test_every_fault(core_name: str) -> None:
    core = CORES[core_name]
    cases = fault_cases(core)
    dut = make_unit(core)
    results = run_cases(dut, [c for _, c, _, _ in cases], RANDOM_ENV)
    for (name, case, fault, pc), res in zip(cases, results, strict=True):
        assert (res.fault, res.fault_pc) == (fault, pc), name
        past_end = pc >= len(case.words) or fault == Fault.PROGRAM_SIZE
        assert res.fault_word == (0 if past_end else case.words[pc]), name
        if fault == Fault.PROGRAM_SIZE:
            assert res.prog_cmd is None
        ref = same(core, case, res)
        assert ref.error == ERROR_CLASS[fault], name


# ---- random programs ------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("core_name", list(CORES))
def test_random_programs_match_the_functional_simulator(core_name: str) -> None:
    core = CORES[core_name]
    rng = random.Random(20 + len(core_name))
    cases = [Case(random_program(rng, core.control.loop_depth, 30, faults=i % 4 == 3),
                  mem=init_memory(rng)) for i in range(16)]
    results = run_cases(make_unit(core), cases, RANDOM_ENV)
    errors = 0
    for case, res in zip(cases, results, strict=True):
        errors += same(core, case, res).error is not None
    assert errors < len(cases) // 2


@pytest.mark.parametrize("core_name", list(CORES))
def test_random_programs_cycle_exact(core_name: str) -> None:
    core = CORES[core_name]
    rng = random.Random(30 + len(core_name))
    cases = [Case(random_program(rng, core.control.loop_depth, 30), mem=init_memory(rng))
             for _ in range(10)]
    dut = make_unit(core, mem_outstanding=2)
    for case, res in zip(cases, run_cases(dut, cases, FIXED_ENV), strict=True):
        ref = same(core, case, res)
        assert res.fires == predict_fires(dut, ref, res.first_fetch, FIXED_ENV)


@pytest.mark.slow
def test_other_timing_parameters_cycle_exact() -> None:
    """issue_cycles 2, branch_penalty 3, int_latency 3, one lw/sw in flight."""
    core = CORES["tiny"]
    dut = ControlUnit(words=512, issue_cycles=2, branch_penalty=3, int_latency=3,
                      loop_depth=core.control.loop_depth,
                      hbm_bytes=core.b.hbm.capacity_bytes, ddr_bytes=core.b.ddr.capacity_bytes,
                      mem_outstanding=1)
    rng = random.Random(5)
    cases = [Case(random_program(rng, core.control.loop_depth, 30), mem=init_memory(rng))
             for _ in range(6)]
    cases += [Case(asm(t), mem=init_memory(rng)) for t in DIRECTED.values()]
    env = Env(mem_latency=(2, 2), accept_delay=(0, 0), rd_delay=(1, 1))
    for case, res in zip(cases, run_cases(dut, cases, env), strict=True):
        assert res.fires == predict_fires(dut, reference(core, case), res.first_fetch, env)


# ---- the cycle rules by hand ----------------------------------------------------------------

@pytest.mark.parametrize("core_name", list(CORES))
def test_cycle_rules_by_hand(core_name: str) -> None:
    core = CORES[core_name]
    p = core.timing.branch_penalty
    text = """
        li rd=r1, imm=1           # 0
        addi rd=r2, rs1=r1, imm=1 # 1: uses r1 the next cycle (int_latency 1)
        jmp target=a              # 2: taken
        nop                       # 3: skipped
    a:  loop count=0              # 4: skips its body
        endloop                   # 5
        loop count=2              # 6
        endloop                   # 7: back edge once
        lw rd=r3, mem=hbm[r0+0]   # 8
        addi rd=r4, rs1=r3, imm=1 # 9: waits for the response
        vargmax rd=r5, a=v[0], n=1  # 10: accepted one cycle after valid
        addi rd=r6, rs1=r5, imm=0 # 11: waits for rd_write
        halt                      # 12
    """
    lat, acc, rdd = 5, 1, 3
    env = Env(mem_latency=(lat, lat), accept_delay=(acc, acc), rd_delay=(rdd, rdd))
    case = Case(asm(text), mem={(0, 0): 41})
    dut = make_unit(core)
    assert dut.branch_penalty == p and dut.int_latency == 1 and dut.issue_cycles == 1
    res = run_cases(dut, [case], env)[0]
    assert res.first_fetch == res.start + 3 + len(case.words)
    t0 = res.first_fetch + p
    fires = {}
    for c, pc in res.fires:
        fires.setdefault(pc, []).append(c)
    assert fires[0] == [t0]
    assert fires[1] == [t0 + 1]
    assert fires[2] == [t0 + 2]
    assert 3 not in fires
    assert fires[4] == [t0 + 3 + p]  # after the jump
    assert 5 not in fires
    assert fires[6] == [t0 + 4 + 2 * p]  # after the skip
    assert fires[7] == [t0 + 5 + 2 * p, t0 + 6 + 3 * p]  # the back edge, then falls through
    t_lw = t0 + 7 + 3 * p
    assert fires[8] == [t_lw]
    assert fires[9] == [t_lw + lat + 1]  # response at t_lw + lat, available one cycle later
    t_vm = t_lw + lat + 2 + acc
    assert fires[10] == [t_vm] and res.issue_cycles == [t_vm]
    assert fires[11] == [t_vm + rdd + 1]
    assert fires[12] == [t_vm + rdd + 2]
    assert res.regs[4] == 42 and res.halted


def test_stop_freezes_the_controller() -> None:
    dut = make_unit(CORES["tiny"])
    words = asm("li rd=r1, imm=1\naddi rd=r1, rs1=r1, imm=1\naddi rd=r1, rs1=r1, imm=1\nhalt")
    fires = []

    async def bench(ctx):
        ctx.set(dut.prog_words, len(words))
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        ctx.set(dut.prog_cmd.ready, 1)
        for w in words:
            ctx.set(dut.prog_data.valid, 1)
            ctx.set(dut.prog_data.payload, w)
            await ctx.tick().until(dut.prog_data.ready)
        ctx.set(dut.prog_data.valid, 0)
        await ctx.tick().until(dut.fire)
        ctx.set(dut.stop, 1)  # after li fired
        for _ in range(10):
            fires.append(ctx.get(dut.fire))
            await ctx.tick()
        assert not ctx.get(dut.halted) and ctx.get(dut.controller.regs.regs[1]) == 1

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert not any(fires)


def test_properties_and_parameters() -> None:
    for name, core in CORES.items():
        u = ControlUnit.from_core(core)
        t = core.timing
        assert (u.words, u.branch_penalty, u.issue_cycles, u.int_latency) == (
            core.buffers.instruction_words, t.branch_penalty, t.issue_cycles, t.int_latency)
        assert u.first_fire_delay == t.branch_penalty
        assert (u.lw_result_delay, u.rd_write_delay, u.mem_outstanding) == (1, 1, 4)
        assert u.controller.loop_depth == core.control.loop_depth
        cap = max(core.b.hbm.capacity_bytes, core.b.ddr.capacity_bytes)
        assert u.controller.addr_bits == (cap - 1).bit_length(), name
        assert u.issue.payload.op.shape() is Opcode
        del u
    kw = dict(words=64, issue_cycles=1, branch_penalty=1, int_latency=1, loop_depth=2,
              hbm_bytes=1 << 20, ddr_bytes=1 << 20)
    for bad, msg in [({"issue_cycles": 0}, "issue_cycles must be an integer >= 1, not 0"),
                     ({"int_latency": 1.5}, "int_latency must be an integer >= 1"),
                     ({"loop_depth": 0}, "loop_depth must be an integer >= 1"),
                     ({"hbm_bytes": 2}, "hbm_bytes must be an integer >= 4"),
                     ({"mem_outstanding": 0}, "mem_outstanding must be an integer >= 1"),
                     ({"words": True}, "words must be an integer >= 1")]:
        with pytest.raises(ValueError, match=msg):
            Controller(**{**kw, **bad})
    gc.collect()
