"""Random valid programs for the whole-core regression (docs/verification.md "Core
regression"), deterministic in a seed, built with :class:`~dfx.isa.encoding.Instruction` from
``isa/spec.yaml`` in the frame of :mod:`.core_programs` (memory images, prologue, epilogue).

The body: hardware loops nested up to ``min(core.control.loop_depth, 4)`` with immediate,
register and loop-variant counts (0 included); forward branches (taken or not, over loops too)
and count-down backward branches inside loop bodies; loop-variant address and count
registers (``r{base} + off`` and ``imm + r{reg}`` stay in range on every iteration); every
non-router instruction with each operand kind, the spaces it may use and corner values (zero
counts, strides below and above a vector, in-place and overlapping VRF operands, batches,
``kt_stride``, biases, GELU). Validity is by construction; the functional simulator checks it
(:func:`.core_check.reference` must halt).

Register use: r1..r7 random values (ALU, ``lw``, ``vargmax``, branch operands, ``limit``);
``TEMPS`` hold a base or count set by the ``li`` just before its use; per loop level one
address-scale and one small loop-variant register (``IND_A``, ``IND_V``: ``li`` before the loop,
``addi`` before its ``endloop``), a count register and a count-down register.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dfx.isa.config import CoreConfig
from dfx.isa.encoding import F32, Count, Instruction, MemAddr, VAddr

from .core_programs import (
    GENERAL,
    KNOWN_ISSUES,
    NUM_REGS,
    TABLE,
    Arena,
    LutStream,
    Program,
    frame,
    framed,
)

__all__ = ["RandomGen", "random_program"]

TEMPS = (8, 9, 10, 11, 28, 29, 30, 31)  # li-then-use registers (address bases, counts)
IND_A = tuple(range(12, 16))  # loop-variant address registers, one per nesting level
LOOP_CNT = tuple(range(16, 20))  # loop count registers, one per level
DOWN = tuple(range(20, 24))  # count-down registers of backward branches, one per level
IND_V = tuple(range(24, 28))  # loop-variant small registers (VRF bases, counts)
MAX_LEVELS = 4
#: ``tight`` programs use the first bytes of each memory region and vectors of the VRF only, so
#: that their accesses overlap often (memory and VRF hazards, chaining).
TIGHT_BYTES = 512
TIGHT_VECTORS = 24


@dataclass
class _Loop:
    """An active hardware loop while its body is generated: iterations (at most), the
    loop-variant registers (value init + k·step for iteration k)."""

    level: int
    count: int
    a: tuple[int, int, int]  # (register, init, step): addresses
    v: tuple[int, int, int]  # (register, init, step): VRF bases and counts

    def values(self, which: str) -> tuple[int, int, int, int]:
        reg, init, step = self.a if which == "a" else self.v
        return reg, init, step, init + max(self.count - 1, 0) * step


class _Fix:
    """A placeholder resolved when the program is complete (branch targets, loop bodies)."""

    def __init__(self, make: Callable[[int, dict[str, int]], Instruction]):
        self.make = make


ELEM_SRC = (("hbm", "data"), ("hbm", "weights"), ("hbm", "scratch"), ("ddr", "data"),
            ("ddr", "scratch"), ("wbuf", "scratch"))
ELEM_DST = (("hbm", "scratch"), ("ddr", "scratch"), ("wbuf", "scratch"))
WEIGHT_SRC = (("hbm", "weights"), ("hbm", "weights"), ("ddr", "weights"), ("wbuf", "scratch"),
              ("hbm", "scratch"))
INT_DST = (("hbm", "ints_rw"), ("ddr", "ints_rw"))
INT_SRC = INT_DST + (("hbm", "table"), ("ddr", "table"), ("hbm", "data"), ("ddr", "scratch"))
VV = ("vadd", "vsub", "vmul")
VS = ("vadds", "vsubs", "vmuls")
V1 = ("vexp", "vgelu", "vmov")
ALU = ("li", "add", "sub", "addi", "muli", "shli", "shri", "andi")
BRANCH = ("beq", "bne", "blt", "bge", "jmp")
SCALAR2 = ("sadd", "ssub", "smul")


class RandomGen:
    """Builds one random valid program body (module doc). ``size``: statements at the top
    level, roughly; ``budget``: dynamic cost (instructions, weighted) the body may reach."""

    def __init__(self, core: CoreConfig, ar: Arena, rng: random.Random,
                 streams: list[LutStream], *, size: int = 60, budget: int = 1500,
                 classes: tuple[str, ...] | None = None,
                 avoid: frozenset[str] = frozenset(KNOWN_ISSUES), tight: bool = False):
        self.core, self.ar, self.rng = core, ar, rng
        self.avoid, self.tight = avoid, tight
        self.span = (0, 0)
        self.streams = streams
        self.size, self.budget = size, budget
        self.depth = min(core.control.loop_depth, MAX_LEVELS)
        self.out: list[Instruction | _Fix] = []
        self.labels: dict[int, int] = {}
        self.loops: list[_Loop] = []
        self.mult = 1
        self.cost = 0
        self.temps: list[int] = []
        self.in_countdown: set[int] = set()
        weights = {"alu": 10, "lw": 3, "sw": 3, "vv": 5, "vs": 4, "v1": 4, "red": 5, "scalar": 5,
                   "load": 4, "store": 4, "store_t": 2, "copy": 3, "matrix": 5, "lutmv": 3,
                   "nop": 1}
        if classes is not None:
            weights = {k: v for k, v in weights.items() if k in classes or k == "alu"}
        self.kinds = list(weights)
        self.kind_weights = list(weights.values())

    # -- emission ----------------------------------------------------------------------------
    def emit(self, items: list[Instruction | _Fix]) -> None:
        self.out.extend(items)

    def label(self) -> int:
        lid = len(self.labels)
        self.labels[lid] = -1
        return lid

    def place(self, lid: int) -> None:
        self.labels[lid] = len(self.out)

    def finish(self) -> list[Instruction]:
        res = []
        for pc, x in enumerate(self.out):
            res.append(x.make(pc, self.labels) if isinstance(x, _Fix) else x)
        return res

    # -- operands ----------------------------------------------------------------------------
    def temp(self) -> int:
        free = [t for t in TEMPS if t not in self.temps]
        t = self.rng.choice(free)
        self.temps.append(t)
        return t

    def _pick(self, lo: int, hi: int, align: int) -> int:
        a = -(-lo // align) * align
        top = (hi // align) * align
        return a + align * self.rng.randint(0, (top - a) // align)

    def address(self, lo: int, hi: int, size: int, align: int, ind: str
                ) -> tuple[list[Instruction], int, int]:
        """(setup, base register, offset) of an address whose every iteration's value A
        satisfies lo <= A, A + size <= hi, A % align == 0. ``ind``: which loop-variant
        register kind may serve as the base ("a" or "v")."""
        r = self.rng
        mode = r.choice(["abs", "abs", "tmp", "ind", "ind"])
        if mode == "ind":
            for lp in r.sample(self.loops, len(self.loops)):
                reg, init, step, last = lp.values(ind)
                if init % align or step % align:
                    continue
                a_lo, a_hi = max(lo, init), hi - size - (last - init)
                if -(-a_lo // align) * align <= a_hi:
                    a = self._pick(a_lo, a_hi, align)
                    self.span = (a, a + (last - init) + size)
                    return [], reg, a - init
        a = self._pick(lo, hi - size, align)
        self.span = (a, a + size)
        if mode == "tmp" or (mode == "ind" and r.random() < 0.5):
            t = self.temp()
            if r.random() < 0.3:
                return self.fetch(t, a)
            b = r.choice([a, r.randint(0, a), a - a % 64])
            return [Instruction("li", rd=t, imm=b)], t, a - b
        return [], 0, a

    def fetch(self, t: int, most: int) -> tuple[list[Instruction], int, int]:
        """``lw r{t}`` of a :data:`~.core_programs.TABLE` word v <= ``most``: (setup, t,
        most - v)."""
        r = self.rng
        i = r.choice([i for i, v in enumerate(TABLE) if v <= most])
        space = r.choice(["hbm", "ddr"])
        lo = self.ar.region(space, "table")[0]
        return [Instruction("lw", rd=t, mem=MemAddr(space, 0, lo + 4 * i))], t, most - TABLE[i]

    def maddr(self, space: str, region: str, size: int, align: int = 2
              ) -> tuple[list[Instruction], MemAddr]:
        lo, hi = self.ar.region(space, region)
        if self.tight:
            hi = min(hi, lo + max(TIGHT_BYTES, 2 * size + 2 * align))
        pre, base, off = self.address(lo, hi, size, align, "a")
        return pre, MemAddr(space, base, off)

    def vaddr(self, nvec: int, space: bool = False) -> tuple[list[Instruction], Any]:
        hi = min(self.ar.vrf, max(TIGHT_VECTORS, 2 * nvec)) if self.tight else self.ar.vrf
        pre, base, off = self.address(0, hi, nvec, 1, "v")
        return pre, (MemAddr("vrf", base, off) if space else VAddr(base, off))

    def vaddr_apart(self, nvec: int, other: tuple[int, int]) -> tuple[list[Instruction], Any]:
        """A VRF address of ``nvec`` vectors whose range never meets ``other``."""
        for _ in range(30):
            temps = list(self.temps)
            pre, y = self.vaddr(nvec)
            if self.span[1] <= other[0] or other[1] <= self.span[0]:
                return pre, y
            self.temps = temps  # give back the temporaries of the rejected try
        a = 0 if other[0] >= nvec else other[1]
        self.span = (a, a + nvec)
        return [], VAddr(0, a)

    def count(self, lo: int, hi: int, exact: bool = False) -> tuple[list[Instruction], Count, int]:
        """(setup, count, largest value) of a count in lo..hi on every iteration."""
        r = self.rng
        mode = r.choice(["imm", "imm", "tmp", "ind"]) if not exact else r.choice(["imm", "tmp"])
        if mode == "ind":
            for lp in r.sample(self.loops, len(self.loops)):
                reg, init, step, last = lp.values("v")
                i_lo, i_hi = max(0, lo - init), hi - last
                if i_lo <= i_hi:
                    imm = r.randint(i_lo, i_hi)
                    return [], Count(imm, reg), imm + last
        v = r.randint(lo, hi)
        if mode == "tmp" or mode == "ind":
            t = self.temp()
            if r.random() < 0.3:
                pre, _, imm = self.fetch(t, v)
                return pre, Count(imm, t), v
            tv = r.randint(-3, v)
            return [Instruction("li", rd=t, imm=tv)], Count(v - tv, t), v
        return [], Count(v), v

    def sreg(self) -> int:
        return self.rng.randrange(self.ar.srf)

    def src_reg(self) -> int:
        r = self.rng
        pool = [0, *GENERAL] + [lp.a[0] for lp in self.loops] + [lp.v[0] for lp in self.loops]
        return r.choice(pool)

    # -- statements --------------------------------------------------------------------------
    def statement(self) -> list[Instruction]:
        self.temps = []
        kind = self.rng.choices(self.kinds, self.kind_weights)[0]
        return getattr(self, "s_" + kind)()

    def s_nop(self) -> list[Instruction]:
        return [Instruction("nop")]

    def s_alu(self) -> list[Instruction]:
        r = self.rng
        op = r.choice(ALU)
        rd = r.choice(GENERAL)
        if op == "li":
            return [Instruction("li", rd=rd, imm=r.choice(
                [r.randint(-8, 8), r.getrandbits(64) - (1 << 63), r.randint(0, 1 << 20)]))]
        if op in ("add", "sub"):
            return [Instruction(op, rd=rd, rs1=self.src_reg(), rs2=self.src_reg())]
        if op in ("shli", "shri"):
            imm = r.choice([0, 1, 31, 32, 63, r.randint(0, 63)])
        else:
            imm = r.choice([r.randint(-8, 8), r.getrandbits(64) - (1 << 63),
                            r.randint(-(1 << 20), 1 << 20), 0xFFFF])
        return [Instruction(op, rd=rd, rs1=self.src_reg(), imm=imm)]

    def s_lw(self) -> list[Instruction]:
        space, region = self.rng.choice(INT_SRC)
        pre, mem = self.maddr(space, region, 4, 4)
        rd = self.rng.choice([0, *GENERAL])
        return pre + [Instruction("lw", rd=rd, mem=mem)]

    def s_sw(self) -> list[Instruction]:
        space, region = self.rng.choice(INT_DST)
        pre, mem = self.maddr(space, region, 4, 4)
        return pre + [Instruction("sw", rs1=self.rng.randrange(NUM_REGS), mem=mem)]

    def _vec_n(self, lo: int = 0, hi: int = 6) -> tuple[list[Instruction], Count, int]:
        return self.count(lo, hi)

    def _vec_dst(self, nmax: int, sources: int) -> tuple[list[Instruction], list[Any]]:
        """y and ``sources`` source operands of an element-wise vector op. The ISA lets y
        overlap a source only in place (y = a) or starting before it, on every iteration: y
        is a, or a few vectors before a off the same base, or apart from it; b is y, a, or
        apart from y."""
        r = self.rng
        pre, a = self.vaddr(nmax)
        aspan = self.span
        x = r.random()
        if x < 0.3:
            y, yspan = a, aspan
        elif x < 0.45 and a.off >= 1:
            k = r.randint(1, min(a.off, nmax + 1))
            y, yspan = VAddr(a.base, a.off - k), (aspan[0] - k, aspan[1] - k)
        else:
            py, y = self.vaddr_apart(nmax, aspan)
            pre += py
            yspan = self.span
        ops = [y, a]
        if sources == 2:
            x = r.random()
            if x < 0.2:
                ops.append(y)
            elif x < 0.35:
                ops.append(a)
            else:
                pb, b = self.vaddr_apart(nmax, yspan)
                pre += pb
                ops.append(b)
        return pre, ops

    def s_vv(self) -> list[Instruction]:
        pn, n, nmax = self._vec_n()
        pre, (y, a, b) = self._vec_dst(nmax, 2)
        self.cost += nmax
        return pn + pre + [Instruction(self.rng.choice(VV), y=y, a=a, b=b, n=n)]

    def s_vs(self) -> list[Instruction]:
        pn, n, nmax = self._vec_n()
        pre, (y, a) = self._vec_dst(nmax, 1)
        self.cost += nmax
        return pn + pre + [Instruction(self.rng.choice(VS), y=y, a=a, s=self.sreg(), n=n)]

    def s_v1(self) -> list[Instruction]:
        pn, n, nmax = self._vec_n()
        pre, (y, a) = self._vec_dst(nmax, 1)
        self.cost += nmax
        return pn + pre + [Instruction(self.rng.choice(V1), y=y, a=a, n=n)]

    def s_red(self) -> list[Instruction]:
        r = self.rng
        op = r.choice(("vacc", "vaccsq", "vmax", "vargmax"))
        if op == "vargmax":
            pn, n, nmax = self.count(1, 4 * self.ar.d)
            pa, a = self.vaddr(-(-nmax // self.ar.d))
            return pn + pa + [Instruction(op, rd=r.choice(GENERAL), a=a, n=n)]
        pn, n, nmax = self._vec_n(1 if op == "vmax" else 0)
        pa, a = self.vaddr(nmax)
        self.cost += nmax
        return pn + pa + [Instruction(op, sd=self.sreg(), a=a, n=n)]

    def s_scalar(self) -> list[Instruction]:
        r = self.rng
        op = r.choice(("sli", "sli", *SCALAR2, "srecip", "srsqrt"))
        if op == "sli":
            v = r.choice([r.uniform(-4, 4), r.uniform(0.5, 2.0), 0.0, -0.0, 1e-3,
                          r.choice([float("inf"), 1e-40, 65504.0, 70000.0])])
            return [Instruction("sli", sd=self.sreg(), imm=F32.from_float(v))]
        if op in SCALAR2:
            return [Instruction(op, sd=self.sreg(), sa=self.sreg(), sb=self.sreg())]
        return [Instruction(op, sd=self.sreg(), sa=self.sreg())]

    def _stride(self) -> int:
        d = self.ar.d
        return self.rng.choice([0, 0, 2 * d, 2 * d + 2, 4 * d, 2 * self.rng.randint(1, 3 * d)])

    def s_load(self) -> list[Instruction]:
        d = self.ar.d
        pn, n, nmax = self.count(0, 6 * d)
        stride = self._stride()
        nv = max(1, -(-nmax // d))
        span = 2 * nmax if not stride else (nv - 1) * stride + 2 * d
        space, region = self.rng.choice(ELEM_SRC)
        ps, src = self.maddr(space, region, max(span, 2))
        pd, dst = self.vaddr(nv, space=True)
        self.cost += nv
        return pn + ps + pd + [Instruction("load", dst=dst, src=src, n=n, stride=stride)]

    def s_store(self) -> list[Instruction]:
        d = self.ar.d
        pn, n, nmax = self.count(0, 6 * d)
        stride = self._stride()
        nv = max(1, -(-nmax // d))
        span = 2 * nmax if not stride else (nv - 1) * stride + 2 * d
        space, region = self.rng.choice(ELEM_DST)
        pd, dst = self.maddr(space, region, max(span, 2))
        ps, src = self.vaddr(nv, space=True)
        self.cost += nv
        return pn + pd + ps + [Instruction("store", dst=dst, src=src, n=n, stride=stride)]

    def s_store_t(self) -> list[Instruction]:
        d, l = self.ar.d, self.ar.l  # noqa: E741
        pn, n, nmax = self.count(0, 4 * l)
        stride = self.rng.choice([0, 2 * d * l, 2 * d * l + 2, 2 * self.rng.randint(0, 4 * d)])
        rows = max(1, -(-nmax // l))
        span = (rows - 1) * stride + (min(max(nmax, 1), l) - 1) * 2 * d + 2
        space, region = self.rng.choice(ELEM_DST)
        pd, dst = self.maddr(space, region, span)
        ps, src = self.vaddr(max(1, -(-nmax // d)), space=True)
        self.cost += nmax
        return pn + pd + ps + [Instruction("store_t", dst=dst, src=src, n=n, stride=stride)]

    def s_copy(self) -> list[Instruction]:
        d = self.ar.d
        pn, n, nmax = self.count(0, 16 * d)
        space, region = self.rng.choice(ELEM_SRC)
        ps, src = self.maddr(space, region, max(2 * nmax, 2))
        dspace, dregion = self.rng.choice(ELEM_DST)
        pd, dst = self.maddr(dspace, dregion, max(2 * nmax, 2))
        self.cost += nmax // d + 2
        return pn + ps + pd + [Instruction("copy", dst=dst, src=src, n=n)]

    def s_matrix(self) -> list[Instruction]:
        r, ar = self.rng, self.ar
        op = r.choice(("conv1d", "maskedmm", "mm"))
        pk, kt, ktmax = self.count(1, 3)
        pn, nt, ntmax = self.count(1, 4)
        kts = r.choice([0, 0, ktmax, ktmax + 1, r.randint(1, ktmax + 2)])
        batch = r.choice([0, 1, 1, 2, 3])
        nb = batch or 1
        tiles = ntmax * ktmax if kts == 0 else (ntmax - 1) * kts + ktmax
        yv = -(-ntmax * ar.l // ar.d)
        space, region = r.choice(WEIGHT_SRC)
        pw, w = self.maddr(space, region, tiles * ar.tile, ar.tile)
        px, x = self.vaddr(nb * ktmax)
        py, y = self.vaddr_apart(nb * yv, self.span)  # the ISA: y never over x
        ops: dict[str, Any] = {"y": y, "x": x, "w": w, "kt": kt, "nt": nt, "kt_stride": kts,
                               "batch": batch}
        pre = pk + pn + pw + px + py
        if op == "conv1d":
            bspace, bregion = r.choice(ELEM_SRC)
            pb, b = self.maddr(bspace, bregion, 2 * ntmax * ar.l)
            pre += pb
            ops.update(b=b, gelu=r.random() < 0.5)
        elif op == "maskedmm":
            limits = [0] + [lp.v[0] for lp in self.loops]
            if "maskedmm-negative-limit" not in self.avoid:
                limits += GENERAL
            elif r.random() < 0.5:  # a non-negative limit, small or huge
                t = self.temp()
                pre.append(Instruction("li", rd=t, imm=r.choice(
                    [r.randint(0, 3 * ar.d), r.randint(0, (1 << 63) - 1)])))
                limits = [t]
            ops.update(limit=r.choice(limits), scale=self.sreg(),
                       max=r.randrange(ar.srf - nb + 1))
        self.cost += nb * ntmax * ktmax + 10
        return pre + [Instruction(op, **ops)]

    def s_lutmv(self) -> list[Instruction]:
        r, ar = self.rng, self.ar
        if not self.streams:
            return self.s_matrix()
        s = r.choice(self.streams)
        pn, n, _ = self.count(s.n, s.n, exact=True)
        pg, ng, _ = self.count(s.ng, s.ng, exact=True)
        batch = r.choice([0, 1, 1, 2])
        nb = batch or 1
        kv, yv = -(-s.k // ar.d), -(-s.n // ar.d)
        if s.space == "wbuf":
            pw, w = [], MemAddr("wbuf", 0, s.addr)
        else:
            t = self.temp() if r.random() < 0.3 else 0
            pw = [Instruction("li", rd=t, imm=s.addr - 32 * r.randint(0, s.addr // 32))] if t \
                else []
            w = MemAddr(s.space, t, s.addr - (pw[0].imm if t else 0))
        px, x = self.vaddr(nb * kv)
        py, y = self.vaddr_apart(nb * yv, self.span)  # the ISA: y never over x
        bias = r.random() < 0.6
        if bias:
            bspace, bregion = r.choice(ELEM_SRC)
            pb, b = self.maddr(bspace, bregion, 2 * s.n)
        else:
            pb, b = [], MemAddr(r.choice(["hbm", "ddr"]), 0, r.choice([0, 2 * r.randint(0, 99)]))
        self.cost += nb * s.n * s.ng // 2 + 10
        return pn + pg + pw + px + py + pb + [Instruction(
            "lutmv", y=y, x=x, w=w, b=b, n=n, ng=ng, gs=s.gs, q=s.q, batch=batch, bias=bias,
            gelu=r.random() < 0.4)]

    # -- structure ---------------------------------------------------------------------------
    def block(self, level: int, budget: int, countdown_ok: bool = True) -> None:
        r = self.rng
        while budget > 0 and self.cost < self.budget:
            x = r.random()
            if x < 0.14 + 0.04 * level and level < self.depth and budget >= 3 and \
                    self.mult < 16:
                used = self.loop(level, min(budget, 10))
                budget -= used
            elif x < 0.24 and budget >= 2:
                self.forward(level, r.randint(1, 3))
                budget -= 3
            elif x < 0.30 and countdown_ok and level < len(DOWN) and \
                    level not in self.in_countdown and \
                    self.mult < 8 and budget >= 3:
                self.countdown(level, r.randint(1, 4))
                budget -= 4
            else:
                before = self.cost
                self.emit(self.statement())
                self.cost = before + self.mult * (1 + self.cost - before)
                budget -= 1

    def loop(self, level: int, budget: int) -> int:
        r = self.rng
        pre: list[Instruction] = []
        mode = r.choice(["imm", "reg", "reg", "ind"])
        cnt = Count(r.choice([0, 1, 2, 3, 3] if level < 2 else [0, 1, 1, 2]))
        cmax = cnt.imm
        if mode == "reg":
            reg = LOOP_CNT[level]
            v = r.randint(-2, 3)
            imm = r.randint(max(0, -v), 3 - v) if v < 3 else 0
            pre.append(Instruction("li", rd=reg, imm=v))
            cnt, cmax = Count(imm, reg), imm + v
        elif mode == "ind" and self.loops:
            lp = self.loops[-1]
            reg, init, step, last = lp.values("v")
            if last <= 3:
                cnt, cmax = Count(0, reg), last
        a = (IND_A[level], 32 * r.randint(0, 4), r.choice([0, 32, 64, 2 * self.ar.tile]))
        v = (IND_V[level], r.randint(0, 2), r.randint(0, 2))
        pre += [Instruction("li", rd=a[0], imm=a[1]), Instruction("li", rd=v[0], imm=v[1])]
        self.emit(pre)
        at = len(self.out)
        end = self.label()
        self.emit([_Fix(lambda pc, lab, c=cnt, e=end: Instruction(
            "loop", count=c, body=lab[e] - pc))])
        self.loops.append(_Loop(level, cmax, a, v))
        old = self.mult
        self.mult *= max(cmax, 1)
        self.block(level + 1, r.randint(1, budget))
        self.emit([Instruction("addi", rd=a[0], rs1=a[0], imm=a[2]),
                   Instruction("addi", rd=v[0], rs1=v[0], imm=v[2])])
        self.place(end)
        self.emit([Instruction("endloop")])
        self.mult = old
        self.loops.pop()
        return len(self.out) - at

    def forward(self, level: int, budget: int) -> None:
        r = self.rng
        op = r.choice(BRANCH)
        skip = self.label()
        rs1, rs2 = self.src_reg(), self.src_reg()

        def make(pc: int, lab: dict[int, int], op: str = op, rs1: int = rs1, rs2: int = rs2,
                 skip: int = skip) -> Instruction:
            if op == "jmp":
                return Instruction("jmp", target=lab[skip] - pc)
            return Instruction(op, rs1=rs1, rs2=rs2, target=lab[skip] - pc)

        self.emit([_Fix(make)])
        self.block(level, budget, countdown_ok=False)
        self.place(skip)

    def countdown(self, level: int, budget: int) -> None:
        r = self.rng
        reg = DOWN[level]
        k = r.randint(1, 3)
        self.emit([Instruction("li", rd=reg, imm=k)])
        top = self.label()
        self.place(top)
        self.in_countdown.add(level)
        old = self.mult
        self.mult *= k
        self.block(level, budget)
        self.mult = old
        self.in_countdown.discard(level)
        self.emit([Instruction("addi", rd=reg, rs1=reg, imm=-1)])
        op = r.choice(["bne", "blt"])

        def make(pc: int, lab: dict[int, int], op: str = op, top: int = top) -> Instruction:
            if op == "bne":
                return Instruction("bne", rs1=reg, rs2=0, target=lab[top] - pc)
            return Instruction("blt", rs1=0, rs2=reg, target=lab[top] - pc)

        self.emit([_Fix(make)])


def random_program(core: CoreConfig, seed: int, *, size: int = 60, budget: int = 1500,
                   classes: tuple[str, ...] | None = None,
                   avoid: frozenset[str] = frozenset(KNOWN_ISSUES),
                   tight: bool | None = None) -> Program:
    """A random valid program (module doc), deterministic in ``seed``. ``classes``: limit the
    statements to these kinds (:class:`RandomGen` ``s_*`` names: alu, lw, sw, vv, vs, v1, red,
    scalar, load, store, store_t, copy, matrix, lutmv, nop). ``avoid``: the known RTL
    deviations (:data:`~.core_programs.KNOWN_ISSUES`) the program steers clear of. ``tight``
    (default: odd seeds): accesses crowd into small windows (:data:`TIGHT_BYTES`,
    :data:`TIGHT_VECTORS`)."""
    tight = seed % 2 == 1 if tight is None else tight
    fr = frame(core, seed)
    streams = fr.streams + ([fr.wbuf_stream] if fr.wbuf_stream else [])
    gen = RandomGen(core, fr.arena, fr.rng, streams, size=size, budget=budget, classes=classes,
                    avoid=avoid, tight=tight)
    gen.block(0, size)
    body = gen.finish()
    return framed(fr, f"random-{seed}", "random", body, notes={"cost": gen.cost, "tight": tight})
