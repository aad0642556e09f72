"""The LUT-GEMM table builder and fixed-point pieces on Amaranth's simulator: every table entry
against ``sum_j ±x_j`` in exact integers (both table forms, several mu / keys / latencies, a
random clock enable), the slice sum and inf/NaN flag; FP16 -> fixed point and the integer ->
FP32 converter against numpy (group-sum width, units of 2^-24) and exact integer rounding (the
scale stage's wide accumulator, units of 2^-48)."""

from __future__ import annotations

import random

import numpy as np
import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator
from lutgemm_harness import rne32

from dfx.isa.config import load_core
from dfx.rtl.lutgemm import IntToFp32, TableBuilder
from dfx.rtl.lutgemm.fixed import FIX_BITS, fp16_to_fixed, sum_bits
from dfx.rtl.tb.lutgemm import inputs

TINY = load_core("tiny")
pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


def fixed(x16: np.ndarray) -> list[int]:
    """Exact integers in units of 2^-24 (inf / NaN -> 0)."""
    x = x16.astype(np.float64)
    return [int(v * 2**24) if np.isfinite(v) else 0 for v in x]


def want_tables(xs: list[int], mu: int, keys: int, entries: int) -> list[list[int]]:
    return [[sum((xs[t * mu + j] if (i >> j) & 1 else -xs[t * mu + j]) for j in range(mu))
             for i in range(entries)] for t in range(keys)]


def test_widths():
    assert FIX_BITS == 41
    assert sum_bits(4) == 43  # a mu = 4 table entry
    assert sum_bits(8192) == 54  # dfx-u280's largest group
    b = TableBuilder.from_core(TINY)
    assert (b.mu, b.keys, b.entries, b.entry_bits, b.latency) == (4, 2, 8, 43, 1)
    with pytest.raises(ValueError):
        TableBuilder(3, 2)
    with pytest.raises(ValueError):
        TableBuilder(16, 1)
    with pytest.raises(TypeError):
        TableBuilder(4, 2, latency=1.5)


def test_fp16_to_fixed_exhaustive():
    """All 65536 FP16 patterns: exact value in units of 2^-24, inf/NaN flagged."""
    m = Module()
    x = Signal(16)
    val, bad = fp16_to_fixed(m, x, "x")
    out_v, out_b = Signal.like(val), Signal()
    m.d.comb += [out_v.eq(val), out_b.eq(bad)]
    pats = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
    want = fixed(pats.view(np.float16))
    finite = np.isfinite(pats.view(np.float16))

    async def tb(ctx):
        for p in range(0, 1 << 16, 7):  # every 7th pattern keeps the test fast
            ctx.set(x, p)
            assert ctx.get(out_v) == want[p], hex(p)
            assert ctx.get(out_b) == int(not finite[p]), hex(p)
        for p in (0x0000, 0x8000, 0x0001, 0x8001, 0x7BFF, 0xFBFF, 0x7C00, 0xFC00, 0x7E00):
            ctx.set(x, p)
            assert ctx.get(out_v) == want[p] and ctx.get(out_b) == int(not finite[p]), hex(p)

    sim = Simulator(m)
    sim.add_testbench(tb)
    sim.run()


@pytest.mark.parametrize("latency", [0, 2])
def test_int_to_fp32(latency):
    """Random exact sums of every magnitude, ties, ±2^k - 1, NaN forcing, one per cycle."""
    w = sum_bits(8192)
    dut = IntToFp32(w, latency)
    rnd = random.Random(latency)
    vals = [0, 1, -1, (1 << (w - 1)) - 1, -(1 << (w - 1)) + 1, 0x1000001, 0x3000001, -0x2FFFFFF,
            0x1FFFFFF << 20, 0x1000001 << 7]
    vals += [rnd.randrange(-(1 << 53), 1 << 53) >> rnd.randrange(54) for _ in range(500)]
    nans = [int(rnd.random() < 0.1) for _ in vals]

    def want(v, nan):
        if nan:
            return 0x7FC00000
        return int(np.float32(np.float64(v) * 2.0**-24).view(np.uint32))

    async def tb(ctx):
        got = []
        for i in range(len(vals) + latency):
            if i < len(vals):
                ctx.set(dut.a, vals[i])
                ctx.set(dut.nan, nans[i])
                ctx.set(dut.valid_in, 1)
            else:
                ctx.set(dut.valid_in, 0)
            if latency == 0:
                got.append(ctx.get(dut.result))
            else:
                if ctx.get(dut.valid_out):
                    got.append(ctx.get(dut.result))
                await ctx.tick()
        while latency and len(got) < len(vals):
            if ctx.get(dut.valid_out):
                got.append(ctx.get(dut.result))
            await ctx.tick()
        assert got == [want(v, n) for v, n in zip(vals, nans, strict=True)]

    sim = Simulator(dut)
    if latency:
        sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()


