"""Random valid programs of control and integer instructions (with some issued instructions),
generated from the spec: loops (immediate and register counts, nested up to the core's depth),
forward branches, count-down back edges, lw/sw on an initialised word region, ALU ops with
random immediates and, with ``faults``, the odd instruction that faults."""

from __future__ import annotations

import random
from typing import Any

from dfx.isa.encoding import Instruction, MemAddr
from dfx.isa.spec import load_spec
from dfx.rtl.isa_layouts import CONTROLLER, UNIT_OF, Opcode, Space

SPEC = load_spec()
GENERAL = range(1, 8)  # registers the random ops write
LOOP_REGS = range(12, 20)  # loop counts (one per nesting level)
DOWN_REGS = range(20, 29)  # count-down back edges (one per nesting level)
ADDR_REG = 30  # a base address for lw/sw
REGION = 256  # bytes of HBM and DDR the programs use (initialised by init_memory)
ALU = ["li", "add", "sub", "addi", "muli", "shli", "shri", "andi"]
BRANCHES = ["beq", "bne", "blt", "bge"]
ISSUED = [n for n, i in SPEC.instructions.items() if UNIT_OF[Opcode[n.upper()]] != CONTROLLER]


def init_memory(rng: random.Random) -> dict[tuple[int, int], int]:
    return {(sp.value, a): rng.getrandbits(32) for sp in (Space.HBM, Space.DDR)
            for a in range(0, REGION + 64, 4)}


class Gen:
    def __init__(self, rng: random.Random, loop_depth: int, faults: bool = False):
        self.rng = rng
        self.depth = loop_depth
        self.faults = faults
        self.out: list[Instruction] = []

    # -- single instructions -----------------------------------------------------------------
    def imm(self) -> int:
        r = self.rng
        return r.choice([r.randint(-8, 8), r.getrandbits(64) - (1 << 63), r.randint(0, 63),
                         r.randint(-(1 << 20), 1 << 20)])

    def alu(self) -> Instruction:
        r = self.rng
        op = r.choice(ALU)
        rd, rs1, rs2 = r.choice(GENERAL), r.choice([0, *GENERAL]), r.choice([0, *GENERAL])
        if op == "li":
            return Instruction("li", rd=rd, imm=self.imm())
        if op in ("add", "sub"):
            return Instruction(op, rd=rd, rs1=rs1, rs2=rs2)
        imm = self.imm()
        if op in ("shli", "shri") and not (self.faults and r.random() < 0.1):
            imm = r.randint(0, 63)
        return Instruction(op, rd=rd, rs1=rs1, imm=imm)

    def mem(self) -> list[Instruction]:
        r = self.rng
        space = r.choice(["hbm", "ddr"])
        off = 4 * r.randrange(REGION // 4)
        base = 0
        pre = []
        if r.random() < 0.4:
            base = ADDR_REG
            pre = [Instruction("li", rd=ADDR_REG, imm=4 * r.randrange(16))]
        if self.faults and r.random() < 0.1:
            kind = r.choice(["space", "align", "range"])
            if kind == "space":
                space = r.choice(["vrf", "wbuf"])
            elif kind == "align":
                off += r.choice([1, 2, 3])
            else:
                off = (1 << 40) - 4
        mem = MemAddr(space, base, off)
        if r.random() < 0.5:
            ins = Instruction("lw", rd=r.choice([0, *GENERAL]), mem=mem)
        else:
            ins = Instruction("sw", rs1=r.choice([0, *GENERAL]), mem=mem)
        return pre + [ins]

    def issued(self) -> Instruction:
        """A random issued instruction: fields from the spec, registers from a small set,
        counts from r0 or a loop register (non-negative) unless ``faults``."""
        r = self.rng
        name = r.choice(ISSUED)
        ispec = SPEC.instructions[name]
        values: dict[str, Any] = {}
        for f in ispec.fields:
            if f.operand is None:
                continue
            if f.regfile == "int":
                if f.operand == "rd":
                    values[f.name] = r.choice(GENERAL)
                elif f.kind == "reg" and ispec.format.operands[f.operand].kind == "count":
                    pool = [0, *LOOP_REGS] + (list(GENERAL) if self.faults else [])
                    values[f.name] = r.choice(pool)
                else:
                    values[f.name] = r.choice([0, *GENERAL])
            elif f.codes is not None:
                values[f.name] = r.choice(f.codes)
            elif f.kind == "imm" and ispec.format.operands[f.operand].kind == "count":
                values[f.name] = r.randint(0, min(f.hi, 40))
            else:
                values[f.name] = r.randint(f.lo, f.hi)
        return Instruction.from_fields(name, **values)

    def straight(self) -> Instruction | list[Instruction]:
        x = self.rng.random()
        if x < 0.45:
            return self.alu()
        if x < 0.65:
            return self.mem()
        if x < 0.9:
            return self.issued()
        return Instruction("nop")

    # -- structure ---------------------------------------------------------------------------
    def emit(self, x: Instruction | list[Instruction]) -> None:
        self.out.extend(x if isinstance(x, list) else [x])

    def block(self, level: int, budget: int) -> None:
        while budget > 0:
            x = self.rng.random()
            if x < 0.15 and level < self.depth and budget > 3:
                self.loop(level, min(budget, 12))
                budget -= 6
            elif x < 0.25:
                self.forward_branch()
                budget -= 3
            elif x < 0.3 and budget > 4:
                self.countdown(level)
                budget -= 5
            else:
                self.emit(self.straight())
                budget -= 1

    def loop(self, level: int, budget: int) -> None:
        r = self.rng
        if r.random() < 0.5:
            reg = LOOP_REGS[level]
            self.emit(Instruction("li", rd=reg, imm=r.randint(0, 3)))
            count = (r.randint(0, 1), reg)
        else:
            count = (r.randint(0, 3), 0)
        at = len(self.out)
        self.emit(Instruction("nop"))  # replaced below
        self.block(level + 1, r.randint(1, budget))
        self.emit(Instruction("endloop"))
        body = len(self.out) - 1 - at
        self.out[at] = Instruction.from_fields("loop", count=count[0], count_reg=count[1],
                                               body=body)

    def forward_branch(self) -> None:
        r = self.rng
        skip = [self.straight() for _ in range(r.randint(0, 3))]
        n = sum(len(s) if isinstance(s, list) else 1 for s in skip)
        op = r.choice(BRANCHES + ["jmp"])
        if op == "jmp":
            self.emit(Instruction("jmp", target=n + 1))
        else:
            self.emit(Instruction(op, rs1=r.choice([0, *GENERAL]), rs2=r.choice([0, *GENERAL]),
                                  target=n + 1))
        for s in skip:
            self.emit(s)

    def countdown(self, level: int) -> None:
        r = self.rng
        reg = DOWN_REGS[level]
        self.emit(Instruction("li", rd=reg, imm=r.randint(1, 3)))
        top = len(self.out)
        for _ in range(r.randint(1, 3)):
            self.emit(self.straight())
        self.emit(Instruction("addi", rd=reg, rs1=reg, imm=-1))
        self.emit(Instruction("bne", rs1=reg, rs2=0, target=top - len(self.out)))


def random_program(rng: random.Random, loop_depth: int, size: int = 30,
                   faults: bool = False) -> list[int]:
    g = Gen(rng, loop_depth, faults)
    g.block(0, size)
    g.emit(Instruction("halt"))
    return [i.word for i in g.out]
