"""ScalarTable (SFU_V recip / rsqrt): bit-exact against the golden ``recip32`` / ``rsqrt32`` on
specials, subnormal inputs, odd/even exponents, mantissas at and around table breakpoints,
results that underflow to subnormals or overflow to inf, random patterns; with the tiny and
the dfx-u280 tables; a random clock enable (stall) keeps results in order and exact."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from dfx.isa.config import load_core
from dfx.isa.golden import fp as gfp
from dfx.isa.golden import tables as gtab
from dfx.rtl.tb.vpu_harness import F32_CORNERS
from dfx.rtl.vpu import ScalarTable

GOLDEN = {"recip": gtab.recip32, "rsqrt": gtab.rsqrt32}


def run(dut: ScalarTable, xs, en=None) -> tuple[list[int], list[int]]:
    """Stream ``xs`` one per en-high cycle; return (results, the en-cycle index of each)."""
    xs = [int(x) for x in xs]
    rng_en = list(en) if en is not None else []
    out: list[int] = []
    when: list[int] = []

    async def tb(ctx):
        i = t = en_cycles = 0
        while len(out) < len(xs):
            t += 1
            assert t < 10 * len(xs) + 100, "no progress"
            e = int(rng_en[t % len(rng_en)]) if rng_en else 1
            ctx.set(dut.en, e)
            ctx.set(dut.valid_in, i < len(xs))
            if i < len(xs):
                ctx.set(dut.a, xs[i])
            *_, r, v = await ctx.tick().sample(dut.result, dut.valid_out)
            if e:
                if v:
                    out.append(r)
                    when.append(en_cycles)
                i += i < len(xs)
                en_cycles += 1

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    return out, when


def inputs(tab: gtab.PwlTable, fn: str, rng) -> np.ndarray:
    u32 = np.uint32
    xs = [np.array(F32_CORNERS, dtype=u32)]
    # subnormal inputs: every leading-zero count, both signs
    sub = np.array([1 << k for k in range(23)] + [(1 << k) | 1 for k in range(1, 23)], u32)
    xs += [sub, sub | u32(0x80000000), rng.integers(1, 1 << 23, 40, dtype=u32)]
    # mantissas at, just below and just above every 8th breakpoint, odd and even exponents
    bp = tab.x[(tab.x >= 1.0) & (tab.x < (2.0 if fn == "recip" else 4.0))][::8]
    bits = gfp.f32_bits(bp.astype(np.float32)).astype(np.int64)
    around = np.concatenate([bits, bits - 1, bits + 1]).astype(u32)
    around = around[(around >= 0x3F800000) & (around < 0x40800000)]
    exps = rng.integers(-126, 127, around.shape[0])
    scaled = gfp.f32_bits(
        np.ldexp(gfp.bits_f32(around).astype(np.float64), exps).astype(np.float32)
    )
    xs += [around, np.asarray(scaled, u32)]
    # results near the subnormal / overflow boundaries: |x| near 2^126 .. 2^128 and 2^-126
    big = (rng.integers(250, 255, 40).astype(u32) << u32(23)) | rng.integers(
        0, 1 << 23, 40, dtype=u32
    )
    xs += [big, big | u32(0x80000000)]
    # raw random patterns (every class) and moderate values
    xs += [rng.integers(0, 1 << 32, 300, dtype=np.uint64).astype(u32)]
    mod = (rng.standard_normal(100) * 10.0 ** rng.integers(-8, 9, 100)).astype(np.float32)
    xs += [np.asarray(gfp.f32_bits(mod), u32)]
    return np.concatenate(xs)


@pytest.mark.parametrize("fn", ["recip", "rsqrt"])
@pytest.mark.parametrize("core", ["tiny", "dfx-u280"])
def test_bit_exact(fn, core):
    spec = getattr(load_core(core).tables, fn)
    dut = ScalarTable(fn, spec, mul_latency=1, add_latency=1)
    xs = inputs(dut.table, fn, np.random.default_rng(7))
    got, _ = run(dut, xs)
    want = np.asarray(gfp.f32_bits(GOLDEN[fn](gfp.bits_f32(xs), dut.table)))
    bad = [
        f"x={x:#010x}: got {g:#010x} want {w:#010x}"
        for x, g, w in zip(xs, got, want, strict=True)
        if g != w
    ]
    assert not bad, f"{len(bad)} of {len(xs)} wrong:\n" + "\n".join(bad[:20])


def test_reference_covers_the_specials():
    """The golden rules the RTL must reproduce, on the inputs used above."""
    b = lambda v: int(gfp.f32_bits(np.float32(v)))  # noqa: E731
    tab = gtab.default_table("recip")
    r = lambda x: int(gfp.f32_bits(gtab.recip32(gfp.bits_f32(np.uint32(x)), tab)))  # noqa: E731
    assert r(0x00000000) == 0x7F800000 and r(0x80000000) == 0xFF800000
    assert r(0x7F800000) == 0 and r(0xFF800000) == 0x80000000
    assert r(0x7FC12345) == 0x7FC00000
    assert r(0x00000001) == 0x7F800000  # 1 / 2^-149 overflows
    assert r(b(2.0**127)) & 0x7F800000 == 0  # 1 / 2^127 is subnormal
    tq = gtab.default_table("rsqrt")
    q = lambda x: int(gfp.f32_bits(gtab.rsqrt32(gfp.bits_f32(np.uint32(x)), tq)))  # noqa: E731
    assert q(0x00000000) == 0x7F800000 and q(0x80000000) == 0xFF800000
    assert q(0xBF800000) == 0x7FC00000 and q(0x80000001) == 0x7FC00000
    assert q(0xFF800000) == 0x7FC00000 and q(0x7F800000) == 0
    assert set(F32_CORNERS) >= {0, 0x80000000, 0x7F800000, 0xFF800000, 0x00000001}


@pytest.mark.parametrize("fn", ["recip", "rsqrt"])
def test_latency_and_stall(fn):
    dut = ScalarTable(fn, getattr(load_core("tiny").tables, fn), mul_latency=2, add_latency=3)
    assert dut.latency == 7
    xs = np.array(F32_CORNERS[:24], dtype=np.uint32)
    got, when = run(dut, xs)
    assert when == [i + dut.latency for i in range(len(xs))]
    rng = np.random.default_rng(3)
    got2, when2 = run(dut, xs, en=rng.integers(0, 2, 37))
    assert got2 == got and when2 == when
    want = np.asarray(gfp.f32_bits(GOLDEN[fn](gfp.bits_f32(xs), dut.table)))
    assert got == [int(w) for w in want]
