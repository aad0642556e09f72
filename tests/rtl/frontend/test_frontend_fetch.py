"""Loader and fetch of the front end (Amaranth sim): load timing, loader faults, the X-stage
sequence under random stalls, redirects costing exactly ``branch_penalty``."""

from __future__ import annotations

import gc
import random

import pytest
from amaranth.sim import Simulator

from dfx.isa.config import load_core
from dfx.isa.encoding import Instruction
from dfx.rtl.core.faults import Fault
from dfx.rtl.frontend.fetch import Fetch
from dfx.rtl.frontend.frontend import Frontend
from dfx.rtl.frontend.loader import Loader

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")

PROG = 0x40


def program(n: int, seed: int) -> list[int]:
    """Legal words, every one different."""
    rng = random.Random(seed)
    return [Instruction("li", rd=rng.randint(1, 31), imm=i - 5).word for i in range(n)]


def run(fe: Frontend, words: list[int], *, prog_words: int | None = None, data_p: float = 1.0,
        fire_p: float = 1.0, redirects: dict[int, int] | None = None, cycles: int = 200,
        seed: int = 0) -> dict:
    """Start, serve the program, act as the controller (fire with probability ``fire_p``;
    ``redirects``: pc -> target, each taken once), log the X stage every cycle."""
    rng = random.Random(seed)
    redirects = dict(redirects or {})
    log: dict = {"x": [], "cmd": None, "data": [], "first_fetch": None, "fires": []}

    async def bench(ctx):
        n = len(words) if prog_words is None else prog_words
        ctx.set(fe.prog, PROG)
        ctx.set(fe.prog_words, n)
        ctx.set(fe.start, 1)
        await ctx.tick()
        ctx.set(fe.start, 0)
        queue: list[int] = []
        for cyc in range(1, cycles):
            ctx.set(fe.prog_cmd.ready, 1)
            offer = bool(queue) and rng.random() < data_p
            ctx.set(fe.prog_data.valid, offer)
            if offer:
                ctx.set(fe.prog_data.payload, queue[0])
            x = fe.fetch.x
            valid = ctx.get(x.valid)
            pc = ctx.get(x.pc)
            fire = valid and rng.random() < fire_p
            redirect = fire and pc in redirects and not ctx.get(x.oor)
            ctx.set(fe.fetch.fire, fire)
            ctx.set(fe.fetch.redirect, redirect)
            if redirect:
                ctx.set(fe.fetch.target, redirects.pop(pc))
            if valid:
                log["x"].append((cyc, pc, ctx.get(x.oor), ctx.get(x.word)))
            if fire:
                log["fires"].append((cyc, pc, redirect))
            if ctx.get(fe.first_fetch):
                log["first_fetch"] = cyc
            if ctx.get(fe.prog_cmd.valid):
                log["cmd"] = (cyc, ctx.get(fe.prog_cmd.payload.addr),
                              ctx.get(fe.prog_cmd.payload.words))
                queue = list(words[:n])
            if offer and ctx.get(fe.prog_data.ready):
                log["data"].append(cyc)
                queue.pop(0)
            await ctx.tick()
        log["fault"] = ctx.get(fe.fault)
        log["fault_pc"] = ctx.get(fe.fault_pc)
        log["fault_word"] = ctx.get(fe.fault_word)

    sim = Simulator(fe)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return log


@pytest.mark.parametrize("penalty", [1, 2, 3])
def test_load_then_fetch_in_order(penalty: int) -> None:
    fe = Frontend(32, penalty)
    words = program(12, penalty)
    log = run(fe, words, cycles=60)
    n = len(words)
    assert log["cmd"] == (1, PROG, n)  # s + 1
    assert log["data"] == list(range(2, 2 + n))
    assert log["first_fetch"] == 3 + n  # the cycle after the go cycle
    assert log["fault"] == Fault.OK
    first = log["x"][0]
    assert first[0] == log["first_fetch"] + penalty
    seq = [(pc, oor, w) for _, pc, oor, w in log["x"]]
    assert seq[:n] == [(i, 0, w) for i, w in enumerate(words)]
    assert all(pc == n and oor for pc, oor, _ in seq[n:])  # past the end: pc n, marked


@pytest.mark.parametrize("penalty", [1, 2])
def test_stalls_and_redirects(penalty: int) -> None:
    fe = Frontend(32, penalty)
    words = program(20, 7)
    redirects = {5: 2, 9: 15, 17: 0, 3: 19}
    log = run(fe, words, data_p=0.6, fire_p=0.5, redirects=redirects, cycles=400, seed=3)
    # the instructions fired, in order, follow the redirects, nothing lost or repeated
    expect, pc, todo = [], 0, dict(redirects)
    while pc < 20:
        expect.append(pc)
        pc = todo.pop(pc) if pc in todo else pc + 1
    fired = [(c, pc, r) for c, pc, r in log["fires"] if pc < 20]
    assert [pc for _, pc, _ in fired] == expect
    # a redirect in cycle t: the target is in the X stage in t + 1 + branch_penalty, exactly
    x_at = {c: pc for c, pc, _, _ in log["x"]}
    for c, _, r in fired:
        if r:
            assert all(t not in x_at for t in range(c + 1, c + 1 + penalty))
            assert x_at[c + 1 + penalty] in redirects.values()
    # words seen in the X stage are the program's
    assert all(w == words[pc] for _, pc, oor, w in log["x"] if not oor)


def test_program_size_and_empty_program() -> None:
    fe = Frontend(16, 1)
    log = run(fe, program(17, 1), cycles=20)
    assert log["cmd"] is None and log["data"] == [] and log["first_fetch"] is None
    assert (log["fault"], log["fault_pc"], log["fault_word"]) == (Fault.PROGRAM_SIZE, 0, 0)
    log = run(Frontend(16, 2), [], cycles=20)
    assert log["cmd"] is None and log["first_fetch"] == 2 and log["fault"] == Fault.OK
    assert log["x"][0][:3] == (4, 0, 1)  # pc 0 is past the end


@pytest.mark.parametrize(("bad", "fault"), [
    (1 << 255, Fault.RESERVED_BITS),  # a reserved bit of nop
    (Instruction("li", rd=1, imm=5).word | 1 << 13, Fault.RESERVED_BITS),  # li's unused rs1
    (0xFF, Fault.UNDEFINED_OPCODE),
])
def test_illegal_word_faults_at_load(bad: int, fault: Fault) -> None:
    fe = Frontend(16, 1)
    words = program(8, 2)
    words[5] = bad
    words[6] = 0xFE  # a later illegal word does not count
    log = run(fe, words, data_p=0.7, cycles=60, seed=1)
    assert len(log["data"]) == 8  # every word is taken
    assert log["first_fetch"] is None and log["x"] == []
    assert (log["fault"], log["fault_pc"], log["fault_word"]) == (fault, 5, bad)


def test_parameters_and_properties() -> None:
    core = load_core("dfx-u280")
    fe = Frontend.from_core(core)
    assert (fe.words, fe.branch_penalty) == (16384, 2)
    assert Fetch.from_core(load_core("tiny")).branch_penalty == 1
    with pytest.raises(ValueError, match="branch_penalty must be an integer >= 1, not 0"):
        Frontend(16, 0)
    with pytest.raises(ValueError, match="words must be an integer >= 1"):
        Loader(-1)
    del fe
    gc.collect()
