"""The shared fixed-point pieces (``dfx.rtl.arith.fixed``, ``dfx.rtl.arith.int_to_fp32``,
moved from ``dfx.rtl.lutgemm``, where their full tests stay): the widths, and
:class:`IntToFp32` at the VPU accumulator's form (111 bits in units of 2^-48) against an exact
integer round-to-nearest-even, one value per cycle."""

import random
from fractions import Fraction

import numpy as np
import pytest
from amaranth.sim import Simulator

from dfx.rtl import lutgemm
from dfx.rtl.arith import IntToFp32
from dfx.rtl.arith.fixed import FIX_BITS, FIX_MAX, SQ_BITS, SQ_MAX, limb_widths, sum_bits

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


def rne32(v: int, frac: int) -> int:
    """FP32 pattern of ``v * 2^-frac`` rounded to nearest even (normal range, +0 for 0)."""
    if v == 0:
        return 0
    neg, a = v < 0, abs(v)
    e = a.bit_length() - 24  # keep 24 bits
    if e > 0:
        q, r = divmod(a, 1 << e)
        half = 1 << (e - 1)
        if r > half or (r == half and q & 1):
            q += 1
        a = q << e
    f = np.float32(float(Fraction(a, 1 << frac)))
    return int((-f if neg else f).view(np.uint32))


def test_widths_and_moved_names():
    assert (FIX_BITS, SQ_BITS) == (41, 81)
    assert SQ_MAX == FIX_MAX**2 and sum_bits(1, SQ_MAX) == SQ_BITS
    assert limb_widths(108, 3) == [36, 36, 36]
    assert issubclass(lutgemm.IntToFp32, IntToFp32)
    assert lutgemm.fixed.sum_bits is sum_bits


@pytest.mark.parametrize("latency", [0, 2])
def test_int_to_fp32_accumulator_form(latency):
    width, frac = 111, 48
    dut = IntToFp32(width, latency, frac_bits=frac)
    rnd = random.Random(latency)
    top = 1 << (width - 1)
    vals = [0, 1, -1, 2, top - 1, -top + 1, (0x1000001 << 60) | 1, 0x1000001 << 60,
            -(0x1000003 << 40), 0xFFFFFF80 << 50]
    vals += [rnd.randrange(-top, top) >> rnd.randrange(width) for _ in range(300)]
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
            if latency:
                await ctx.tick()
            else:
                await ctx.delay(1e-9)
        assert [hex(g) for g in got] == [hex(x) for x in want]

    sim = Simulator(dut)
    if latency:
        sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
