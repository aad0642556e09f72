"""The scalar register file: reads, writes, pending bits, clear (Amaranth sim)."""

from __future__ import annotations

import pytest
from amaranth.sim import Simulator

from dfx.rtl.regs.srf import ScalarRegs


def test_bad_parameters() -> None:
    with pytest.raises(ValueError, match="n must be an integer in 1..256"):
        ScalarRegs(300, read_ports=["a"], write_ports=["w"])
    with pytest.raises(ValueError, match="unique"):
        ScalarRegs(8, read_ports=["a", "a"], write_ports=["w"])


def test_claim_write_clear() -> None:
    dut = ScalarRegs(8, read_ports=["a"], write_ports=["x", "y"])

    async def bench(ctx):
        ctx.set(dut.claim_lo, 2)
        ctx.set(dut.claim_count, 3)
        ctx.set(dut.claim_en, 1)
        await ctx.tick()
        ctx.set(dut.claim_en, 0)
        assert ctx.get(dut.pending) == 0b11100
        ctx.set(dut.w_x.idx, 3)
        ctx.set(dut.w_x.value, 0x3F800000)
        ctx.set(dut.w_x.en, 1)
        ctx.set(dut.w_y.idx, 4)
        ctx.set(dut.w_y.value, 0x40000000)
        ctx.set(dut.w_y.en, 1)
        ctx.set(dut.r_a_idx, 3)
        assert ctx.get(dut.r_a_value) == 0  # not yet written
        await ctx.tick()
        ctx.set(dut.w_x.en, 0)
        ctx.set(dut.w_y.en, 0)
        assert ctx.get(dut.pending) == 0b00100
        assert ctx.get(dut.r_a_value) == 0x3F800000
        # a claim and a write of the same register in one cycle: still pending
        ctx.set(dut.claim_lo, 2)
        ctx.set(dut.claim_count, 1)
        ctx.set(dut.claim_en, 1)
        ctx.set(dut.w_x.idx, 2)
        ctx.set(dut.w_x.en, 1)
        await ctx.tick()
        ctx.set(dut.claim_en, 0)
        ctx.set(dut.w_x.en, 0)
        assert ctx.get(dut.pending) == 0b00100
        ctx.set(dut.clear, 1)
        await ctx.tick()
        ctx.set(dut.clear, 0)
        assert ctx.get(dut.pending) == 0 and ctx.get(dut.r_a_value) == 0

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
