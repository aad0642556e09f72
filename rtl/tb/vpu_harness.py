"""Shared test machinery for ``dfx.rtl.vpu``: VPU programs (commands with their operand
vectors), the golden expectation of a program, operand generators with corner cases, and an
Amaranth-simulator driver with random back-pressure.

No cocotb or simulator imports at module level: the cocotb testbench (``dfx.rtl.tb.vpu``) uses
the same programs and expectations, so both simulators check against one definition.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dfx.isa.golden import fp as gfp
from dfx.isa.golden import ops as gops
from dfx.isa.golden import tables as gtab
from dfx.rtl.vpu import VpuOp

VEC_OPS = {
    VpuOp.VADD: lambda a, b, s, tab: gfp.add16(a, b),
    VpuOp.VSUB: lambda a, b, s, tab: gfp.sub16(a, b),
    VpuOp.VMUL: lambda a, b, s, tab: gfp.mul16(a, b),
    VpuOp.VADDS: lambda a, b, s, tab: gfp.adds16(a, s),
    VpuOp.VSUBS: lambda a, b, s, tab: gfp.subs16(a, s),
    VpuOp.VMULS: lambda a, b, s, tab: gfp.muls16(a, s),
    VpuOp.VEXP: lambda a, b, s, tab: gtab.exp16(a, tab["exp"]),
    VpuOp.VGELU: lambda a, b, s, tab: gtab.gelu16(a, tab["gelu"]),
    VpuOp.VMOV: lambda a, b, s, tab: a.copy(),
}
BINARY = (VpuOp.VADD, VpuOp.VSUB, VpuOp.VMUL)
REDUCTIONS = (VpuOp.VACC, VpuOp.VACCSQ, VpuOp.VMAX, VpuOp.VARGMAX)
SCALAR = (VpuOp.SADD, VpuOp.SSUB, VpuOp.SMUL, VpuOp.SRECIP, VpuOp.SRSQRT)
ALL_OPS = tuple(VEC_OPS) + REDUCTIONS + SCALAR


@dataclass
class Cmd:
    """One VPU command with its operands: ``a``/``b`` are uint16 [vectors, d] bit patterns,
    ``s``/``t`` FP32 bit patterns, ``n`` the command count (elements for vargmax)."""

    op: VpuOp
    n: int
    a: np.ndarray
    b: np.ndarray | None = None
    s: int = 0
    t: int = 0
    y: list[np.ndarray] = field(default_factory=list)  # expected output vectors
    result: int | None = None  # expected scalar result

    @property
    def vectors(self) -> int:
        return len(self.a)


def expect(cmd: Cmd, d: int, tables: dict) -> Cmd:
    """Fill ``cmd.y`` / ``cmd.result`` from the golden model (in place; returns ``cmd``)."""
    op, n = cmd.op, cmd.n
    a16 = gfp.bits_f16(cmd.a) if len(cmd.a) else np.zeros((0, d), np.float16)
    s = gfp.bits_f32(np.uint32(cmd.s))
    t = gfp.bits_f32(np.uint32(cmd.t))
    cmd.y, cmd.result = [], None
    if op in VEC_OPS:
        b16 = gfp.bits_f16(cmd.b) if cmd.b is not None else None
        for v in range(len(cmd.a)):
            out = VEC_OPS[op](a16[v], None if b16 is None else b16[v], s, tables)
            cmd.y.append(np.asarray(gfp.f16_bits(np.asarray(out))).astype(np.uint16))
    elif op in (VpuOp.VACC, VpuOp.VACCSQ):
        mode = "sum" if op == VpuOp.VACC else "sumsq"
        flat = a16.reshape(-1)
        cmd.result = 0 if n == 0 else int(gfp.f32_bits(gops.accum(flat, n * d, d, mode)))
    elif op == VpuOp.VMAX:
        cmd.result = 0 if n == 0 else int(gfp.f32_bits(gops.reduce_max16(a16.reshape(-1))))
    elif op == VpuOp.VARGMAX:
        cmd.result = 0 if n == 0 else int(gops.argmax16(a16.reshape(-1), n))
    elif op == VpuOp.SADD:
        cmd.result = int(gfp.f32_bits(gfp.add32(s, t)))
    elif op == VpuOp.SSUB:
        cmd.result = int(gfp.f32_bits(gfp.sub32(s, t)))
    elif op == VpuOp.SMUL:
        cmd.result = int(gfp.f32_bits(gfp.mul32(s, t)))
    elif op == VpuOp.SRECIP:
        cmd.result = int(gfp.f32_bits(gtab.recip32(s, tables["recip"])))
    elif op == VpuOp.SRSQRT:
        cmd.result = int(gfp.f32_bits(gtab.rsqrt32(s, tables["rsqrt"])))
    else:
        raise ValueError(op)
    return cmd


# ------------------------------------------------------------------------- operand data

F16_CORNERS = [
    0x0000, 0x8000,  # zeros
    0x0001, 0x8001, 0x0002, 0x03FF, 0x83FF, 0x0200,  # subnormals
    0x0400, 0x8400, 0x0401,  # smallest normals
    0x7BFF, 0xFBFF, 0x7BFE,  # largest normals
    0x3C00, 0xBC00, 0x3C01, 0x3BFF, 0x3800, 0x4000, 0x3555, 0x5A41,
    0x1400, 0x2000, 0x5C00, 0x6000, 0x7800, 0xF800,  # products under/overflow FP16
    0x7C00, 0xFC00,  # infinities
    0x7E00, 0xFE00, 0x7E01, 0xFFFF, 0x7C01, 0x7D00, 0xFC01,  # NaNs (quiet, signalling)
]  # fmt: skip

F32_CORNERS = [
    0x00000000, 0x80000000, 0x00000001, 0x80000001, 0x007FFFFF, 0x00400000, 0x00800000,
    0x80800000, 0x7F7FFFFF, 0xFF7FFFFF, 0x3F800000, 0xBF800000, 0x3F800001, 0x3F7FFFFF,
    0x33800000, 0x40000000, 0x40800000, 0x3FFFFFFF, 0x407FFFFF, 0x47800000, 0x477FE000,
    0x477FF000, 0x477FF001, 0x33000000, 0x33000001, 0x337FFFFF, 0x38800000, 0x387FC000,
    0x387FE000, 0x7F800000, 0xFF800000, 0x7FC00000, 0xFFC00001, 0x7F800001, 0x5F000000,
    0x20000000, 0x00000003, 0x00200000, 0x7F000000, 0x0DA24260, 0x7149F2CA,
]  # fmt: skip
"""FP32 scalars: zeros, subnormals, extremes, FP16 rounding boundaries (65504 .. 65520, 2^-25
ties), powers of two, odd/even exponents (rsqrt), specials."""


def table_edges16(tab: gtab.PwlTable) -> list[int]:
    """FP16 inputs at and around a table's edges: lo, hi, just inside/outside, breakpoints."""
    out = []
    for v in (tab.lo, tab.hi, tab.lo + tab.h, tab.hi - tab.h, 0.0):
        x = np.float16(v)
        b = int(gfp.f16_bits(x))
        out += [b, (b + 1) & 0xFFFF, (b - 1) & 0xFFFF]
    return sorted(set(out))


