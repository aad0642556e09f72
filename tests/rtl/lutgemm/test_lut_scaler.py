"""One LUT-GEMM scale unit on Amaranth's simulator: exact group sum x FP16 scale into the wide
row accumulator, rounded once to FP32 after every op, against exact Python integers op by op:
ops on the same accumulator in consecutive cycles (the skewed limbs' transparent reads) and far
apart, a random clock enable, NaN groups and non-finite scales (sticky until ``init``), scale
slots rewritten between uses, sums at the accumulator's bound (a narrow accumulator filled with
the largest terms), several multiplier / limb / converter latencies."""

from __future__ import annotations

import random

import numpy as np
import pytest
from amaranth.sim import Simulator
from lutgemm_harness import rne32

from dfx.isa.config import load_core
from dfx.rtl.lutgemm import LutScaler
from dfx.rtl.lutgemm.fixed import FIX_MAX, sum_bits
from dfx.rtl.lutgemm.scaler import ACC_FRAC_BITS, acc_bits

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


def fixed16(bits: int) -> int | None:
    """An FP16 pattern in units of 2^-24 (None for inf / NaN)."""
    v = float(np.uint16(bits).view(np.float16))
    return None if not np.isfinite(v) else int(v * 2.0**24)


def test_accumulator_width():
    """113 bits at max_group 8192 (54-bit sums), max_q 4 (docs/lutgemm.md), limb split."""
    core = load_core("dfx-u280").lutgemm
    assert sum_bits(core.max_group) == 54
    assert acc_bits(54, 4) == 113
    dut = LutScaler(width=54, max_q=4, slots=4, acc_depth=8, convert_latency=3,
                    mul_latency=4, add_latency=2)
    assert dut.acc_bits == 113 and dut.limbs == [57, 56] and sum(dut.limbs) == 113
    assert dut.latency == 1 + 4 + 2 + 3 and dut.min_distance == 1
    # the bound: 65535 groups of 5 products of the largest sum and the largest scale
    assert 65535 * 5 * (1 << 53) * FIX_MAX < 1 << 112
    with pytest.raises(ValueError, match="too narrow"):
        LutScaler(width=54, max_q=4, slots=4, acc_depth=8, convert_latency=1, mul_latency=1,
                  add_latency=100)
    with pytest.raises(ValueError, match="acc_depth"):
        LutScaler(width=54, max_q=4, slots=4, acc_depth=6, convert_latency=1, mul_latency=1,
                  add_latency=1)
    with pytest.raises(ValueError, match="convert_latency"):
        LutScaler(width=54, max_q=4, slots=4, acc_depth=8, convert_latency=0, mul_latency=1,
                  add_latency=1)


@pytest.mark.parametrize(
    ("cvt", "mul", "add", "max_groups", "bound"),
    [(1, 2, 2, 65535, False), (3, 0, 1, 65535, False), (2, 4, 3, 65535, False),
     (1, 1, 5, 2, True), (3, 4, 2, 1, True)],
    ids=["tiny", "mul0-add1", "u280ish-add3", "narrow-add5", "narrow-add2"])
