"""One LUT-GEMM scale unit on Amaranth's simulator: group sum -> FP32 (one rounding) x FP16
scale -> + accumulator, against numpy float32 op by op, with ops on the same accumulator exactly
``min_distance`` cycles apart (the transparent accumulator read), a random clock enable, NaN
groups, scale slots rewritten between uses, and ``init`` restarting a sum with the product
itself (signed zeros included)."""

from __future__ import annotations

import random

import numpy as np
import pytest
from amaranth.sim import Simulator

from dfx.rtl.lutgemm import LutScaler
from dfx.rtl.lutgemm.fixed import sum_bits

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


def f32(bits: int) -> np.float32:
    return np.uint32(bits).view(np.float32)


@pytest.mark.parametrize(("cvt", "mul", "add"), [(1, 2, 2), (3, 0, 4)])
def test_scaler_ops(cvt, mul, add):
    max_q, slots, depth = 4, 6, 8
    w = sum_bits(256)
    dut = LutScaler(width=w, max_q=max_q, slots=slots, acc_depth=depth, convert_latency=cvt,
                    mul_latency=mul, add_latency=add)
    d = dut.min_distance
    assert d == add + 1 and dut.latency == 1 + cvt + mul + add
    rnd = random.Random(cvt * 10 + add)
    scale_bits = [0x0000, 0x8000, 0x3C00, 0xBC00, 0x7BFF, 0x0001, 0x2E66, 0xB266]
    table = [[rnd.choice(scale_bits) if rnd.random() < 0.3 else rnd.randrange(0x7C00)
              | rnd.randrange(2) << 15 for _ in range(max_q + 1)] for _ in range(slots)]
    # rounds of d ops on addresses 0..d-1 (same address d cycles apart), some bubbles
    ops = []
    for r in range(40):
        for a in range(d):
            if rnd.random() < 0.15:
                ops.append(None)
            else:
                lim = 1 << (w - 2)
                p = rnd.choice([0, rnd.randrange(-lim, lim), rnd.randrange(-99, 99),
                                rnd.randrange(-(1 << 30), 1 << 30)])
                ops.append((rnd.randrange(slots), rnd.randrange(max_q + 1), a % depth,
                            int(r % 7 == 0 or rnd.random() < 0.05), p,
                            int(rnd.random() < 0.03)))
    want, acc = [], {}
    for op in ops:
        if op is None:
            continue
        slot, b, a, init, p, nan = op
        conv = np.float32(np.nan) if nan else np.float32(np.float64(p) * 2.0**-24)
        alpha = np.float32(np.uint16(table[slot][b]).view(np.float16))
        prod = np.float32(conv * alpha)
        prev = f32(0x80000000) if init or a not in acc else acc[a]
        acc[a] = np.float32(prev + prod)
        bits = int(acc[a].view(np.uint32))
        want.append(0x7FC00000 if np.isnan(acc[a]) else bits)

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
