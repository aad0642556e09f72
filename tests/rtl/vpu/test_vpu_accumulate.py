"""``ExactAccumulate`` (the vacc/vaccsq path of SFU_V) and the shared fixed-point helpers on
Amaranth's simulator, bit-exact against the golden ``accum`` (docs/numerics.md §5): exact
cancellation, signed zeros, subnormals, max normals, inf/NaN combinations, n not a multiple
of d (zero padding), back-to-back sums at one vector per cycle, stalls, and the latency."""

import numpy as np
import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from dfx.isa.golden import fp as gfp
from dfx.isa.golden import ops as gops
from dfx.rtl.arith.fixed import SQ_BITS, fp32_to_fixed48, fp32_to_fixed48_ones, limb_widths
from dfx.rtl.vpu.accumulate import ExactAccumulate, acc_bits

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")

H = np.float16


def prods(x16: np.ndarray, mode: str) -> np.ndarray:
    """What the VFU multiplier bank hands over: f32(a), or the exact a*a (uint32 patterns)."""
    f = x16.astype(np.float32)
    if mode == "sumsq":
        f = f * f  # exact: 22-bit significands
    return f.view(np.uint32)


def run(dut, sums, *, stall=None, seed=0):
    """Feed each sum's vectors (``(x16[nv, d], mode)``) back to back, one per cycle; random
    en-low cycles when ``stall``; return (results, cycle of each last vector, cycle of each
    result) counted in en-high cycles."""
    rng = np.random.default_rng(seed)
    feed = []
    for x, mode in sums:
        p = prods(x, mode)
        for v in range(len(x)):
            feed.append((p[v], v == 0, v == len(x) - 1))
    out, last_at, out_at = [], [], []

    async def tb(ctx):
        i = cyc = 0
        while len(out) < len(sums):
            en = 1 if stall is None else int(rng.random() > stall)
            ctx.set(dut.en, en)
            if i < len(feed):
                p, first, last = feed[i]
                for lane in range(dut._d):
                    ctx.set(dut.prod[lane], int(p[lane]))
                ctx.set(dut.valid, 1)
                ctx.set(dut.first, int(first))
                ctx.set(dut.last, int(last))
            else:
                ctx.set(dut.valid, 0)
            if en and ctx.get(dut.valid_out):
                out.append(ctx.get(dut.result))
                out_at.append(cyc)
            if en:
                if i < len(feed):
                    if feed[i][2]:
                        last_at.append(cyc)
                    i += 1
                cyc += 1
            await ctx.tick()
            assert cyc < 10_000

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    return out, last_at, out_at


def want(x, mode, d, n=None):
    flat = x.reshape(-1)
    return int(gfp.f32_bits(gops.accum(flat, len(flat) if n is None else n, d, mode)))