def random_f16(rng: np.random.Generator, shape, kind: str = "mixed") -> np.ndarray:
    """FP16 bit patterns: ``raw`` (any pattern), ``normal`` (moderate magnitudes, both signs),
    ``mixed`` (half raw, half moderate: NaN/inf/subnormals occur)."""
    raw = rng.integers(0, 1 << 16, shape, dtype=np.uint32).astype(np.uint16)
    moderate = gfp.f16_bits((rng.standard_normal(shape) * 4).astype(np.float16))
    if kind == "raw":
        return raw
    if kind == "normal":
        return np.asarray(moderate, dtype=np.uint16)
    pick = rng.integers(0, 2, shape).astype(bool)
    return np.where(pick, raw, moderate).astype(np.uint16)


def vectors_with(rng, vectors: int, d: int, corners: list[int], kind="mixed") -> np.ndarray:
    """``vectors`` x d FP16 patterns: ``corners`` first (wrapping lanes), then random."""
    flat = random_f16(rng, vectors * d, kind)
    c = np.asarray(corners, dtype=np.uint16)[: vectors * d]
    flat[: len(c)] = c
    return flat.reshape(vectors, d)


def random_program(rng: np.random.Generator, d: int, tables: dict, count: int,
                   ops=ALL_OPS, max_n: int = 4) -> list[Cmd]:  # fmt: skip
    """``count`` random commands (random op from ``ops``, n in 0..max_n, random operands)."""
    prog = []
    for _ in range(count):
        op = ops[rng.integers(len(ops))]
        n = int(rng.integers(0, max_n + 1))
        if op == VpuOp.VARGMAX:
            n = int(rng.integers(0, max_n * d + 1))
        prog.append(make_cmd(rng, op, n, d, tables))
    return prog