def test_scaler_ops(cvt, mul, add, max_groups, bound):
    max_q, slots, depth = 4, 6, 4
    w = sum_bits(256)
    dut = LutScaler(width=w, max_q=max_q, slots=slots, acc_depth=depth, convert_latency=cvt,
                    mul_latency=mul, add_latency=add, max_groups=max_groups)
    assert dut.latency == 1 + cvt + mul + add
    rnd = random.Random(cvt * 100 + mul * 10 + add)
    lim = 1 << (w - 1)
    if bound:  # the largest terms, one sign per address: the sums reach the accumulator's bound
        table = [[0x7BFF] * (max_q + 1), [0xFBFF] * (max_q + 1)] * (slots // 2)
    else:
        scale_bits = [0x0000, 0x8000, 0x3C00, 0xBC00, 0x7BFF, 0xFBFF, 0x0001, 0x8001, 0x03FF,
                      0x2E66, 0xB266, 0x7C00, 0xFE00]
        table = [[rnd.choice(scale_bits) if rnd.random() < 0.3 else rnd.randrange(0x7C00)
                  | rnd.randrange(2) << 15 for _ in range(max_q + 1)] for _ in range(slots)]
    ops = []
    terms, run_sign = 0, 0
    for _ in range(300):
        if rnd.random() < 0.15:
            ops.append(None)
            continue
        a = rnd.randrange(depth) if rnd.random() < 0.5 else (ops[-1][2] if ops and ops[-1]
                                                             else 0)
        if bound:
            terms = terms + 1 if terms < max_groups * (max_q + 1) else 1
            if terms == 1:
                run_sign = rnd.randrange(2)  # every product of a run has this sign
            p_neg = rnd.randrange(2)
            p = -lim if p_neg else lim - 1
            slot = rnd.randrange(slots) & ~1 | (p_neg ^ run_sign)  # odd slots: negative scales
            ops.append((slot, rnd.randrange(max_q + 1), 0, int(terms == 1), p, 0))
            continue
        p = rnd.choice([0, rnd.randrange(-lim, lim), rnd.randrange(-99, 99), lim - 1, -lim,
                        rnd.randrange(-(1 << 30), 1 << 30)])
        ops.append((rnd.randrange(slots), rnd.randrange(max_q + 1), a,
                    int(rnd.random() < 0.1), p, int(rnd.random() < 0.02)))
    want, acc = [], {}
    for op in ops:
        if op is None:
            continue
        slot, b, a, init, p, nan = op
        s = fixed16(table[slot][b])
        old, old_nan = (0, 0) if init or a not in acc else acc[a]
        new = old + p * (s or 0)
        new_nan = old_nan or nan or s is None
        assert abs(new) < 1 << (dut.acc_bits - 1)
        acc[a] = (new, new_nan)
        want.append(0x7FC00000 if new_nan else rne32(new, ACC_FRAC_BITS))

    async def tb(ctx):
        for s in range(slots):  # scale slots
            ctx.set(dut.sc_we, 1)
            ctx.set(dut.sc_waddr, s)
            for b in range(max_q + 1):
                ctx.set(dut.sc_wdata[b], table[s][b])
            await ctx.tick()
        ctx.set(dut.sc_we, 0)
        got, i, pending = [], 0, None
        while len(got) < len(want):
            en = int(rnd.random() < 0.75)
            ctx.set(dut.en, en)
            if pending is not None:  # p and nan one cycle after the issue
                ctx.set(dut.p, pending[4])
                ctx.set(dut.nan, pending[5])
            if en:
                op = ops[i] if i < len(ops) else None
                ctx.set(dut.valid, int(op is not None))
                if op is not None:
                    slot, b, a, init, _, _ = op
                    ctx.set(dut.slot, slot)
                    ctx.set(dut.b, b)
                    ctx.set(dut.addr, a)
                    ctx.set(dut.init, init)
                if ctx.get(dut.valid_out):
                    got.append(ctx.get(dut.result))
                await ctx.tick()
                pending = op
                i += 1
            else:
                await ctx.tick()
        assert [hex(v) for v in got] == [hex(v) for v in want]

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()


@pytest.mark.parametrize("cvt", [1, 3])
def test_convert_pair(cvt):
    """Two accumulators through one shared converter (``LutConvertPair``): the same FP32 as
    each rounded alone, both ``cvt + 1`` en-cycles after ``take``, under a random clock enable,
    takes two or more en-cycles apart (a scaler's row ends), NaN flags per scaler."""
    from dfx.rtl.lutgemm import LutConvertPair

    bits = acc_bits(54, 4)
    dut = LutConvertPair(bits, cvt)
    assert dut.latency == cvt + 1
    rnd = random.Random(cvt)
    lim = 1 << (bits - 1)

    def value() -> int:
        return rnd.choice([0, rnd.randrange(-lim, lim), lim - 1, -lim, rnd.randrange(-99, 99),
                           rnd.randrange(-(1 << 60), 1 << 60)])

    takes = []  # per en-cycle: None or (acc0, acc1, nan0, nan1)
    for _ in range(200):
        if takes and takes[-1] is not None or rnd.random() < 0.3:
            takes.append(None)
        else:
            takes.append((value(), value(), int(rnd.random() < 0.1), int(rnd.random() < 0.1)))
    want = [[0x7FC00000 if n else rne32(a, ACC_FRAC_BITS) for a, n in ((t[0], t[2]),
                                                                        (t[1], t[3]))]
            for t in takes if t is not None]

    async def tb(ctx):
        got, i = [], 0
        while len(got) < len(want):
            en = int(rnd.random() < 0.7)
            ctx.set(dut.en, en)
            t = takes[i] if en and i < len(takes) else None
            ctx.set(dut.take, int(t is not None))
            if t is not None:
                ctx.set(dut.acc[0], t[0])
                ctx.set(dut.acc[1], t[1])
                ctx.set(dut.nan[0], t[2])
                ctx.set(dut.nan[1], t[3])
            else:  # garbage between takes
                ctx.set(dut.acc[0], value())
                ctx.set(dut.acc[1], value())
            if en:
                if ctx.get(dut.valid_out):
                    got.append([ctx.get(dut.result[0]), ctx.get(dut.result[1])])
                i += 1
            await ctx.tick()
        assert got == want

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
