"""Hardware loops, branches, halt, the instruction budget."""

from __future__ import annotations

import pytest

from dfx.isa.encoding import Instruction
from dfx.sim.functional import (
    BudgetExceededError,
    IllegalInstructionError,
    LoopError,
)


def test_loops_nested_and_from_registers(sim) -> None:
    app = sim.run("""
        li rd=r5, imm=4
        loop count=3
            addi rd=r1, rs1=r1, imm=1
            loop count=r5+1
                addi rd=r2, rs1=r2, imm=1
            endloop
        endloop
        loop count=r0
            addi rd=r3, rs1=r3, imm=1
        endloop
        addi rd=r4, rs1=r4, imm=1
        halt""")
    r = app.cards[0].r
    assert (r[1], r[2], r[3], r[4]) == (3, 15, 0, 1)
    assert app.cards[0].loops == []


def test_loop_depth_limit(sim) -> None:
    depth = sim.core.control.loop_depth
    text = "\n".join(["loop count=2"] * (depth + 1) + ["nop"] + ["endloop"] * (depth + 1))
    with pytest.raises(LoopError, match=f"deeper than core.control.loop_depth = {depth}"):
        sim.run(text + "\nhalt")
    ok = "\n".join(["loop count=2"] * depth + ["addi rd=r1, rs1=r1, imm=1"] + ["endloop"] * depth)
    assert sim.run(ok + "\nhalt").cards[0].r[1] == 2 ** depth


def test_loop_body_must_end_with_endloop(sim) -> None:
    prog = [Instruction("loop", count=2, body=1), Instruction("nop"), Instruction("endloop"),
            Instruction("halt")]
    with pytest.raises(LoopError, match="must end with an endloop at pc 1"):
        sim.run(prog)


def test_stray_endloop(sim) -> None:
    with pytest.raises(LoopError, match="endloop without an active hardware loop"):
        sim.run("nop\nendloop\nhalt")


def test_branches_signed(sim) -> None:
    app = sim.run("""
        li rd=r1, imm=-5
        li rd=r2, imm=3
        blt rs1=r1, rs2=r2, target=a      # taken: -5 < 3 (signed)
        li rd=r10, imm=1
    a:  bge rs1=r1, rs2=r2, target=b      # not taken
        li rd=r11, imm=1
    b:  beq rs1=r2, rs2=r2, target=c      # taken
        li rd=r12, imm=1
    c:  bne rs1=r2, rs2=r2, target=d      # not taken
        li rd=r13, imm=1
    d:  jmp target=e
        li rd=r14, imm=1
    e:  halt""")
    r = app.cards[0].r
    assert (r[10], r[11], r[12], r[13], r[14]) == (0, 1, 0, 1, 0)


def test_backward_branch_loop(sim) -> None:
    app = sim.run("""
        li rd=r2, imm=10
    top:
        addi rd=r1, rs1=r1, imm=1
        blt rs1=r1, rs2=r2, target=top
        halt""")
    assert app.cards[0].r[1] == 10
    assert app.stats()["cards"][0]["by_op"] == {"li": 1, "addi": 10, "blt": 10, "halt": 1}


def test_branch_out_of_a_hardware_loop(sim) -> None:
    with pytest.raises(LoopError, match=r"branch to pc 4 leaves the hardware loop at pc 0 "
                                        r"\(body pc 1..2\)"):
        sim.run("""
            loop count=2
                jmp target=out
            endloop
            nop
        out: halt""")


def test_branch_outside_the_program(sim) -> None:
    with pytest.raises(IllegalInstructionError, match="branch target pc 7 is outside the program"):
        sim.run("jmp target=@+7\nhalt")


def test_running_past_the_end(sim) -> None:
    with pytest.raises(IllegalInstructionError, match=r"card 0, pc 2 \(test\): pc 2 is outside "
                                                      r"the program \(2 instructions\)"):
        sim.run("nop\nnop")


def test_budget_stops_an_infinite_loop(sim) -> None:
    with pytest.raises(BudgetExceededError, match=r"instruction budget of 500 instructions used "
                                                  r"up before all cards halted .*: card 0, pc \d "
                                                  r"\(test\)"):
        sim.run("top: nop\njmp target=top\nhalt", max_instructions=500)


def test_halt_stops_immediately(sim) -> None:
    app = sim.run("halt\nli rd=r1, imm=1\nhalt")
    c = app.cards[0]
    assert c.halted and c.pc == 1 and c.r[1] == 0
    assert app.run() == 0  # running a halted appliance does nothing