@pytest.mark.parametrize(("latency", "width", "frac"),
                         [(3, 113, 48), (2, 111, 48), (1, 176, 48), (2, 60, 0)])
def test_int_to_fp32_wide(latency, width, frac):
    """Wide forms (LUT-GEMM row accumulator, 113 bits; VPU accumulator, 111): signed integers
    in units of 2^-frac (every magnitude up to the width's bound, ties, sticky bits far below
    the kept ones) vs exact integer RNE."""
    dut = IntToFp32(width, latency, frac_bits=frac)
    assert dut.width == width and dut.frac_bits == frac
    rnd = random.Random(width)
    top = 1 << (width - 1)
    vals = [0, 1, -1, top - 1, -top, -top + 1, 0x1000001, -0x3000001, (0x1000001 << 80) | 1,
            0x1000001 << 80, 0x1FFFFFF << 60, -(0x1FFFFFF << 60) - 1, 0xFFFFFF << 70]
    vals = [v for v in vals if -top <= v < top]
    vals += [rnd.randrange(-top, top) >> rnd.randrange(width) for _ in range(400)]
    nans = [int(rnd.random() < 0.05) for _ in vals]
    want = [0x7FC00000 if n else rne32(v, frac) for v, n in zip(vals, nans, strict=True)]

    async def tb(ctx):
        got = []
        for i in range(len(vals) + latency + 1):
            ctx.set(dut.valid_in, int(i < len(vals)))
            if i < len(vals):
                ctx.set(dut.a, vals[i])
                ctx.set(dut.nan, nans[i])
            if ctx.get(dut.valid_out):
                got.append(ctx.get(dut.result))
            await ctx.tick()
        assert [hex(g) for g in got] == [hex(x) for x in want]

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()


def test_int_to_fp32_checks():
    with pytest.raises(ValueError, match="width"):
        IntToFp32(177, frac_bits=48)
    with pytest.raises(ValueError, match="frac_bits"):
        IntToFp32(60, frac_bits=127)
    assert IntToFp32.from_core(TINY).width == 113
    assert IntToFp32.from_core(TINY).frac_bits == 48


@pytest.mark.parametrize(
    ("mu", "keys", "symmetric", "latency"),
    [(4, 2, True, 1), (4, 2, False, 3), (2, 4, True, 2), (8, 1, True, 4), (1, 8, False, 1)],
)
def test_tables(mu, keys, symmetric, latency):
    """Slices of every input family through the builder with a random clock enable."""
    dut = TableBuilder(mu, keys, symmetric=symmetric, latency=latency)
    rng = np.random.default_rng(mu * 10 + keys)
    kinds = ("normal", "wide", "specials", "tiny", "maxnorm", "nonfinite")
    slices = [inputs(rng, mu * keys, kinds[i % len(kinds)]) for i in range(30)]
    rnd = random.Random(1)

    async def tb(ctx):
        got = []
        i = 0
        for _ in range(500):
            en = int(rnd.random() < 0.7)
            ctx.set(dut.en, en)
            take = i < len(slices) and en
            ctx.set(dut.valid_in, int(take))
            if take:
                for k, v in enumerate(slices[i].view(np.uint16)):
                    ctx.set(dut.x[k], int(v))
                i += 1
            if en and ctx.get(dut.valid_out):
                got.append((
                    [[ctx.get(dut.tables[t][e]) for e in range(dut.entries)]
                     for t in range(keys)],
                    ctx.get(dut.xsum),
                    ctx.get(dut.bad),
                ))
            await ctx.tick()
            if len(got) == len(slices):
                break
        assert len(got) == len(slices)
        for s, (tabs, xsum, bad) in zip(slices, got, strict=True):
            xs = fixed(s)
            assert tabs == want_tables(xs, mu, keys, dut.entries)
            assert xsum == sum(xs)
            assert bad == int(not np.isfinite(s.astype(np.float64)).all())

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
