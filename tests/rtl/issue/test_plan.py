"""The issue plan's operand checks against the functional simulator: for random instructions
(legal and illegal operands), the plan's fault has the error class the simulator raises, and
its VRF ranges and scalar claims are those of the instruction."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator
from resolve_ref import resolve

from dfx.isa.config import load_core
from dfx.isa.container import CardImage
from dfx.isa.encoding import Count, Instruction, MemAddr, VAddr, encode_program
from dfx.rtl.core.faults import ERROR_CLASS, Fault
from dfx.rtl.issue.plan import Plan, Unit
from dfx.sim.functional.card import Card
from dfx.sim.functional.errors import SimError

CORE = load_core("tiny")
SPACES = ("hbm", "ddr", "vrf", "wbuf")


def random_instruction(rng: np.random.Generator, op: str) -> Instruction:
    """An instruction of ``op`` with operands that are often legal, sometimes not."""
    def small(hi: int) -> int:
        return int(rng.choice([0, 1, 2, 3, int(rng.integers(0, hi)), hi - 1, hi]))

    def reg() -> int:
        return int(rng.choice([0, 0, 1, 2, 3, 4, 5]))

    def vaddr() -> VAddr:
        return VAddr(reg(), small(4200) if rng.random() < 0.2 else small(64))

    def maddr(tile: bool = False) -> MemAddr:
        space = str(rng.choice(SPACES, p=[0.4, 0.3, 0.1, 0.2]))
        unit = CORE.tile_bytes if tile and rng.random() < 0.7 else 2 if rng.random() < 0.9 else 1
        return MemAddr(space, reg(), unit * small(2000))

    def count(hi: int) -> Count:
        return Count(small(hi), reg() if rng.random() < 0.3 else 0)

    spec = Instruction.make(op).spec
    fmt = spec.format.name
    kw: dict = {}
    for o in spec.operands:
        kind = o.kind
        if kind == "vaddr":
            kw[o.name] = vaddr()
        elif kind == "maddr":
            kw[o.name] = maddr(tile=fmt == "mat" and o.name == "w")
        elif kind == "count":
            kw[o.name] = count(20)
        elif kind == "sreg":
            kw[o.name] = small(70)
        elif kind == "reg":
            kw[o.name] = reg()
        elif kind == "flag":
            kw[o.name] = int(rng.integers(0, 2))
        elif kind == "uimm":
            hi = {"batch": 3, "kt_stride": 5, "gs": 4, "q": 6, "stride": 40}.get(o.name, 3)
            kw[o.name] = small(hi) * (2 if o.name == "stride" and rng.random() < 0.8 else 1)
            if o.name == "stride" and rng.random() < 0.15:  # strides past every space
                kw[o.name] = int(rng.choice([(1 << 31) + 2, (1 << 32) - 2, 1 << 26]))
        elif kind == "f32":
            kw[o.name] = 1.5
    return Instruction.make(op, **kw)


OPS = ["conv1d", "maskedmm", "mm", "lutmv", "vadd", "vsub", "vmul", "vadds", "vsubs", "vmuls",
       "vexp", "vgelu", "vmov", "vacc", "vaccsq", "vmax", "vargmax", "sli", "sadd", "ssub",
       "smul", "srecip", "srsqrt", "load", "store", "store_t", "copy", "send", "recv"]


def reference(ins: Instruction, regs: list[int]) -> str | None:
    """The error class name the functional simulator raises for ``ins`` (None: it runs)."""
    card = Card(0, CORE, CardImage(program=encode_program([ins]), segments=[]),
                program=[ins])
    for mem in card.mem.values():
        mem.fill(0, mem.capacity, 0)
    card.valid[:] = True
    card.r[:] = regs
    try:
        card._handlers[ins.opcode](ins)
    except SimError as e:
        return type(e).__name__
    return None


def cases(seed: int, n: int) -> list[tuple[Instruction, list[int]]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        op = OPS[int(rng.integers(0, len(OPS)))]
        # r4, r5: values far past every bound, where the plan's saturating checks
        # (rtl/issue/saturate.py) must still give the simulator's verdict
        regs = [0, int(rng.choice([0, 5, 64, -3, 4090])), int(rng.choice([1, 16, -1])),
                int(rng.choice([0, 2, 1 << 40])),
                int(rng.choice([1 << 62, (1 << 33) + 6, -(1 << 62), (1 << 24) - 2])),
                int(rng.choice([(1 << 20) + 4, 1 << 31, (1 << 45) + 1, 4094]))] + [0] * 26
        out.append((random_instruction(rng, op), regs))
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_plan_faults_match_simulator(seed: int) -> None:
    dut = Plan(CORE)
    todo = cases(seed, 300)
    results = []

    async def bench(ctx):
        ctx.set(dut.cards, 1)
        for ins, regs in todo:
            res = resolve(ins, regs)
            ctx.set(dut.ins.op, res["op"])
            ctx.set(dut.ins.word, ins.word)
            for i, v in enumerate(res["val"]):
                ctx.set(dut.ins.val[i], v)
            ctx.set(dut.ins.limit, res["limit"])
            results.append((Fault(ctx.get(dut.fault)), Unit(ctx.get(dut.unit)),
                            ctx.get(dut.dst_n), ctx.get(dut.src0_n)))

    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()
    mismatches = []
    for (ins, regs), (fault, *_ranges) in zip(todo, results, strict=True):
        want = reference(ins, regs)
        got = None if fault == Fault.OK else ERROR_CLASS[fault]
        if want != got:
            mismatches.append(f"{ins} regs={regs[:4]}: simulator {want}, plan {fault.name}")
    assert not mismatches, "\n".join(mismatches[:20])