def make_cmd(rng, op: VpuOp, n: int, d: int, tables: dict, a=None, b=None, s=None, t=None):
    nvec = -(-n // d) if op == VpuOp.VARGMAX else (0 if op in SCALAR else n)
    edges = table_edges16(tables["exp"]) + table_edges16(tables["gelu"])
    if a is None:
        corner = F16_CORNERS + edges if rng.integers(2) else []
        if op in (VpuOp.VACC, VpuOp.VACCSQ, VpuOp.VMAX, VpuOp.VARGMAX) and rng.integers(2):
            corner = []  # mostly-finite data, so sums and maxima are not all NaN
            a = vectors_with(rng, nvec, d, corner, "normal")
        else:
            a = vectors_with(rng, nvec, d, list(rng.permutation(corner)), "mixed")
    if b is None and op in BINARY:
        b = vectors_with(rng, nvec, d, list(rng.permutation(F16_CORNERS)), "mixed")
    f32 = lambda: int(  # noqa: E731
        F32_CORNERS[rng.integers(len(F32_CORNERS))]
        if rng.integers(3) == 0
        else gfp.f32_bits(np.float32(rng.standard_normal() * 10.0 ** rng.integers(-5, 6)))
    )
    s = f32() if s is None else s
    t = f32() if t is None else t
    a = np.asarray(a, np.uint16).reshape(-1, d)
    assert len(a) == nvec, f"{op.name} n={n}: {len(a)} operand vectors, {nvec} needed"
    if b is not None:
        b = np.asarray(b, np.uint16).reshape(-1, d)
    return expect(Cmd(op, n, a, b, s, t), d, tables)


# ------------------------------------------------------------------------ programs

# corner operands for pairwise tests, a subset of F16_CORNERS: every class once
PAIR_CORNERS = [0x0000, 0x8000, 0x0001, 0x83FF, 0x0400, 0x7BFF, 0xFBFF, 0x3C00, 0xBC01,
                0x1400, 0x6000, 0x7C00, 0xFC00, 0x7E01, 0xFD00, 0x3555]  # fmt: skip
TARGETED = {
    # (a, b) pairs with a known rounding story
    VpuOp.VADD: [
        (0x3C00, 0x1000),  # 1 + 2^-11: tie, to even (down) in FP16
        (0x3C01, 0x1000),  # tie, to even (up)
        (0x7BFF, 0x4C00),  # 65504 + 16 = 65520: rounds to inf
        (0x7BFF, 0x4BFF),  # 65504 + 15.99: stays finite
        (0x0001, 0x8002),  # subnormal result
        (0x3C00, 0xBC00),  # x + (-x) = +0
        (0x8000, 0x8000),  # -0 + -0 = -0
        (0x7C00, 0xFC00),  # inf - inf = NaN
    ],
    VpuOp.VSUB: [(0x3C00, 0x3C00), (0x8000, 0x0000), (0x0000, 0x0000), (0x7C00, 0x7C00),
                 (0x0400, 0x03FF), (0xFBFF, 0x4C00), (0x3C00, 0x9000), (0x0001, 0x0001)],
    VpuOp.VMUL: [(0x3C01, 0x3C01), (0x0001, 0x3800), (0x0001, 0x3C00), (0x7BFF, 0x4000),
                 (0x5BFF, 0x5BFF), (0x1400, 0x1400), (0x0000, 0x7C00), (0x8000, 0x3C00)],
}  # fmt: skip
SCALARS = [0x00000000, 0x80000000, 0x00000001, 0x3F800000, 0xBF800000, 0x33000000,
           0x33000001, 0x387FC000, 0x477FF000, 0x477FF001, 0x7F7FFFFF, 0x7F800000,
           0xFF800000, 0xFFC00001]  # fmt: skip
"""FP32 scalars for vadds/vsubs/vmuls: zeros, FP16 rounding ties and boundaries, specials."""


def _pairs(values):
    a = [x for x in values for _ in values]
    b = [y for _ in values for y in values]
    return a, b


def elementwise_program(rng, tables: dict, d: int, full: bool = False) -> list:
    """Every element-wise op on corner operands (pairs of corners, corner x scalar, table
    edges) and random vectors; ``full``: all of F16_CORNERS x F16_CORNERS, all F32_CORNERS."""
    prog = []
    for op in BINARY:
        a, b = _pairs(F16_CORNERS if full else PAIR_CORNERS)
        ta, tb = zip(*TARGETED[op], strict=True)
        a, b = list(ta) + a, list(tb) + b
        n = -(-len(a) // d)
        pad = n * d - len(a)
        a += [0x3C00] * pad
        b += [0x3C00] * pad
        prog.append(make_cmd(rng, op, n, d, tables, a=a, b=b))
        prog.append(make_cmd(rng, op, 3, d, tables))  # random operands
    for op in (VpuOp.VADDS, VpuOp.VSUBS, VpuOp.VMULS):
        for s in F32_CORNERS if full else SCALARS:
            a = vectors_with(rng, 1, d, list(rng.permutation(F16_CORNERS)[:d]))
            prog.append(make_cmd(rng, op, 1, d, tables, a=a, s=s))
        prog.append(make_cmd(rng, op, 3, d, tables))
    for op, fn in ((VpuOp.VEXP, "exp"), (VpuOp.VGELU, "gelu")):
        edges = table_edges16(tables[fn]) + F16_CORNERS
        n = -(-len(edges) // d) + 2
        prog.append(make_cmd(rng, op, n, d, tables, a=vectors_with(rng, n, d, edges)))
    corners = F16_CORNERS
    n = -(-len(corners) // d)
    prog.append(make_cmd(rng, VpuOp.VMOV, n, d, tables, a=vectors_with(rng, n, d, corners)))
    return prog


def reduction_program(rng, tables: dict, d: int) -> list:
    """vacc/vaccsq/vmax/vargmax over n = 0.. vectors with signed zeros, infinities, NaNs,
    subnormals, ties and elements beyond n; for vacc/vaccsq also exact cancellation
    (``[65504, 2^-24, -65504, 2^-24]`` gives 2^-23), max normals, lone +inf / -inf / NaN and
    +inf with -inf (docs/numerics.md §5)."""
    prog = []

    def normal(n):
        return vectors_with(rng, n, d, [], "normal")

    for op in (VpuOp.VACC, VpuOp.VACCSQ):
        for n in (0, 1, 2, 5):
            prog.append(make_cmd(rng, op, n, d, tables, a=normal(n)))
        big = np.full((2, d), 0x7BFF, np.uint16)  # sums of 65504s: finite, no overflow
        prog.append(make_cmd(rng, op, 2, d, tables, a=big))
        big = np.full((5, d), 0xFBFF, np.uint16)  # -65504s: squares up to 2^32 each
        big[4, -1] = 0x8001
        prog.append(make_cmd(rng, op, 5, d, tables, a=big))
        cancel = np.resize([0x7BFF, 0x0001, 0xFBFF, 0x0001], (-(-4 // d), d))
        prog.append(make_cmd(rng, op, len(cancel), d, tables, a=cancel.astype(np.uint16)))
        for special in (0x7C00, 0xFC00, 0x7E01):  # a lone +inf / -inf / NaN among normals
            sp = normal(2)
            sp[1, d - 1] = special
            prog.append(make_cmd(rng, op, 2, d, tables, a=sp))
        odd = normal(3)
        odd[1, 3 % d] = 0x7C00  # +inf
        odd[2, 5 % d] = 0xFC00  # -inf: inf - inf = NaN
        prog.append(make_cmd(rng, op, 3, d, tables, a=odd))
        sub = np.resize([0x0001, 0x8001, 0x03FF, 0x8000, 0x0000, 0x8000, 0x0002, 0x8003], (2, d))
        prog.append(make_cmd(rng, op, 2, d, tables, a=sub.astype(np.uint16)))
        prog.append(make_cmd(rng, op, 1, d, tables, a=np.full((1, d), 0x8000, np.uint16)))
    for op in (VpuOp.VMAX, VpuOp.VARGMAX):
        unit = d if op == VpuOp.VARGMAX else 1
        cases = [
            np.full((1, d), 0x8000),  # all -0
            np.array([[0x8000, 0x0000] * (d // 2)]),  # max(-0, +0) = +0, first +0
            np.full((2, d), 0xFC00),  # all -inf
            np.array([[0xFBFF] * d, [0xFBFF] * (d - 1) + [0x7E01]]),  # NaN last
            np.array([[0x3C00, 0x7D00] + [0x4000] * (d - 2), [0x7E00] * d]),  # first NaN
            np.array([[0x4000] * d, [0x4000] * d]),  # ties: the first index
            np.array([[0x0001] + [0x8001] * (d - 1)]),  # subnormals
        ]
        for a in cases:
            prog.append(make_cmd(rng, op, len(a) * unit, d, tables, a=a.astype(np.uint16)))
        for n in (1, 3, 9, d * 2 - 1):
            nv = -(-n // d) if op == VpuOp.VARGMAX else n
            a = normal(nv)
            if op == VpuOp.VARGMAX:
                a.reshape(-1)[n:] = 0x7C00  # beyond n: ignored, even when larger
            prog.append(make_cmd(rng, op, n, d, tables, a=a))
        prog.append(make_cmd(rng, op, 0, d, tables, a=normal(0)))
    return prog


def scalar_program(rng, tables: dict, d: int) -> list:
    """sadd/ssub/smul on corner pairs; srecip/srsqrt on F32_CORNERS and random values."""
    prog = []
    pairs = [
        (0x3F800000, 0x33800000), (0x3F800001, 0x33800000), (0x7F7FFFFF, 0x73000000),
        (0x7F800000, 0xFF800000), (0x00000001, 0x80000002), (0x3F800000, 0xBF800000),
        (0x80000000, 0x80000000), (0x40490FDB, 0xFFC12345), (0x007FFFFF, 0x00000001),
        (0x0DA24260, 0x7149F2CA), (0x00800000, 0x3F000000), (0x7F800000, 0x00000000),
    ]  # fmt: skip
    for op in (VpuOp.SADD, VpuOp.SSUB, VpuOp.SMUL):
        for s, t in pairs:
            prog.append(make_cmd(rng, op, 0, d, tables, s=s, t=t))
    for op in (VpuOp.SRECIP, VpuOp.SRSQRT):
        for s in F32_CORNERS:
            prog.append(make_cmd(rng, op, 0, d, tables, s=s))
        for s in gfp.f32_bits(rng.standard_normal(6).astype(np.float32) * 100):
            prog.append(make_cmd(rng, op, 0, d, tables, s=int(s)))
    return prog


# ------------------------------------------------------------------------------ packing


def pack16(vec) -> int:
    return sum(int(v) << (16 * i) for i, v in enumerate(vec))


def unpack16(value: int, d: int) -> np.ndarray:
    return np.array([(value >> (16 * i)) & 0xFFFF for i in range(d)], dtype=np.uint16)


def pack_cmd(op: VpuOp, n: int, s: int, t: int) -> int:
    """The :data:`dfx.rtl.vpu.Command` bit layout: op (8), n (24), s (32), t (32)."""
    return int(op.value) | (n << 8) | (s << 32) | (t << 64)


def streams(prog: list[Cmd]):
    """(commands, a vectors, b vectors, expected y vectors, expected results) of a program."""
    cmds = [pack_cmd(c.op, c.n, c.s, c.t) for c in prog]
    a = [pack16(v) for c in prog for v in c.a]
    b = [pack16(v) for c in prog if c.b is not None for v in c.b]
    y = [pack16(v) for c in prog for v in c.y]
    res = [c.result for c in prog if c.result is not None]
    return cmds, a, b, y, res


# -------------------------------------------------------------------- Amaranth driver


@dataclass
class Phase:
    """A program and the back-pressure it runs under (probabilities per cycle and stream)."""

    prog: list[Cmd]
    p_valid: float = 1.0
    p_ready: float = 1.0
    seed: int = 0
    # filled in by the run: every output transfer, and the cycle of every a / y transfer
    y: list[int] = field(default_factory=list)
    results: list[int] = field(default_factory=list)
    a_cycles: list[int] = field(default_factory=list)
    y_cycles: list[int] = field(default_factory=list)
    r_cycles: list[int] = field(default_factory=list)
    cycles: int = 0


def run_amaranth(dut, phases: list[Phase], *, max_cycles: int = 100_000) -> list[Phase]:
    """Run the phases one after the other through ``dut`` (a :class:`dfx.rtl.vpu.Vpu`) in one
    Amaranth simulation (building the simulator is the expensive part).

    Inputs are offered with probability ``p_valid`` per cycle (per stream), ``y``/``result``
    are ready with probability ``p_ready``. A phase ends when all its outputs were taken; then
    8 idle cycles must produce nothing (no duplication).
    """
    from amaranth.sim import Simulator

    async def run_phase(ctx, ph: Phase, start: int) -> int:
        cmds, a, b, y_exp, r_exp = streams(ph.prog)
        rng = np.random.default_rng(ph.seed)
        ia = ib = ic = 0
        cycle = start
        while len(ph.y) < len(y_exp) or len(ph.results) < len(r_exp) or ic < len(cmds):
            cycle += 1
            if cycle - start > max_cycles:
                raise AssertionError(
                    f"timeout after {max_cycles} cycles: {ic}/{len(cmds)} commands, "
                    f"{len(ph.y)}/{len(y_exp)} vectors, {len(ph.results)}/{len(r_exp)} results"
                )
            cv = ic < len(cmds) and rng.random() < ph.p_valid
            av = ia < len(a) and rng.random() < ph.p_valid
            bv = ib < len(b) and rng.random() < ph.p_valid
            ctx.set(dut.cmd.valid, cv)
            ctx.set(dut.a.valid, av)
            ctx.set(dut.b.valid, bv)
            if cv:
                ctx.set(dut.cmd.payload.as_value(), cmds[ic])
            if av:
                ctx.set(dut.a.payload.as_value(), a[ia])
            if bv:
                ctx.set(dut.b.payload.as_value(), b[ib])
            ctx.set(dut.y.ready, rng.random() < ph.p_ready)
            ctx.set(dut.result.ready, rng.random() < ph.p_ready)
            *_, cr, ar, br, yv, yr, yp, rv, rr, rp = await ctx.tick().sample(
                dut.cmd.ready,
                dut.a.ready,
                dut.b.ready,
                dut.y.valid,
                dut.y.ready,
                dut.y.payload.as_value(),
                dut.result.valid,
                dut.result.ready,
                dut.result.payload,
            )
            ic += bool(cv and cr)
            if av and ar:
                ia += 1
                ph.a_cycles.append(cycle)
            ib += bool(bv and br)
            if yv and yr:
                ph.y.append(yp)
                ph.y_cycles.append(cycle)
            if rv and rr:
                ph.results.append(rp)
                ph.r_cycles.append(cycle)
        # idle: nothing more may come out
        for port, value in ((dut.cmd.valid, 0), (dut.a.valid, 0), (dut.b.valid, 0)):
            ctx.set(port, value)
        ctx.set(dut.y.ready, 1)
        ctx.set(dut.result.ready, 1)
        for _ in range(8):
            *_, yv, rv = await ctx.tick().sample(dut.y.valid, dut.result.valid)
            assert not yv and not rv, "output after the program ended (duplication)"
        assert ia == len(a) and ib == len(b), f"consumed {ia}/{len(a)} a, {ib}/{len(b)} b"
        ph.cycles = cycle - start
        return cycle + 8

    async def tb(ctx):
        cycle = 0
        for ph in phases:
            cycle = await run_phase(ctx, ph, cycle)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    return phases


def per_command(ph: Phase) -> list[tuple[Cmd, list[int], int | None, list[int], list[int]]]:
    """Split a run phase's outputs by command: ``(cmd, y, result, a_cycles, out_cycles)``."""
    out = []
    iy = ir = ia = 0
    for c in ph.prog:
        ny = len(c.y)
        y = ph.y[iy : iy + ny]
        yc = ph.y_cycles[iy : iy + ny]
        iy += ny
        r = None
        rc: list[int] = []
        if c.result is not None:
            r = ph.results[ir] if ir < len(ph.results) else None
            rc = ph.r_cycles[ir : ir + 1]
            ir += 1
        ac = ph.a_cycles[ia : ia + len(c.a)]
        ia += len(c.a)
        out.append((c, y, r, ac, yc if c.result is None else rc))
    return out


def mismatches(rows, d: int) -> list[str]:
    """Describe every output of ``per_command`` rows that differs from the expectation."""
    bad = []
    for c, y, r, _, _ in rows:
        if len(y) != len(c.y):
            bad.append(f"{c.op.name} n={c.n}: {len(y)} vectors out, {len(c.y)} expected")
            continue
        for v, (g, e) in enumerate(zip(y, c.y, strict=True)):
            gv, ev = unpack16(g, d), e
            for i in np.nonzero(gv != ev)[0][:4]:
                operand = f" b={c.b[v][i]:#06x}" if c.b is not None else f" s={c.s:#010x}"
                bad.append(
                    f"{c.op.name} vector {v} lane {i}: a={c.a[v][i]:#06x}{operand} "
                    f"got {gv[i]:#06x} want {ev[i]:#06x}"
                )
        if c.result is not None and r != c.result:
            got = "nothing" if r is None else f"{r:#x}"
            bad.append(
                f"{c.op.name} n={c.n} s={c.s:#010x} t={c.t:#010x}: got {got} want {c.result:#x}"
            )
    return bad


def config_json(vpu: object) -> str:
    """The ``VPU_CONFIG`` environment value the cocotb testbench reads (dfx.rtl.tb.vpu)."""
    import json

    tables = {fn: [t.lo, t.hi, t.points] for fn, t in vpu.tables.items()}  # type: ignore[attr-defined]
    latencies = {op.name: lat for op, lat in vpu.latencies.items()}  # type: ignore[attr-defined]
    acc = vpu.result_latency(VpuOp.VACC)  # type: ignore[attr-defined]
    return json.dumps({"d": vpu.d, "tables": tables, "latencies": latencies,  # type: ignore[attr-defined]
                       "acc_latency": acc})
