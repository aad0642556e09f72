"""The VRF scoreboard: chaining checks, own-writer exclusion, WAW/WAR, retirement."""

from __future__ import annotations

import pytest
from amaranth.sim import Simulator

from dfx.rtl.issue.scoreboard import Scoreboard


def make() -> Scoreboard:
    return Scoreboard(64, writers=4, readers=4, check_ports=["a", "b"], write_units=["vpu", "mpu"],
                      read_units=["vpu"])


def test_bad_parameters() -> None:
    with pytest.raises(ValueError, match="writers must be a positive integer"):
        Scoreboard(64, writers=0, readers=4, check_ports=[], write_units=[], read_units=[])
    with pytest.raises(ValueError, match="check_ports must be distinct"):
        Scoreboard(64, writers=2, readers=2, check_ports=["a", "a"], write_units=[],
                   read_units=[])


def test_chaining_and_hazards() -> None:
    dut = make()

    async def bench(ctx):
        assert ctx.get(dut.empty)
        # a writer of v[4..8)
        ctx.set(dut.alloc_w_en, 1)
        ctx.set(dut.alloc_w_lo, 4)
        ctx.set(dut.alloc_w_n, 4)
        w = ctx.get(dut.alloc_w_idx)
        # and a reader of v[10..12)
        ctx.set(dut.alloc_r0_en, 1)
        ctx.set(dut.alloc_r0_lo, 10)
        ctx.set(dut.alloc_r0_n, 2)
        r = ctx.get(dut.alloc_r0_idx)
        await ctx.tick()
        for s in (dut.alloc_w_en, dut.alloc_r0_en):
            ctx.set(s, 0)
        assert not ctx.get(dut.empty)
        for v, ok in ((3, 1), (4, 0), (7, 0), (8, 1)):
            ctx.set(dut.check_a.v, v)
            assert ctx.get(dut.check_a.ok) == ok, v
        # its own instruction may read it (in-place ops)
        ctx.set(dut.check_a.v, 5)
        ctx.set(dut.check_a.own, w)
        ctx.set(dut.check_a.has_own, 1)
        assert ctx.get(dut.check_a.ok) == 1
        ctx.set(dut.check_a.has_own, 0)
        # WAW on an overlapping destination, WAR on the reader's range
        for lo, n, waw, war in ((0, 4, 0, 0), (0, 5, 1, 0), (7, 4, 1, 1), (12, 4, 0, 0)):
            ctx.set(dut.dst_lo, lo)
            ctx.set(dut.dst_n, n)
            assert (ctx.get(dut.waw_busy), ctx.get(dut.war_busy)) == (waw, war), (lo, n)
        # the VPU writes v4: available from the next cycle; then v5 is the stale one
        ctx.set(dut.adv_vpu.en, 1)
        ctx.set(dut.adv_vpu.idx, w)
        ctx.set(dut.check_b.v, 4)
        assert ctx.get(dut.check_b.ok) == 0
        await ctx.tick()
        ctx.set(dut.adv_vpu.en, 0)
        assert ctx.get(dut.check_b.ok) == 1
        ctx.set(dut.check_b.v, 5)
        assert ctx.get(dut.check_b.ok) == 0
        # three more writes retire the writer; done retires the reader
        ctx.set(dut.adv_mpu.en, 1)
        ctx.set(dut.adv_mpu.idx, w)
        for _ in range(3):
            await ctx.tick()
        ctx.set(dut.adv_mpu.en, 0)
        ctx.set(dut.done_vpu.en, 1)
        ctx.set(dut.done_vpu.idx, r)
        await ctx.tick()
        ctx.set(dut.done_vpu.en, 0)
        assert ctx.get(dut.empty)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


def test_full_tables() -> None:
    dut = make()

    async def bench(ctx):
        ctx.set(dut.alloc_w_en, 1)
        ctx.set(dut.alloc_w_n, 1)
        ctx.set(dut.alloc_r0_en, 1)
        ctx.set(dut.alloc_r0_n, 1)
        ctx.set(dut.alloc_r1_en, 1)
        ctx.set(dut.alloc_r1_n, 1)
        seen = set()
        for k in range(4):
            ctx.set(dut.alloc_w_lo, k)
            assert not ctx.get(dut.w_full)
            seen.add(ctx.get(dut.alloc_w_idx))
            full_r = ctx.get(dut.r_full)
            assert full_r == (k >= 2)
            await ctx.tick()
        assert seen == {0, 1, 2, 3} and ctx.get(dut.w_full)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
