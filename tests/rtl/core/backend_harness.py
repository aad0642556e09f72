"""Run straight-line programs on the core's :class:`~dfx.rtl.core.backend.Backend` in Amaranth's
simulator (a Python stand-in for the controller resolves each instruction) and on the
functional simulator's :class:`~dfx.sim.functional.card.Card`, from the same VRF contents."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from amaranth.sim import Simulator
from resolve_ref import resolve

from dfx.isa.asm import assemble
from dfx.isa.config import CoreConfig
from dfx.isa.container import CardImage
from dfx.isa.encoding import Instruction, encode_program
from dfx.rtl.core.backend import Backend
from dfx.rtl.core.faults import Fault
from dfx.sim.functional.card import Card


@dataclass
class Outcome:
    vrf: np.ndarray  # uint16 [n, d]: vectors 0..n-1
    srf: np.ndarray  # uint32 [srf]
    r: list[int]  # integer registers after the program (vargmax results)
    fault: Fault = Fault.OK
    fault_pc: int = -1
    issue_cycles: list[int] = field(default_factory=list)
    cycles: int = 0


def program(text: str | list[Instruction]) -> list[Instruction]:
    return assemble(text) if isinstance(text, str) else list(text)


def run_backend(core: CoreConfig, prog: list[Instruction], vrf0: np.ndarray,
                regs: list[int] | None = None, *, max_cycles: int = 20_000) -> Outcome:
    """Issue ``prog`` (straight line, no control/integer instructions) on the Backend."""
    regs = list(regs or [0] * 32)
    dut = Backend(core)
    d = core.d
    n_vec = vrf0.shape[0]
    out = Outcome(np.zeros((n_vec, d), np.uint16), np.zeros(core.buffers.srf_scalars, np.uint32),
                  regs)

    async def bench(ctx):
        ctx.set(dut.cards, 1)
        for i in range(n_vec):
            ctx.set(dut.dbg_vrf_w.addr, i)
            ctx.set(dut.dbg_vrf_w.data, [int(x) for x in vrf0[i]])
            ctx.set(dut.dbg_vrf_w.en, 1)
            await ctx.tick()
        ctx.set(dut.dbg_vrf_w.en, 0)
        cycle = 0
        for pc, ins in enumerate(prog):
            res = resolve(ins, regs)
            ctx.set(dut.ins.payload.op, res["op"])
            ctx.set(dut.ins.payload.pc, pc)
            ctx.set(dut.ins.payload.word, ins.word)
            for k, v in enumerate(res["val"]):
                ctx.set(dut.ins.payload.val[k], v)
            ctx.set(dut.ins.payload.limit, res["limit"])
            ctx.set(dut.ins.valid, 1)
            while True:
                if ctx.get(dut.fault) != Fault.OK:
                    break
                ready = ctx.get(dut.ins.ready)
                if ctx.get(dut.rd.en):
                    regs[ctx.get(dut.rd.reg)] = ctx.get(dut.rd.value)
                await ctx.tick()
                cycle += 1
                assert cycle < max_cycles, f"pc {pc} ({ins}) never issued"
                if ready:
                    out.issue_cycles.append(cycle - 1)
                    break
            if ctx.get(dut.fault) != Fault.OK:
                break
        ctx.set(dut.ins.valid, 0)
        await ctx.tick()
        cycle += 1
        while not ctx.get(dut.idle) and ctx.get(dut.fault) == Fault.OK:
            if ctx.get(dut.rd.en):
                regs[ctx.get(dut.rd.reg)] = ctx.get(dut.rd.value)
            await ctx.tick()
            cycle += 1
            assert cycle < max_cycles, "the backend never became idle"
        out.cycles = cycle
        out.fault = Fault(ctx.get(dut.fault))
        out.fault_pc = ctx.get(dut.fault_pc) if out.fault != Fault.OK else -1
        for i in range(n_vec):
            ctx.set(dut.dbg_vrf_r.addr, i)
            ctx.set(dut.dbg_vrf_r.en, 1)
            await ctx.tick()
            out.vrf[i] = [int(x) for x in ctx.get(dut.dbg_vrf_r.data)]
        for i in range(core.buffers.srf_scalars):
            ctx.set(dut.dbg_srf_idx, i)
            out.srf[i] = ctx.get(dut.dbg_srf_value)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return out


def run_reference(core: CoreConfig, prog: list[Instruction], vrf0: np.ndarray,
                  regs: list[int] | None = None) -> Outcome:
    """The same program on the functional simulator's card."""
    card = Card(0, core, CardImage(program=encode_program(prog), segments=[]), program=prog)
    card.vrf[: vrf0.shape[0]] = vrf0.view(np.float16)
    card.valid[: vrf0.shape[0]] = True
    card.r[:] = list(regs or [0] * 32)
    for ins in prog:
        card._handlers[ins.opcode](ins)
    return Outcome(card.vrf[: vrf0.shape[0]].view(np.uint16).copy(),
                   card.srf.view(np.uint32).copy(), list(card.r))


def random_vrf(rng: np.random.Generator, n: int, d: int, scale: float = 1.0) -> np.ndarray:
    return (rng.standard_normal((n, d)) * scale).astype(np.float16).view(np.uint16)


def check_same(core: CoreConfig, text: str | list[Instruction], vrf0: np.ndarray,
               regs: list[int] | None = None) -> Outcome:
    prog = program(text)
    got = run_backend(core, prog, vrf0, regs)
    want = run_reference(core, prog, vrf0, regs)
    assert got.fault == Fault.OK, f"fault {got.fault.name} at pc {got.fault_pc}"
    bad = np.argwhere(got.vrf != want.vrf)
    assert not bad.size, f"VRF differs first at vector {bad[0][0]}, element {bad[0][1]}: " \
        f"rtl {got.vrf[tuple(bad[0])]:#06x}, simulator {want.vrf[tuple(bad[0])]:#06x}"
    assert np.array_equal(got.srf, want.srf), (
        f"SRF differs: {np.nonzero(got.srf != want.srf)[0].tolist()}")
    assert got.r == want.r, "integer registers differ"
    return got