def pad(vals, d):
    v = np.asarray(vals, dtype=H)
    nv = -(-len(v) // d)
    out = np.zeros(nv * d, dtype=H)
    out[: len(v)] = v
    return out.reshape(nv, d)


def corner_sums(d: int, rng) -> list:
    inf, nan = np.inf, np.nan
    cases = [
        [65504, 2.0**-24, -65504, 2.0**-24],  # exact cancellation: 2^-23
        [2.0**-24, 65504, 2.0**-24, -65504],
        [-0.0, -0.0, -0.0],  # +0
        [0.0, -0.0],
        [2.0**-24, -(2.0**-24)] * 3,  # exact zero: +0
        [6.1e-5, 2.0**-24, -(2.0**-23), 1023 * 2.0**-24],  # subnormals, smallest normal
        [65504] * (3 * d),  # max normals
        [-65504] * (2 * d) + [-(2.0**-24)],
        [1, inf, 2, 3],
        [1, -inf, 2],
        [inf, -inf],  # NaN in a sum, +inf in a sum of squares
        [inf, 5, inf],
        [nan, 1, 2],
        [1, 2, -inf, nan],
        [2.0**14, 2.0**14, -(2.0**15), 2.0**-20],
        list(rng.standard_normal(5 * d + 3) * 100),  # n not a multiple of d
        list(rng.standard_normal(2 * d) * 1e-5),
        [1.0],
    ]
    return [pad(c, d) for c in cases]


def random_sums(d: int, rng, count: int) -> list:
    """Wide magnitudes with both signs: carries and borrows through every limb."""
    out = []
    for _ in range(count):
        nv = int(rng.integers(1, 5))
        bits = rng.integers(0, 1 << 16, size=(nv, d), dtype=np.uint16)
        bits[(bits & 0x7C00) == 0x7C00] &= 0xBFFF  # no inf/NaN
        out.append(bits.view(H))
    return out


CONFIGS = [
    # d, tree, add, convert
    (4, 0, 1, 0),
    (4, 2, 3, 2),
    (8, 1, 2, 1),
    (1, 1, 4, 3),
]


@pytest.mark.parametrize(("d", "tl", "al", "cl"), CONFIGS, ids=lambda v: str(v))
def test_exact_accumulate(d, tl, al, cl):
    rng = np.random.default_rng(d * 100 + tl * 10 + al)
    dut = ExactAccumulate(d, count_bits=24, tree_latency=tl, add_latency=al,
                          convert_latency=cl)
    assert dut.latency == tl + al + cl
    assert dut.acc_bits == acc_bits(d, 24) and sum(dut.limbs) == dut.acc_bits
    sums = []
    for x in corner_sums(d, rng) + random_sums(d, rng, 12):
        for mode in ("sum", "sumsq"):
            sums.append((x, mode))
    got, last_at, out_at = run(dut, sums)
    exp = [want(x, mode, d) for x, mode in sums]
    bad = [(i, mode, hex(g), hex(e)) for i, ((_, mode), g, e) in
           enumerate(zip(sums, got, exp, strict=True)) if g != e]
    assert not bad, bad[:10]
    # back to back, one vector per cycle: each result exactly `latency` after its last vector
    assert [o - la for la, o in zip(last_at, out_at, strict=True)] == [dut.latency] * len(sums)
    # under random stalls the same results
    got2, _, _ = run(dut, sums[:20], stall=0.3, seed=d)
    assert got2 == exp[:20]


def test_padding_is_golden_n():
    """The RTL sums whole vectors; elements beyond n are zero-padded by whoever fills the
    vector registers, which is what golden ``accum(x, n, d)`` reads."""
    d = 8
    rng = np.random.default_rng(5)
    x = (rng.standard_normal(21) * 30).astype(H)
    dut = ExactAccumulate(d, count_bits=24, tree_latency=1, add_latency=2, convert_latency=1)
    sums = [(pad(x, d), m) for m in ("sum", "sumsq")]
    got, _, _ = run(dut, sums)
    full = np.concatenate([x, rng.standard_normal(3).astype(H)])  # garbage beyond n
    assert got == [int(gfp.f32_bits(gops.accum(full, 21, d, m))) for m in ("sum", "sumsq")]


def test_widths():
    assert SQ_BITS == 81
    assert acc_bits(64, 24) == 111 and acc_bits(8, 24) == 108
    assert limb_widths(111, 2) == [56, 55] and limb_widths(10, 1) == [10]
    with pytest.raises(ValueError, match="too narrow"):
        limb_widths(10, 6)
    with pytest.raises(ValueError, match="acc_add_latency must be an integer >= 1, not 0"):
        ExactAccumulate(4, count_bits=24, tree_latency=1, add_latency=0, convert_latency=1)
    with pytest.raises(ValueError, match="d must be a power of two"):
        ExactAccumulate(3, count_bits=24, tree_latency=1, add_latency=1, convert_latency=1)


def test_fp32_to_fixed48_every_fp16_and_square():
    """Every FP16 value and every square of one, exactly, in units of 2^-48; specials."""
    m = Module()
    x = Signal(32)
    v, nan, pinf, ninf = fp32_to_fixed48(m, x, "x")
    ones, neg, *_ = fp32_to_fixed48_ones(m, x, "y")
    outs = [Signal.like(v), Signal(), Signal(), Signal()]
    ones_plus = Signal.like(v)  # the one's complement form plus its +1 bit: the same value
    m.d.comb += [o.eq(s) for o, s in zip(outs, (v, nan, pinf, ninf), strict=True)]
    m.d.comb += ones_plus.eq(ones + neg)
    pats = np.arange(0, 1 << 16, 3, dtype=np.uint16).view(H)
    fin = pats[np.isfinite(pats)]
    f = fin.astype(np.float32)
    cases = [(int(b), int(fl * 2.0**48)) for b, fl in zip(f.view(np.uint32), f.astype(float),
                                                           strict=True)]
    sq = f * f
    cases += [(int(b), int(s * 2.0**48)) for b, s in
              zip(sq.view(np.uint32), sq.astype(float), strict=True)]
    cases += [(0x3F800000, 1 << 48), (0xC77FE000, -(65504 << 48))]

    async def tb(ctx):
        for b, val in cases:
            ctx.set(x, b)
            assert ctx.get(outs[0]) == val, hex(b)
            assert ctx.get(ones_plus) == val, hex(b)
            assert (ctx.get(outs[1]), ctx.get(outs[2]), ctx.get(outs[3])) == (0, 0, 0)
        for b, flags in ((0x7F800000, (0, 1, 0)), (0xFF800000, (0, 0, 1)),
                         (0x7FC00000, (1, 0, 0)), (0xFFC00001, (1, 0, 0))):
            ctx.set(x, b)
            assert ctx.get(outs[0]) == 0 and ctx.get(ones_plus) == 0
            assert (ctx.get(outs[1]), ctx.get(outs[2]), ctx.get(outs[3])) == flags

    sim = Simulator(m)
    sim.add_testbench(tb)
    sim.run()
